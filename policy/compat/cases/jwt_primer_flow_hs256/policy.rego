package envoy.authz

import rego.v1

import input.attributes.request.http

default allow := false

allow if {
	is_token_valid
	action_allowed
}

is_token_valid if {
	token.valid
	token.payload.nbf <= input.now
	input.now < token.payload.exp
}

action_allowed if {
	http.method == "GET"
	token.payload.role in {"guest", "admin"}
	glob.match("/people/*", ["/"], http.path)
}

action_allowed if {
	http.method == "POST"
	token.payload.role == "admin"
	glob.match("/people", ["/"], http.path)
	lower(input.parsed_body.firstname) != token.payload.sub
}

token := {"valid": valid, "payload": payload} if {
	[_, encoded] := split(http.headers.authorization, " ")
	[valid, _, payload] := io.jwt.decode_verify(encoded, {"secret": data.jwt.secret, "time": input.now * 1000000000, "aud": "orders"})
}
