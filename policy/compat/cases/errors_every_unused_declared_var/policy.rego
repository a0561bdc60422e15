package usher.authz

import rego.v1

allow if {
	every i, seg in input.parsed_path {
		i < 5
	}
}
