package usher.authz

import rego.v1

decoded := io.jwt.decode(trim_prefix(input.attributes.request.http.headers.authorization, "Bearer "))

result := {"header": decoded[0], "payload": decoded[1], "sig_hex_len": count(decoded[2])}
