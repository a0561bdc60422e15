package envoy.authz

import input.attributes.request.http as http_request
import input.attributes.source.principal as caller

default allow := false

allow if {
	action_allowed
	caller_allowed
}

action_allowed if {
	http_request.method == "GET"
	glob.match("/balances/*", ["/"], http_request.path)
}

caller_allowed if {
	caller == "spiffe://mesh.usher.test/ns/shop/sa/frontend"
}
