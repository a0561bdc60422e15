package usher.authz

import rego.v1

body := input.attributes.request.http.body

expected_sig := crypto.hmac.sha256(body, data.webhook_secret)

result := {
	"expected": expected_sig,
	"hmac_ok": crypto.hmac.equal(expected_sig, input.attributes.request.http.headers["x-signature"]),
}
