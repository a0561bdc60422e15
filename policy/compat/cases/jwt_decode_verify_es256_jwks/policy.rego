package usher.authz

import rego.v1

result := io.jwt.decode_verify(input.token, {"cert": data.jwks, "alg": "ES256", "aud": "orders", "time": input.now_ns})
