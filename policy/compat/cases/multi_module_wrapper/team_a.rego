package rules.team_a

import rego.v1

allow if {
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "a"
}
