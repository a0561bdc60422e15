package envoy.authz

import rego.v1

default allow := false

token_present if startswith(input.attributes.request.http.headers.authorization, "Bearer ")

allow if {
	token_present
	input.attributes.request.http.method == "GET"
}

status_code := 200 if {
	allow
} else := 401 if {
	not token_present
} else := 403

default body := ""

body := "Authentication Failed" if status_code == 401

body := "Unauthorized Request" if status_code == 403

result := {"allowed": allow, "http_status": status_code, "body": body}
