package usher.authz

import rego.v1

default allow := false

default quota := 0

quota := data.quotas[input.attributes.request.http.headers["x-plan"]]

default role_of(_) := "anonymous"

role_of(p) := data.roles[p]

default is_trusted(_, _) := false

is_trusted(p, ip) if {
	data.roles[p] == "service"
	net.cidr_contains("10.0.0.0/8", ip)
}

result := {
	"allow": allow,
	"quota": quota,
	"role": role_of(input.attributes.source.principal),
	"unknown_role": role_of("spiffe://elsewhere/x"),
	"trusted": is_trusted(input.attributes.source.principal, input.attributes.source.address.socketAddress.address),
}
