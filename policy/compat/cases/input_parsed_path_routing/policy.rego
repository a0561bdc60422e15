package envoy.authz

import rego.v1

default allow := false

allow if input.parsed_path == ["people"]

allow if {
	["api", "v1", "orders", order_id] = input.parsed_path
	regex.match(`^[0-9]+$`, order_id)
	input.attributes.request.http.method == "GET"
}

route := concat("/", array.slice(input.parsed_path, 0, 3))

result := {"allow": allow, "route": route, "depth": count(input.parsed_path), "last": input.parsed_path[count(input.parsed_path) - 1]}
