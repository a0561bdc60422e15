package usher.authz

import rego.v1

deny contains "no tenant header" if not input.attributes.request.http.headers["x-tenant"]

deny contains msg if {
	input.attributes.request.http.method == "DELETE"
	msg := sprintf("%s may not DELETE", [input.attributes.source.principal])
}
