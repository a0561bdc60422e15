package envoy.authz

import rego.v1

suspicious contains name if {
	some name, value in input.attributes.request.http.headers
	some needle in ["<script", "../", "' or 1=1"]
	contains(lower(value), needle)
}

result := {"allowed": count(suspicious) == 0, "headers": {"x-flagged": concat(",", sort(suspicious))}}
