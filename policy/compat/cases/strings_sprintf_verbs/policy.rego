package usher.authz

import rego.v1

result := {
	"s_d": sprintf("%s has %d items", ["cart", 3]),
	"v_array": sprintf("%v", [["a", 1, true]]),
	"v_object": sprintf("%v", [{"b": 2, "a": "x"}]),
	"v_set": sprintf("%v", [{3, 1, 2}]),
	"v_null": sprintf("%v", [null]),
	"v_string": sprintf("[%v]", ["str"]),
	"q": sprintf("%q", ["quo\"ted"]),
	"float": sprintf("%.2f", [3.14159]),
	"zero_pad": sprintf("%05d", [42]),
	"x": sprintf("%x", [255]),
	"percent": sprintf("100%%", []),
	"v_number": sprintf("%v %v", [1.5, 10]),
}
