package usher.authz

deny contains msg if {
	not input.attributes.request.http.headers["x-tenant"]
	msg := "missing x-tenant"
}

deny contains msg if {
	input.attributes.request.http.method == "DELETE"
	msg := sprintf("DELETE by %v", [input.attributes.source.principal])
}

limits[route] := n if {
	some route
	n := data.limits[route]
	n > 10
}

caller_ns := ns if {
	parts := split(input.attributes.source.principal, "/")
	ns := parts[4]
}

decision := {"deny": deny, "limits": limits, "ns": caller_ns, "allow": count(deny) == 0}
