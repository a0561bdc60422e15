package usher.authz

import rego.v1

rules := [
	{"method": "GET", "prefix": "/public/", "allow": true},
	{"method": "*", "prefix": "/admin/", "allow": false},
	{"method": "POST", "prefix": "/api/", "allow": true},
]

matches := [r |
	some r in rules
	r.method in {"*", input.attributes.request.http.method}
	startswith(input.attributes.request.http.path, r.prefix)
]

default allow := false

allow if {
	count(matches) > 0
	every m in matches {
		m.allow
	}
}

result := {"allow": allow, "matched": count(matches)}
