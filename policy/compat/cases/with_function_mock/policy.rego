package usher.authz

import rego.v1

now_s := time.now_ns() / 1000000000

fresh if input.issued_at > now_s - 300

fake_now := 1767225600000000000

default fresh_at_fixed_time := false

fresh_at_fixed_time if fresh with time.now_ns as fake_now

default stale_at_fixed_time := false

stale_at_fixed_time if {
	fresh with input.issued_at as 1767220000 with time.now_ns as 1767225600000000000
}

result := {"fresh_at_fixed_time": fresh_at_fixed_time, "stale_at_fixed_time": stale_at_fixed_time}
