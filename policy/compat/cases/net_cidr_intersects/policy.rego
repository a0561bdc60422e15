package usher.authz

import rego.v1

result := {
	"overlap": net.cidr_intersects("10.0.0.0/8", "10.255.0.0/16"),
	"disjoint": net.cidr_intersects("10.0.0.0/24", "10.0.1.0/24"),
	"v6": net.cidr_intersects("fd00::/8", "fd00:1::/32"),
}
