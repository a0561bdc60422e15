package usher.authz

import rego.v1

hdrs := input.attributes.request.http.headers

value_in_array if "GET" in ["GET", "HEAD"]

value_in_object_values if "curl/8.5.0" in hdrs

key_value_in_object if "user-agent", "curl/8.5.0" in hdrs

index_value_in_array if 1, "b" in ["a", "b"]

not_in if not "DELETE" in {"GET"}

result := {
	"value_in_array": value_in_array,
	"value_in_object_values": value_in_object_values,
	"key_value_in_object": key_value_in_object,
	"index_value_in_array": index_value_in_array,
	"not_in": not_in,
	"in_comprehension": [m | some m in ["GET", "PUT", "TRACE"]; m in {"GET", "PUT"}],
	"in_result_value": "HEAD" in {"GET"},
}
