package usher.authz

import rego.v1

allow if {
	input.attributes.request.http.method == m
}
