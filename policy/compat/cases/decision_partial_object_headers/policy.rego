package envoy.authz

import rego.v1

forwarded contains name if {
	some name, _ in input.attributes.request.http.headers
	startswith(name, "x-b3-")
}

headers[name] := input.attributes.request.http.headers[name] if some name in forwarded

headers["x-forwarded-principal"] := input.attributes.source.principal

result := {
	"allowed": true,
	"headers": headers,
	"response_headers_to_add": [{"x-a": "1"}, {"x-b": ["2", "3"]}],
	"request_headers_to_remove": forwarded,
}
