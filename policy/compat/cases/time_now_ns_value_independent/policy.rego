package usher.authz

import rego.v1

now := time.now_ns()

result := {
	"after_2020": now > 1577836800000000000,
	"is_number": is_number(now),
	"same_in_one_query": now == time.now_ns(),
}
