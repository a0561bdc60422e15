package usher.authz

import rego.v1

result := {
	"sum": 0.1 + 0.2,
	"equal_0_3": 0.1 + 0.2 == 0.3,
	"mul": 3 * 0.1,
	"sum_array": sum([0.1, 0.2]),
	"price_ok": input.amount * 1.1 <= 110,
}
