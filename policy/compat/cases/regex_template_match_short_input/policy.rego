package usher.authz

import rego.v1

default allow := false

allow if regex.template_match("/api/{[a-z0-9]+}/orders", input.attributes.request.http.path, "{", "}")
