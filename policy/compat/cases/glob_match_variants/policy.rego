package usher.authz

import rego.v1

result := {
	"single_star_slash": glob.match("/api/*", ["/"], "/api/v1/orders"),
	"double_star_slash": glob.match("/api/**", ["/"], "/api/v1/orders"),
	"default_delims_empty": glob.match("/api/*", [], "/api/v1/orders"),
	"default_delims_dot": glob.match("*.svc", [], "orders.shop.svc"),
	"null_delims": glob.match("*.svc", null, "orders.shop.svc"),
	"host_dot_delim": glob.match("*.shop.svc", ["."], "orders.shop.svc"),
	"alternatives": glob.match("/{orders,carts}/*", ["/"], "/carts/9"),
	"char_class": glob.match("/v[12]/*", ["/"], "/v2/x"),
	"negated_class": glob.match("/v[!12]/*", ["/"], "/v3/x"),
	"question": glob.match("/item/?", ["/"], "/item/7"),
	"spiffe": glob.match("spiffe://mesh.usher.test/ns/*/sa/frontend", ["/"], input.attributes.source.principal),
	"quote_meta": glob.quote_meta("/files/*.txt"),
	"quoted_literal": glob.match(glob.quote_meta("/a*b"), ["/"], "/a*b"),
}
