# The mesh benchmark's policy-on case: role-based access, the shape of the
# criterion benchmark (benches/micro/policy.rs): 1,000 principals, each with a
# role; each role allows a list of path prefixes (100 prefixes in all).
package usher.authz

default allow := false

allow if {
    role := data.bench.roles[input.attributes.source.principal]
    some prefix in data.bench.prefixes[role]
    startswith(input.attributes.request.http.path, prefix)
}
