package usher.authz

import rego.v1

vals := ["s", 1, 1.5, true, null, [1], {"a": 1}, {1}]

result := {
	"to_number": [to_number("42"), to_number("-1.5"), to_number(true), to_number(false), to_number(7), to_number(null)],
	"to_number_exp": to_number("1e3"),
	"port": to_number(input.attributes.request.http.headers["x-port"]) + 1,
	"type_names": [type_name(v) | some v in vals],
	"is_string": [is_string(v) | some v in vals],
	"is_number": [is_number(v) | some v in vals],
	"is_boolean": [is_boolean(v) | some v in vals],
	"is_array": [is_array(v) | some v in vals],
	"is_set": [is_set(v) | some v in vals],
	"is_object": [is_object(v) | some v in vals],
	"is_null": [is_null(v) | some v in vals],
}
