package rules.team_b

import rego.v1

allow if {
	input.parsed_path[0] in {"a", "b"}
	input.attributes.request.http.headers["x-team"] == "b"
}
