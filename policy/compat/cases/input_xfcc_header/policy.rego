package envoy.authz

import rego.v1

xfcc := input.attributes.request.http.headers["x-forwarded-client-cert"]

fields := {k: v |
	some kv in split(xfcc, ";")
	[k, v] := split(kv, "=")
}

caller := fields.URI

default allow := false

allow if caller == "spiffe://mesh.usher.test/ns/shop/sa/frontend"

result := {"allow": allow, "by": fields.By, "hash_len": count(fields.Hash)}
