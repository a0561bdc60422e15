package usher.authz

import rego.v1

allow if acme.lookup(input.attributes.source.principal)
