package envoy.authz

import rego.v1

import input.attributes.request.http

default allow := false

allow if {
	http.headers["x-api-version"] == "2"
	http.headers.accept != "text/html"
	not http.headers.cookie
}

langs := [trim_space(l) | some l in split(http.headers["accept-language"], ",")]

result := {
	"allow": allow,
	"langs": langs,
	"host": http.host,
	"has_cookie": "cookie" in object.keys(http.headers),
	"request_id": http.headers["x-request-id"],
	"protocol": http.protocol,
}
