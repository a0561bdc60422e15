package usher.authz

import rego.v1

doc := {"z": 1, "a": [true, null, 2.5], "m": {"k": "v"}}

result := {
	"marshal": json.marshal(doc),
	"marshal_set": json.marshal({"b", "a"}),
	"marshal_indent": json.marshal_with_options({"b": 1, "a": [1, 2]}, {"indent": "  ", "pretty": true}),
	"unmarshal": json.unmarshal(`{"x": [1, 2, {"y": "z"}], "n": 1.0e2}`),
	"valid": json.is_valid(`{"a":1}`),
	"invalid": json.is_valid(`{"a":`),
	"filter": json.filter(doc, ["a/0", "m"]),
	"remove": json.remove(doc, ["a", "m/k"]),
	"patch": json.patch({"a": {"b": 1}}, [{"op": "add", "path": "/a/c", "value": 2}, {"op": "remove", "path": "/a/b"}]),
	"body_field": json.unmarshal(input.attributes.request.http.body).items[1].sku,
}
