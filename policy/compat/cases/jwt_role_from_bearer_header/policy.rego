package envoy.authz

import rego.v1

bearer := t if {
	auth := input.attributes.request.http.headers.authorization
	startswith(auth, "Bearer ")
	t := substring(auth, 7, -1)
}

claims := payload if {
	[ok, _, payload] := io.jwt.decode_verify(bearer, {"secret": data.secret, "aud": "orders", "time": input.now_ns})
	ok
}

scopes := split(claims.scope, " ")

default allow := false

allow if {
	input.attributes.request.http.method == "GET"
	"orders:read" in scopes
}

allow if {
	input.attributes.request.http.method in {"POST", "PUT"}
	"orders:write" in scopes
}

result := {"allowed": allow, "headers": {"x-user": claims.sub}}
