package usher.authz

import rego.v1

# io.jwt.encode_sign / encode_sign_raw with every key type OPA signs with;
# each token verified with the public half of its key.
keys := data.signing_keys

private_fields := ["d", "p", "q", "dp", "dq", "qi"]

public_jwk(k) := json.marshal(object.remove(k, private_fields))

claims := {"sub": "alice", "iss": "usher-compat", "iat": 1767225600, "exp": 1767229200, "note": "<&>"}

sign(alg, key) := io.jwt.encode_sign({"alg": alg, "typ": "JWT"}, claims, key)

verified := {
	"RS256": io.jwt.verify_rs256(sign("RS256", keys.rsa), public_jwk(keys.rsa)),
	"RS384": io.jwt.verify_rs384(sign("RS384", keys.rsa), public_jwk(keys.rsa)),
	"RS512": io.jwt.verify_rs512(sign("RS512", keys.rsa), public_jwk(keys.rsa)),
	"PS256": io.jwt.verify_ps256(sign("PS256", keys.rsa), public_jwk(keys.rsa)),
	"PS384": io.jwt.verify_ps384(sign("PS384", keys.rsa), public_jwk(keys.rsa)),
	"PS512": io.jwt.verify_ps512(sign("PS512", keys.rsa), public_jwk(keys.rsa)),
	"ES256": io.jwt.verify_es256(sign("ES256", keys.p256), public_jwk(keys.p256)),
	"ES384": io.jwt.verify_es384(sign("ES384", keys.p384), public_jwk(keys.p384)),
	"ES512": io.jwt.verify_es512(sign("ES512", keys.p521), public_jwk(keys.p521)),
	"EdDSA": io.jwt.verify_eddsa(sign("EdDSA", keys.ed25519), public_jwk(keys.ed25519)),
	"HS256": io.jwt.verify_hs256(sign("HS256", keys.oct), "usher-compat-signing-secret"),
}

decoded := io.jwt.decode_verify(sign("ES256", keys.p256), {"cert": json.marshal({"keys": [object.remove(keys.p256, private_fields)]}), "time": 1767225700000000000, "iss": "usher-compat"})

raw := io.jwt.encode_sign_raw(`{"alg":"PS256","kid":"k1"}`, `{"sub":"bob"}`, json.marshal({"keys": [keys.rsa]}))

result := {
	"verified": verified,
	"decode_verify": decoded,
	"raw_verifies": io.jwt.verify_ps256(raw, public_jwk(keys.rsa)),
	"raw_header": io.jwt.decode(raw)[0],
	# Deterministic signatures: OPA's token, byte for byte.
	"hs256_token": sign("HS256", keys.oct),
	"rs256_token": sign("RS256", keys.rsa),
}
