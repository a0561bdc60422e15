package usher.authz

default decision := {"allowed": false, "http_status": 429, "body": "slow down", "headers": {"retry-after": "30"}}

decision := {"allowed": true} if {
	input.attributes.request.http.headers["x-tenant"] in data.tenants.active
}
