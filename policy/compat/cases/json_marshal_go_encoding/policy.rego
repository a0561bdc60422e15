package usher.authz

import rego.v1

# json.marshal as OPA writes JSON (Go's encoding/json): HTML-safe escapes,
# keys sorted, keys that are not strings as their JSON text, sets in
# OPA's order (objects before sets); json.marshal_with_options indents as
# json.MarshalIndent.
body := {
	"msg": "<b>denied</b> & logged\u2028\ttab\u0001",
	"who": input.attributes.source.principal,
	"nums": [1, -2, 1.5, 0.25, 100.0, 1e-7, 2.5 * 2],
	"set": {"b", "a", [1], {"k": 1}, {2}, null, true, 3},
	"mixed_keys": {1: "one", "b": 2, true: "t", [1, 2]: "arr"},
	"empty": [[], {}, set()],
}

result := {
	"compact": json.marshal(body),
	"pretty": json.marshal_with_options({"b": [1, {"c": []}], "a": {}}, {"indent": "  ", "prefix": "> "}),
	"pretty_default_indent": json.marshal_with_options({"a": [1, 2]}, {"pretty": true}),
	"not_pretty": json.marshal_with_options({"a": [1, 2]}, {"indent": "  ", "pretty": false}),
	"roundtrip": json.unmarshal(json.marshal(body)),
}
