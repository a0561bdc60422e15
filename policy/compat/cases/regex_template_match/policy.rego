package usher.authz

import rego.v1

result := {
	"match": regex.template_match("/api/{[a-z0-9]+}/orders/{[0-9]+}", input.attributes.request.http.path, "{", "}"),
	"no_match": regex.template_match("/api/{[a-z0-9]+}/carts", input.attributes.request.http.path, "{", "}"),
	"urn": regex.template_match("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"),
}
