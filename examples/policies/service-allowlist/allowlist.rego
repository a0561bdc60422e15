# Service-to-service allow list by SPIFFE ID.
#
# Query: data.usher.authz.allow   (usher's default)
#
# The caller's identity comes from its mesh client certificate, verified by
# usher during the mTLS handshake: input.attributes.source.principal.
package usher.authz

# The services that may call this one.
allowed_callers := {
	"spiffe://mesh.local/ns/shop/sa/frontend",
	"spiffe://mesh.local/ns/shop/sa/checkout",
}

# Every workload of these namespaces may call too.
allowed_namespaces := {"ops"}

default allow := false

allow if input.attributes.source.principal in allowed_callers

allow if caller_namespace in allowed_namespaces

# "ops" for spiffe://mesh.local/ns/ops/sa/backup
caller_namespace := ns if {
	["spiffe:", "", "mesh.local", "ns", ns, "sa", _] := split(input.attributes.source.principal, "/")
}
