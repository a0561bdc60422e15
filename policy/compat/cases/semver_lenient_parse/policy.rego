package usher.authz

import rego.v1

# OPA's semver parser: a leading v, leading zeros, empty pre-release or
# metadata; pre-release ordering.
result := {
	"valid": [semver.is_valid(v) | some v in ["v1.2.3", "01.2.3", "1.2.3-", "1.2.3+", "1.2.3-01", "v1.2.3-beta+b.1", "1.2.3-a..b", "1.2.3+a+b", "vv1.2.3", "1.2", 1]],
	"cmp": [semver.compare(a, b) | some [a, b] in [
		["v1.2.3", "1.2.4"],
		["01.2.3", "1.2.3"],
		["1.0.0-alpha", "1.0.0-alpha.1"],
		["1.0.0-alpha.1", "1.0.0-alpha.beta"],
		["1.0.0-beta.2", "1.0.0-beta.11"],
		["1.0.0-rc.1+build", "1.0.0-rc.1"],
		["1.0.0-B", "1.0.0-a"],
		["1.2.3-", "1.2.3"],
	]],
}
