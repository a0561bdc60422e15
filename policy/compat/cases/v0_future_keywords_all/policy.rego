package usher.authz

import future.keywords

default allow := false

allow if {
    some role in data.bindings[input.attributes.source.principal]
    some perm in data.roles[role]
    perm.method == input.attributes.request.http.method
    glob.match(perm.path, ["/"], input.attributes.request.http.path)
}

granted contains role if some role in data.bindings[input.attributes.source.principal]

result := {"allow": allow, "granted": granted}
