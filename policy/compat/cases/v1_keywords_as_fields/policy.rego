package usher.authz

import rego.v1

cfg := {"if": 1, "contains": 2, "in": 3, "every": 4}

result := {
	"dot_ish": cfg["if"] + cfg["contains"],
	"input_field": input.attributes.request.http.headers["if-none-match"],
}
