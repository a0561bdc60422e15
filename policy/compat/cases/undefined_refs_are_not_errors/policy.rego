package usher.authz

import rego.v1

result := {
	"missing_header": object.get(input.attributes.request.http.headers, "x-nope", "none"),
	"deep": object.get(input, ["attributes", "request", "http", "nothing", "here"], "none"),
	"has_body": "parsed_body" in object.keys(input),
	"undefined_in_comprehension": [x | x := input.attributes.nope[_]],
}
