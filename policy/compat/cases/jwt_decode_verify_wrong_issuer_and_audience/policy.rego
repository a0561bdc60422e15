package usher.authz

import rego.v1

t := input.token

c := {"secret": data.secret, "time": input.now_ns}

result := {
	"wrong_iss": io.jwt.decode_verify(t, object.union(c, {"iss": "https://other", "aud": "orders"}))[0],
	"missing_aud_constraint": io.jwt.decode_verify(t, c)[0],
	"wrong_aud": io.jwt.decode_verify(t, object.union(c, {"aud": "billing"}))[0],
	"ok": io.jwt.decode_verify(t, object.union(c, {"aud": "orders", "iss": "https://issuer.usher.test"}))[0],
	"not_yet_valid": io.jwt.decode_verify(t, {"secret": data.secret, "aud": "orders", "time": input.now_ns - 3600000000000})[0],
}
