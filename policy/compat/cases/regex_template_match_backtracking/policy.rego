package usher.authz

import rego.v1

# regex.template_match compiles the whole template into one expression:
# patterns backtrack across each other, delimiters nest, literals are
# quoted.
path := input.attributes.request.http.path

result := {
	"backtrack": regex.template_match("{.*}-{[0-9]+}", "a-b-12", "{", "}"),
	"nested_braces": regex.template_match("/v{[0-9]{1,2}}/items", "/v12/items", "{", "}"),
	"literal_dot": [regex.template_match("a.b{[0-9]}", x, "{", "}") | some x in ["a.b1", "axb1"]],
	"angle": regex.template_match("urn:<[a-z]+>:<.*>", "urn:foo:bar:baz", "<", ">"),
	"short": regex.template_match("/api/{[a-z]+}/orders", path, "{", "}"),
	"empty_value": regex.template_match("x{.*}", "", "{", "}"),
	"unicode": regex.template_match("é/{[a-z]+}/ü", "é/abc/ü", "{", "}"),
}
