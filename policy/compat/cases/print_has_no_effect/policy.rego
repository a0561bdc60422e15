package usher.authz

import rego.v1

allow if {
	print("checking", input.attributes.request.http.path)
	input.attributes.request.http.method == "GET"
}
