package usher.authz

import rego.v1

result := {
	"rs256_cert": io.jwt.verify_rs256(input.rs256, data.rs256_cert),
	"rs256_pubkey": io.jwt.verify_rs256(input.rs256, data.rs256_pub),
	"rs256_tampered": io.jwt.verify_rs256(input.rs256_tampered, data.rs256_cert),
	"es256_jwks": io.jwt.verify_es256(input.es256, data.jwks),
	"hs256_ok": io.jwt.verify_hs256(input.hs256, data.secret),
	"hs256_wrong_secret": io.jwt.verify_hs256(input.hs256, "not-the-secret"),
}
