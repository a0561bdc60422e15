package usher.authz

import rego.v1

secret_paths contains path if {
	walk(input.parsed_body, [path, value])
	is_string(value)
	regex.match(`^(sk|pk)_live_`, value)
}
