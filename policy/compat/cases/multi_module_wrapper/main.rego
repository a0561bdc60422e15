package envoy.authz

import rego.v1

import data.rules.team_a
import data.rules.team_b

default allow := false

allow if team_a.allow

allow if team_b.allow

result := {"allowed": allow, "headers": {"x-decided-by": concat(",", sort(deciders))}}

deciders contains "team_a" if team_a.allow

deciders contains "team_b" if team_b.allow

deciders contains "none" if not allow
