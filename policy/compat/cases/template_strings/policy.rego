package usher.authz

import rego.v1

greeting := $"caller {input.attributes.source.principal} asked for {input.attributes.request.http.path}"
