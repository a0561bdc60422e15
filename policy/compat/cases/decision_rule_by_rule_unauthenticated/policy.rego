package envoy.authz

import rego.v1

import input.attributes.request.http

default allow := false

allow if {
	http.method in {"GET", "HEAD"}
	startswith(http.path, "/catalog/")
}

allow if {
	input.attributes.source.principal == "spiffe://mesh.usher.test/ns/ops/sa/admin"
}

status := 200 if allow
else := 401 if not http.headers.authorization
else := 403

reason := "missing credentials" if status == 401
reason := sprintf("%s %s is not allowed", [http.method, http.path]) if status == 403

result["allowed"] := allow
result.headers := {"x-authz-reason": reason} if not allow
result.headers := {"x-authz-by": "usher-compat", "x-caller": input.attributes.source.principal} if allow
result["http_status"] := status if not allow
result["body"] := json.marshal({"error": reason}) if not allow
result["response_headers_to_add"] := {"cache-control": "no-store"}
result["request_headers_to_remove"] := ["authorization", "cookie"] if allow
