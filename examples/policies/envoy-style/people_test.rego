package envoy.people_test

import data.envoy.people

# HS256 with people.json's secret; nbf 2023-11-14, exp 2100-01-01.
# guest: sub base64url("alice"), admin: sub base64url("bob").
guest := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJZV3hwWTJVIiwicm9sZSI6Imd1ZXN0IiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9.D2gkQl2iY8_jIr1Yj22-rDXPoZOILHBRXPS_aFANhow"

admin := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJZbTlpIiwicm9sZSI6ImFkbWluIiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9.h21OVYAp2IA7Z6p-nOpDnxR4JG8SyeSIzO_r5_OEOwc"

# The admin token, expired in 2020.
expired := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJZbTlpIiwicm9sZSI6ImFkbWluIiwibmJmIjoxNjAwMDAwMDAwLCJleHAiOjE2MDAwMDM2MDB9.KKuAbaHQkV631QtiTTDrUX2aMC_qEDQDYzeu_oG5p9Q"

# The admin claims signed with another secret.
forged := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJZbTlpIiwicm9sZSI6ImFkbWluIiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9.SOr0zeauUI4vYQepVzYAligd2lv0S3PR0VArQ3wj9Gc"

req(method, path, token, body) := {
	"attributes": {"request": {"http": {
		"method": method,
		"path": path,
		"headers": {"authorization": concat(" ", ["Bearer", token])},
	}}},
	"parsed_body": body,
}

test_guest_reads if {
	people.allow with input as req("GET", "/people", guest, null)
	people.allow with input as req("GET", "/people/42", guest, null)
	d := people.decision with input as req("GET", "/people", guest, null)
	d.headers["x-user-role"] == "guest"
}

test_guest_cannot_add if {
	d := people.decision with input as req("POST", "/people", guest, {"firstname": "Carol"})
	d.allowed == false
	d.http_status == 403
}

test_admin_adds_someone_else if {
	people.allow with input as req("POST", "/people", admin, {"firstname": "Carol"})
}

test_admin_cannot_add_themselves if {
	not people.allow with input as req("POST", "/people", admin, {"firstname": "Bob"})
}

test_invalid_tokens_get_401 if {
	every t in [expired, forged, "garbage"] {
		people.decision.http_status == 401 with input as req("GET", "/people", t, null)
	}
}

test_every_invalid_token_refused if {
	every t in [expired, forged, "garbage", ""] {
		not people.allow with input as req("GET", "/people", t, null)
	}
}

test_missing_authorization_gets_401 if {
	d := people.decision with input as {"attributes": {"request": {"http": {"method": "GET", "path": "/people", "headers": {}}}}}
	d.http_status == 401
}

test_other_paths_refused if {
	not people.allow with input as req("GET", "/admin", admin, null)
}
