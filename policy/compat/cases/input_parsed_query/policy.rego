package envoy.authz

import rego.v1

default allow := false

allow if {
	input.parsed_path == ["people"]
	input.parsed_query.lang == ["en"]
	input.parsed_query.id == ["1", "2"]
}

page := to_number(object.get(input.parsed_query, "page", ["1"])[0])

result := {"allow": allow, "page": page, "ids": {to_number(i) | some i in input.parsed_query.id}, "empty": input.parsed_query.flag}
