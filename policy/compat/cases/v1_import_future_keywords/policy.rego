package usher.authz

import future.keywords
import future.keywords.every
import future.keywords.in

default allow := false

allow if {
	every h in ["x-tenant", "x-request-id"] {
		input.attributes.request.http.headers[h]
	}
	input.attributes.request.http.headers["x-tenant"] in {"acme"}
}
