# An admin-only area: /admin/** only for the operators listed in admins.json;
# everything else open to every mesh workload. The decision is an object, so
# the caller gets a useful status and body.
#
# Query: data.usher.admin.decision
# Data:  admins.json (data.admins)
package usher.admin

is_admin_path if input.parsed_path[0] == "admin"

caller := input.attributes.source.principal

default decision := {
	"allowed": false,
	"http_status": 403,
	"body": "admin only\n",
}

decision := {"allowed": true} if not is_admin_path

decision := {
	"allowed": true,
	# Tell the app who the operator is.
	"headers": {"x-admin": data.admins[caller].name},
} if {
	is_admin_path
	data.admins[caller]
	# Operators may read everything; only those with `write` may change things.
	writes_allowed
}

writes_allowed if input.attributes.request.http.method in {"GET", "HEAD"}

writes_allowed if data.admins[caller].write
