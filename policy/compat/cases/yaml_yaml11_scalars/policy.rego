package usher.authz

import rego.v1

# YAML 1.1 as OPA reads it (go-yaml v2): booleans, Go integer syntax, keys
# that are not strings, merge keys, the first document only.
doc := concat("\n", [
	"flags: [yes, No, ON, off, y, N, 'yes', \"on\", !!str yes]",
	"numbers: [017, 0o17, 0x1F, 0X1F, 1_000, +12, .5, 1., 1e3, 08, 1.0, 12345678901234567890123]",
	"strings: [2001-12-14, '1:20', 1:20, on-call]",
	"keys: {1: a, 1.5: b, on: c, n: d, 123456789.0: e}",
	"base: &b {a: 1, b: 2}",
	"merged:",
	"  a: 0",
	"  <<: *b",
	"  c: 3",
	"merged_list:",
	"  <<: [{a: 1}, {a: 2, z: 9}]",
	"  '<<': q",
	"tagged: !custom yes",
	"---",
	"second: document",
])

result := {
	"doc": yaml.unmarshal(doc),
	"valid": [yaml.is_valid(x) | some x in ["a: .nan", "a: [1", "a: yes", "~: 1", 3]],
}
