package usher.authz

import rego.v1

result := io.jwt.decode_verify(input.token, {"secret": data.secret, "aud": "orders", "time": input.now_ns})
