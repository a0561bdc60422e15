package usher.authz

import rego.v1

result := {
	"int_div": 10 / 2,
	"frac_div": 7 / 2,
	"mod": 7 % 3,
	"neg_mod": -7 % 3,
	"round": round(2.5),
	"round_neg": round(-2.5),
	"ceil": ceil(1.2),
	"floor": floor(-1.2),
	"abs": abs(-4),
	"big": 9007199254740993 + 0,
	"exp": 1e3,
	"range": numbers.range(1, 5),
	"range_down": numbers.range(3, 1),
	"range_step": numbers.range_step(0, 10, 4),
	"bits": [bits.and(12, 10), bits.or(12, 10), bits.xor(12, 10), bits.lsh(1, 4), bits.rsh(256, 4)],
	"compare_int_float": 1 == 1.0,
}
