package usher.authz

import rego.v1

base := {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": null}

result := {
	"get": object.get(base, "a", 0),
	"get_default": object.get(base, "zz", "dflt"),
	"get_path": object.get(base, ["b", "d", 1], "none"),
	"get_null_value": object.get(base, "e", "dflt"),
	"union": object.union(base, {"b": {"c": 3, "x": true}, "f": "new"}),
	"union_n": object.union_n([{"a": 1}, {"a": 2, "b": 1}, {"c": 3}]),
	"remove": object.remove(base, ["e", "zz"]),
	"remove_set": object.remove(base, {"a"}),
	"filter": object.filter(base, ["a", "b", "nope"]),
	"keys": object.keys(base),
	"subset": object.subset(base, {"b": {"c": 2}}),
	"not_subset": object.subset(base, {"a": 2}),
	"headers_get": object.get(input.attributes.request.http.headers, "x-missing", "n/a"),
}
