package usher.authz

import rego.v1

by_first_letter := {substring(seg, 0, 1): seg | some seg in input.parsed_path}
