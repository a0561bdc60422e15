package usher.authz

import rego.v1

granted := {"orders:read", "orders:write", "cart:read"}

required := {"orders:read", "profile:read"}

result := {
	"union": granted | required,
	"intersection": granted & required,
	"difference": required - granted,
	"missing_any": count(required - granted) > 0,
	"intersection_fn": intersection({granted, required, {"orders:read"}}),
	"union_fn": union({{"a"}, {"b"}, {"a", "c"}}),
	"in_set": "cart:read" in granted,
	"set_of_arrays": {["b", 1], ["a", 2]},
	"equal_sets": {1, 2} == {2, 1},
}
