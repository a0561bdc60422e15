package usher.authz

import rego.v1

result := {
	"sorted": sort([{"a": 1}, "b", 3, null, true, [1], "a", false, 2.5, {"a": 0}]),
	"array_lt": [1, 2] < [1, 3],
	"string_lt": "B" < "a",
	"object_eq_number_kinds": {"a": 1} == {"a": 1.0},
	"null_lt_false": null < false,
	"set_max": max({"b", "a", "c"}),
}
