package usher.authz

import rego.v1

verified := io.jwt.decode_verify(input.token, {"cert": data.keys.rs256_cert, "iss": "https://issuer.usher.test", "aud": "orders", "time": input.now_ns})

result := {"valid": verified[0], "header": verified[1], "sub": verified[2].sub}
