package usher.authz

import rego.v1

result := {
	"ints": json.marshal([0, -1, 12345678901234]),
	"floats": json.marshal([1.5, 0.000001, 1e21, 100.0]),
	"nested": json.marshal({"n": 1.0, "s": {"b", "a"}, "u": "é<>&"}),
	"roundtrip": json.unmarshal(json.marshal({"x": [1, 2.5, "three"]})),
}
