package usher.authz

import rego.v1

result := {
	"left": sprintf("[%-6s]", ["ab"]),
	"right": sprintf("[%6s]", ["ab"]),
	"int_width": sprintf("[%4d]", [7]),
	"float_width": sprintf("[%8.3f]", [3.14159]),
	"table": concat("\n", [sprintf("%-8s %5d", [r.name, r.n]) | some r in [{"name": "orders", "n": 12}, {"name": "cart", "n": 3}]]),
}
