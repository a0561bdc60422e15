package usher.admin_test

import data.usher.admin

req(method, segments, caller) := {
	"attributes": {
		"source": {"principal": caller},
		"request": {"http": {"method": method}},
	},
	"parsed_path": segments,
}

console := "spiffe://mesh.local/ns/ops/sa/console"

auditor := "spiffe://mesh.local/ns/ops/sa/auditor"

frontend := "spiffe://mesh.local/ns/shop/sa/frontend"

test_open_paths_for_everyone if {
	admin.decision == {"allowed": true} with input as req("POST", ["api", "orders"], frontend)
}

test_admin_path_refused_with_a_body if {
	d := admin.decision with input as req("GET", ["admin", "users"], frontend)
	d.allowed == false
	d.http_status == 403
	d.body == "admin only\n"
}

test_operator_reads_and_writes if {
	d := admin.decision with input as req("DELETE", ["admin", "users", "7"], console)
	d.allowed
	d.headers["x-admin"] == "console"
}

test_auditor_reads_only if {
	admin.decision.allowed with input as req("GET", ["admin", "audit"], auditor)
	not admin.decision.allowed with input as req("POST", ["admin", "users"], auditor)
}

test_no_identity_refused if {
	not admin.decision.allowed with input as {"parsed_path": ["admin"], "attributes": {"request": {"http": {"method": "GET"}}}}
}
