package usher.authz

import rego.v1

tier := "a" if input.attributes.request.http.method == "GET"

tier := "b" if startswith(input.attributes.request.http.path, "/")
