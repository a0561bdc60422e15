package usher.authz

import rego.v1

principal := input.attributes.source.principal

parts := split(trim_prefix(principal, "spiffe://"), "/")

trust_domain := parts[0]

namespace := parts[2] if parts[1] == "ns"

service_account := parts[4] if parts[3] == "sa"

default allow := false

allow if {
	trust_domain == "mesh.usher.test"
	namespace in data.allowed_namespaces
	not service_account in data.blocked_sas
}

result := {
	"td": trust_domain,
	"ns": namespace,
	"sa": service_account,
	"allow": allow,
	"same_ns_as_me": namespace == split(input.attributes.destination.principal, "/")[4],
	"glob": glob.match("spiffe://mesh.usher.test/ns/*/sa/*", ["/"], principal),
	"regex": regex.match(`^spiffe://mesh\.usher\.test/ns/shop/sa/[a-z-]+$`, principal),
}
