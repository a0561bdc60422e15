package envoy.authz

import rego.v1

default allow := false

body := input.parsed_body

allow if {
	input.attributes.request.http.method == "POST"
	body.amount <= data.limits[body.currency]
	every item in body.items {
		item.qty > 0
	}
	not input.truncated_body
}

total := sum([x | some item in body.items; x := item.qty * item.price])

result := {"allow": allow, "total": total, "currency": body.currency}
