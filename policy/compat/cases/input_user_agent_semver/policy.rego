package usher.authz

import rego.v1

ua := input.attributes.request.http.headers["user-agent"]

client_version := v if {
	[name, v] := split(ua, "/")
	name == "shop-cli"
	semver.is_valid(v)
}

result := {
	"version": client_version,
	"too_old": semver.compare(client_version, "2.4.0") < 0,
	"cmp": [semver.compare("1.2.3", "1.2.3"), semver.compare("1.10.0", "1.9.9"), semver.compare("1.0.0-rc.1", "1.0.0")],
	"valid": [semver.is_valid(x) | some x in ["1.2.3", "1.2.3-rc.1+build.5", "1.2"]],
}
