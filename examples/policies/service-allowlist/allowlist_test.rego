package usher.authz_test

import data.usher.authz

caller(id) := {"attributes": {"source": {"principal": id}}}

test_listed_caller_allowed if {
	authz.allow with input as caller("spiffe://mesh.local/ns/shop/sa/frontend")
	authz.allow with input as caller("spiffe://mesh.local/ns/shop/sa/checkout")
}

test_unlisted_caller_denied if {
	not authz.allow with input as caller("spiffe://mesh.local/ns/shop/sa/reviews")
}

test_whole_namespace_allowed if {
	authz.allow with input as caller("spiffe://mesh.local/ns/ops/sa/backup")
}

test_other_trust_domain_denied if {
	not authz.allow with input as caller("spiffe://evil.example/ns/ops/sa/backup")
	not authz.allow with input as caller("spiffe://mesh.local/ns/shop/sa/frontend/extra")
}

test_no_identity_denied if {
	not authz.allow with input as {"attributes": {"source": {}}}
	not authz.allow with input as {}
}
