package usher.authz

import rego.v1

p := input.attributes.request.http.path

ua := input.attributes.request.http.headers["user-agent"]

result := {
	"startswith": startswith(p, "/api/"),
	"endswith": endswith(p, ".json"),
	"contains": contains(ua, "curl"),
	"split": split(p, "/"),
	"split_empty_sep": split("abc", ""),
	"concat": concat("|", ["a", "b", "c"]),
	"concat_set": concat(",", {"z", "a", "m"}),
	"lower": lower("MiXeD-Case"),
	"upper": upper("spiffe://x"),
	"any_prefix": strings.any_prefix_match(p, ["/admin", "/api"]),
	"any_suffix": strings.any_suffix_match(["a.txt", "b.json"], [".json"]),
	"count": strings.count("a/b/c/d", "/"),
	"reverse": strings.reverse("héllo"),
	"unicode_len": count("héllo✓"),
}
