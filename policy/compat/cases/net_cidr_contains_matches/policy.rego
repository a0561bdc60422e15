package usher.authz

import rego.v1

result := net.cidr_contains_matches(
	{"office": "10.1.0.0/16", "vpn": "10.8.0.0/16", "lab": "172.16.0.0/12"},
	input.attributes.source.address.socketAddress.address,
)
