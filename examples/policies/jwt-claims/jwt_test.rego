package usher.jwt_test

import data.usher.jwt

with_claims(method, claims) := {
	"attributes": {"request": {"http": {"method": method, "headers": {}}}},
	"usher": {"jwt": {"claims": claims}},
}

# An unsigned token carrying `claims` (io.jwt.decode does not verify).
bearer(claims) := concat(".", [
	base64url.encode_no_pad(json.marshal({"alg": "RS256", "typ": "JWT"})),
	base64url.encode_no_pad(json.marshal(claims)),
	"c2lnbmF0dXJl",
])

with_bearer(method, token) := {"attributes": {"request": {"http": {
	"method": method,
	"headers": {"authorization": concat(" ", ["Bearer", token])},
}}}}

test_read_scope_reads if {
	jwt.allow with input as with_claims("GET", {"scope": "orders:read profile"})
	not jwt.allow with input as with_claims("POST", {"scope": "orders:read profile"})
}

test_write_scope_writes if {
	jwt.allow with input as with_claims("DELETE", {"scope": "orders:write"})
	not jwt.allow with input as with_claims("GET", {"scope": "orders:write"})
}

test_no_claims_denied if {
	not jwt.allow with input as {"attributes": {"request": {"http": {"method": "GET", "headers": {}}}}}
}

test_support_role_from_bearer_token if {
	token := bearer({"iss": "https://auth.mesh.local", "roles": ["support"]})
	jwt.allow with input as with_bearer("GET", token)
	not jwt.allow with input as with_bearer("DELETE", token)
}

test_support_role_from_another_issuer_denied if {
	token := bearer({"iss": "https://elsewhere.example", "roles": ["support"]})
	not jwt.allow with input as with_bearer("GET", token)
}

test_malformed_bearer_denied if {
	not jwt.allow with input as with_bearer("GET", "not-a-jwt")
	not jwt.allow with input as {"attributes": {"request": {"http": {"method": "GET", "headers": {"authorization": "Basic dXNlcjpwYXNz"}}}}}
}
