package usher.authz

import rego.v1

settings := object.union(data.defaults, object.get(data.overrides, input.attributes.request.http.host, {}))

allow if settings.enabled

max_body := settings.max_body

result := {"allow": allow, "max_body": max_body, "settings": settings}
