package usher.authz

import rego.v1

allow if count(5) > 1
