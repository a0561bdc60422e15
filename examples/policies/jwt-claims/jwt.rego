# Rules on the claims of the caller's JWT.
#
# Query: data.usher.jwt.allow
#
# Two sources of claims:
# - input.usher.jwt.claims: the claims of a token usher itself verified
#   (signature, issuer, audience, expiry) before the policy runs. Prefer it.
# - io.jwt.decode on the Authorization header, as OPA-Envoy policies often
#   do behind an Envoy that verified the token. io.jwt.decode does NOT verify
#   anything: use it only for tokens something trusted checked already (or
#   use io.jwt.decode_verify with the issuer's keys, see ../envoy-style).
package usher.jwt

default allow := false

claims := input.usher.jwt.claims

scopes := {s | some s in split(claims.scope, " ")}

method := input.attributes.request.http.method

# Reads need orders:read, writes orders:write.
allow if {
	method in {"GET", "HEAD"}
	"orders:read" in scopes
}

allow if {
	method in {"POST", "PUT", "PATCH", "DELETE"}
	"orders:write" in scopes
}

# Support staff (a role claim of the forwarded, already verified token) may
# read any order.
allow if {
	method == "GET"
	"support" in bearer_claims.roles
	bearer_claims.iss == "https://auth.mesh.local"
}

bearer_claims := payload if {
	[scheme, token] := split(input.attributes.request.http.headers.authorization, " ")
	lower(scheme) == "bearer"
	[_, payload, _] := io.jwt.decode(token)
}
