package usher.authz

import rego.v1

s := {4, 8, 15, 16, 23, 42}

result := {
	"count_set": count(s),
	"sum_set": sum(s),
	"max_set": max(s),
	"min_set": min(s),
	"sort_set": sort(s),
	"count_object": count({"a": 1, "b": 2}),
	"count_string": count("héllo"),
	"sum_empty": sum([]),
}
