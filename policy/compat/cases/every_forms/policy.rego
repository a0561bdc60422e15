package usher.authz

import rego.v1

all_short if {
	every seg in input.parsed_path {
		count(seg) <= 8
	}
}

all_headers_lower if {
	every name, value in input.attributes.request.http.headers {
		name == lower(name)
		is_string(value)
	}
}

empty_every if {
	every x in [] {
		x == 1
	}
}

default failing_every := "undefined"

failing_every := true if {
	every i, seg in input.parsed_path {
		i < 1
		seg != ""
	}
}

result := {
	"all_short": all_short,
	"all_headers_lower": all_headers_lower,
	"empty_every": empty_every,
	"failing_every": failing_every,
}
