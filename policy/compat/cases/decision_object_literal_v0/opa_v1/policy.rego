package envoy.authz

import input.attributes.request.http as http_request

default allow := {"allowed": false, "http_status": 401, "body": "unauthorized"}

allow := response if {
	http_request.method == "GET"
	http_request.headers["x-api-key"] == "k-123"
	response := {
		"allowed": true,
		"headers": {"x-current-user": "svc-reporting"},
	}
}
