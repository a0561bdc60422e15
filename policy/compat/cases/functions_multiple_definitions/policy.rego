package usher.authz

import rego.v1

# several bodies, same output where they overlap
is_internal(ip) if net.cidr_contains("10.0.0.0/8", ip)

is_internal(ip) if net.cidr_contains("192.168.0.0/16", ip)

# one definition per argument value
method_weight("GET") := 1

method_weight("POST") := 5

method_weight(m) := 10 if not m in {"GET", "POST"}

# functions with several arguments and composite results
scope_for(role, resource) := sprintf("%s:%s", [resource, verb]) if {
	verb := {"admin": "write", "viewer": "read"}[role]
}

default external := false

external := is_internal("8.8.8.8")

result := {
	"internal": [is_internal(ip) | some ip in ["10.1.2.3", "192.168.1.1"]],
	"external": external,
	"weights": [method_weight(m) | some m in ["GET", "POST", "DELETE"]],
	"scopes": {scope_for("admin", "orders"), scope_for("viewer", "orders")},
}
