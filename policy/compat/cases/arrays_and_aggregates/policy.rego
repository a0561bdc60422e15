package usher.authz

import rego.v1

nums := [5, 3, 9, 1, 3]

result := {
	"concat": array.concat(["a"], ["b", "c"]),
	"slice": array.slice(nums, 1, 3),
	"slice_clamped": array.slice(nums, 3, 100),
	"slice_empty": array.slice(nums, 4, 2),
	"reverse": array.reverse(nums),
	"count": count(nums),
	"sum": sum(nums),
	"product": product([2, 3, 4]),
	"max": max(nums),
	"min": min(nums),
	"sort": sort(nums),
	"sort_strings": sort(["b", "A", "a", "B"]),
	"max_strings": max(["pear", "apple", "zoo"]),
}
