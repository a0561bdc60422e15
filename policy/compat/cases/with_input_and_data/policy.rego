package usher.authz

import rego.v1

allow if {
	input.attributes.request.http.method == "GET"
	input.attributes.source.principal in data.allowed
}

default check(_, _) := false

check(method, principal) if {
	allow with input as {"attributes": {
		"request": {"http": {"method": method}},
		"source": {"principal": principal},
	}}
}

default real := false

real := allow

default other_data := false

other_data if {
	allow with input.attributes.request.http.method as "GET"
		with data.allowed as ["spiffe://mesh.usher.test/ns/shop/sa/frontend"]
}

result := {
	"real": real,
	"get_listed": check("GET", "spiffe://a"),
	"get_listed_other_data": other_data,
	"post_listed": check("POST", "spiffe://a"),
}
