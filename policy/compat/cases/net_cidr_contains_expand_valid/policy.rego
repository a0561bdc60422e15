package usher.authz

import rego.v1

src := input.attributes.source.address.socketAddress.address

result := {
	"contains_ip": net.cidr_contains("10.0.0.0/8", src),
	"contains_cidr": net.cidr_contains("10.0.0.0/8", "10.1.0.0/16"),
	"not_contains": net.cidr_contains("192.168.0.0/16", src),
	"v6": net.cidr_contains("fd00::/8", "fd12:3456::1"),
	"expand": net.cidr_expand("192.168.4.0/30"),
	"is_valid": [net.cidr_is_valid(c) | some c in ["10.0.0.0/8", "10.0.0.0/33", "nope"]],
}
