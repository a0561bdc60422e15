# In the spirit of the opa-envoy-plugin documentation's example, in Rego v1:
# a "people" directory where anyone with a valid token may read, admins may
# add people, but nobody may add themselves.
#
# Query: data.envoy.people.decision   (or data.envoy.people.allow for a plain yes/no)
# Data:  people.json (data.people_directory)
#
# Tokens are HS256 here to keep the example self-contained; with a real
# issuer, give io.jwt.decode_verify its JWKS or certificate instead of a
# secret: {"cert": data.issuer_jwks, "iss": "...", "aud": "..."}.
package envoy.people

import input.attributes.request.http as http_request

default allow := false

allow if {
	token.valid
	action_allowed
}

# The bearer token, verified (signature, and exp/nbf against the clock).
token := {"valid": valid, "payload": payload} if {
	[_, encoded] := split(http_request.headers.authorization, " ")
	[valid, _, payload] := io.jwt.decode_verify(encoded, {"secret": data.people_directory.jwt_secret})
}

role := token.payload.role

action_allowed if {
	http_request.method == "GET"
	role in {"guest", "admin"}
	people_path
}

people_path if http_request.path == "/people"

people_path if glob.match("/people/*", ["/"], http_request.path)

action_allowed if {
	http_request.method == "POST"
	role == "admin"
	http_request.path == "/people"
	# `sub` is the base64url of the caller's first name.
	lower(input.parsed_body.firstname) != base64url.decode(token.payload.sub)
}

# The object decision: 401 without a valid token, 403 when the token is
# valid but the action is not; the app learns the caller's role.
decision := {"allowed": true, "headers": {"x-user-role": role}} if allow

decision := {"allowed": false, "http_status": 401, "body": "a valid bearer token is required\n"} if not token.valid

decision := {"allowed": false, "http_status": 403, "body": "not allowed\n"} if {
	token.valid
	not action_allowed
}
