package usher.authz

import rego.v1

p := input.attributes.request.http.path

result := {
	"match": regex.match(`^/api/v[0-9]+/`, p),
	"no_match": regex.match(`^/admin`, p),
	"find_n_all": regex.find_n(`[0-9]+`, p, -1),
	"find_n_one": regex.find_n(`[0-9]+`, p, 1),
	"split": regex.split(`/+`, "a//b///c"),
	"is_valid": regex.is_valid(`(unclosed`),
	"submatch": regex.find_all_string_submatch_n(`([a-z]+)=([0-9]+)`, "a=1&bb=22&c=x", -1),
	"replace": regex.replace(p, `[0-9]+`, "{id}"),
	"spiffe_ns": regex.find_all_string_submatch_n(`^spiffe://[^/]+/ns/([^/]+)/sa/([^/]+)$`, input.attributes.source.principal, 1)[0],
}
