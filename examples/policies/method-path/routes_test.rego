package usher.routes_test

import data.usher.routes

req(method, path, segments, caller) := {
	"attributes": {
		"source": {"principal": caller},
		"request": {"http": {"method": method, "path": path}},
	},
	"parsed_path": segments,
	"parsed_query": {},
}

checkout := "spiffe://mesh.local/ns/shop/sa/checkout"

frontend := "spiffe://mesh.local/ns/shop/sa/frontend"

test_health_for_everyone if {
	routes.allow with input as req("GET", "/healthz", ["healthz"], frontend)
	routes.allow with input as req("HEAD", "/healthz", ["healthz"], checkout)
	not routes.allow with input as req("POST", "/healthz", ["healthz"], frontend)
}

test_products_readable_at_any_depth if {
	routes.allow with input as req("GET", "/api/v1/products/42", ["api", "v1", "products", "42"], frontend)
	routes.allow with input as req("GET", "/api/v1/products/42/reviews", ["api", "v1", "products", "42", "reviews"], frontend)
	not routes.allow with input as req("PUT", "/api/v1/products/42", ["api", "v1", "products", "42"], frontend)
}

test_orders_created_by_checkout_only if {
	routes.allow with input as req("POST", "/api/v1/orders", ["api", "v1", "orders"], checkout)
	not routes.allow with input as req("POST", "/api/v1/orders", ["api", "v1", "orders"], frontend)
}

test_delete_needs_support if {
	routes.allow with input as req("DELETE", "/api/v1/orders/7", ["api", "v1", "orders", "7"], "spiffe://mesh.local/ns/ops/sa/support")
	not routes.allow with input as req("DELETE", "/api/v1/orders/7", ["api", "v1", "orders", "7"], checkout)
}

test_query_string_does_not_change_the_route if {
	routes.allow with input as req("GET", "/healthz?verbose=1", ["healthz"], frontend)
}

test_owner_reads_own_order if {
	own := object.union(req("GET", "/api/v1/orders/9?owner=frontend", ["api", "v1", "orders", "9"], frontend), {"parsed_query": {"owner": ["frontend"]}})
	routes.allow with input as own
	other := object.union(own, {"parsed_query": {"owner": ["checkout"]}})
	not routes.allow with input as other
}

test_unknown_path_denied if {
	not routes.allow with input as req("GET", "/internal/metrics", ["internal", "metrics"], frontend)
}
