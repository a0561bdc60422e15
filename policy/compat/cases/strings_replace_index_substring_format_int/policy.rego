package usher.authz

import rego.v1

result := {
	"replace": replace("/a//b///c", "//", "/"),
	"replace_n": strings.replace_n({"{tenant}": "acme", "{id}": "7"}, "/t/{tenant}/o/{id}"),
	"indexof": indexof("spiffe://mesh/ns/x", "/ns/"),
	"indexof_missing": indexof("abc", "z"),
	"indexof_n": indexof_n("a/b/c", "/"),
	"substring": substring("spiffe://mesh.usher.test/ns/a", 9, 15),
	"substring_to_end": substring("abcdef", 2, -1),
	"substring_past_end": substring("abc", 1, 100),
	"format_int_2": format_int(10, 2),
	"format_int_16": format_int(255, 16),
	"format_int_neg": format_int(-42, 10),
	"format_int_float": format_int(3.99, 10),
	"format_int_8": format_int(64, 8),
}
