package usher.authz

import rego.v1

blocked_ips := {"10.6.6.6", "10.6.6.7"}

default allow := false

allow if {
	not input.attributes.source.address.socketAddress.address in blocked_ips
	not is_write
	not input.attributes.request.http.headers["x-debug"]
}

is_write if input.attributes.request.http.method in {"POST", "PUT", "DELETE", "PATCH"}

default is_write := false

result := {"allow": allow, "is_write": is_write}
