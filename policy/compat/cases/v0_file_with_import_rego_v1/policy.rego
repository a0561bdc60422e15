package usher.authz

import rego.v1

default allow := false

allow if {
	input.attributes.request.http.method == "GET"
	"metrics" in input.parsed_path
}
