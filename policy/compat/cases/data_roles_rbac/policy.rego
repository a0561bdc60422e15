package usher.authz

import rego.v1

default allow := false

user_roles := data.bindings[input.attributes.source.principal]

allow if {
	some role in user_roles
	some grant in data.roles[role]
	grant.method in {input.attributes.request.http.method, "*"}
	glob.match(grant.path, ["/"], input.attributes.request.http.path)
}

denied_reason := "no binding for caller" if not user_roles

denied_reason := "no grant matches" if {
	user_roles
	not allow
}

result := {"allow": allow, "roles": user_roles} if allow

result := {"allow": allow, "reason": denied_reason} if not allow
