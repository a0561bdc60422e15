package usher.authz

import rego.v1

result := net.cidr_merge(["10.0.0.0/24", "10.0.1.0/24", "192.168.1.7", "10.0.0.128/25"])
