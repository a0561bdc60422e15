package envoy.gate

import rego.v1

allowed if input.attributes.request.http.method == "GET"

headers["x-gate"] := "open" if allowed

headers["x-path-depth"] := format_int(count(input.parsed_path), 10)

http_status := 418 if not allowed

internal_note(x) := concat(":", ["n", x])
