package usher.authz

hdrs := input.attributes.request.http.headers

tracing_names := [n | some n, _ in hdrs; startswith(n, "x-b3-")]

tracing_sorted := sort(tracing_names)

tenants := {t | some t in split(hdrs["x-tenants"], ",")}

lengths := {n: count(v) | some n, v in hdrs; count(v) < 12}

nested := [{"i": i, "seg": s} | some i, s in input.parsed_path; i > 0]

result := {
	"tracing": tracing_sorted,
	"tenants": tenants,
	"lengths": lengths,
	"nested": nested,
	"count": count(tracing_names),
}
