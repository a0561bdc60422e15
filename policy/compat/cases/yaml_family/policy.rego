package usher.authz

import rego.v1

result := {
	"marshal": yaml.marshal({"name": "orders", "ports": [80, 443], "tls": {"enabled": true}}),
	"unmarshal": yaml.unmarshal("name: orders\nports:\n  - 80\n  - 443\nratio: 0.5\nflag: true\nempty:\n"),
	"valid": yaml.is_valid("a: [1, 2"),
	"valid_ok": yaml.is_valid("a: 1"),
}
