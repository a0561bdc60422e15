package usher.authz

default decision := {"allowed": false, "http_status": 429, "body": "slow down", "headers": {"retry-after": "30"}}

decision := {
	"allowed": true,
	"headers": {"x-tenant": [tenant], "x-scopes": scopes},
	"response_headers_to_add": {"x-served-by": "orders"},
} if {
	tenant := input.attributes.request.http.headers["x-tenant"]
	tenant in data.tenants.active
	scopes := [s | some s in data.tenants.scopes[tenant]]
}
