package usher.authz

import rego.v1

roles := data.roles

# some x in array
has_admin if some "admin" in roles[input.attributes.source.principal]

# some i, x in array
admin_index := i if {
	some i, r in roles[input.attributes.source.principal]
	r == "admin"
}

# some k, v in object
owners contains principal if {
	some principal, rs in roles
	"owner" in rs
}

# some with a plain reference
first_vowel := c if {
	some i
	c := input.parsed_path[i]
	regex.match(`^[aeiou]`, c)
}

result := {"has_admin": has_admin, "admin_index": admin_index, "owners": owners, "first_vowel": first_vowel}
