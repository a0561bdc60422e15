package envoy.authz_test

import rego.v1

import data.envoy.authz

post := {"attributes": {"request": {"http": {"method": "POST", "headers": {"authorization": "Bearer x.y.z"}, "body": "hello"}}}}

get := json.patch(post, [{"op": "replace", "path": "/attributes/request/http/method", "value": "GET"}])

writer_token := [{"alg": "none"}, {"sub": "alice", "exp": 2000}, ""]

directory_says(role) := {"status_code": 200, "body": {"role": role}}

fake_send(req) := directory_says("editor") if endswith(req.url, "/alice")

fake_send(req) := {"status_code": 404} if not endswith(req.url, "/alice")

test_writer_may_post if {
	authz.allow with input as post
		with io.jwt.decode as writer_token
		with time.now_ns as 1000000000000
		with http.send as directory_says("editor")
		with data.roles.writers as ["editor"]
}

test_reader_may_not_post if {
	not authz.allow with input as post
		with io.jwt.decode as writer_token
		with time.now_ns as 1000000000000
		with http.send as directory_says("reader")
		with data.roles.writers as ["editor"]
}

test_function_mock if {
	authz.allow with input as post
		with io.jwt.decode as writer_token
		with time.now_ns as 1000000000000
		with http.send as fake_send
		with data.roles.writers as ["editor"]
}

test_expired_token if {
	not authz.allow with input as get
		with io.jwt.decode as writer_token
		with time.now_ns as 3000000000000
}

test_get_allowed if {
	authz.allow with input as get
		with io.jwt.decode as writer_token
		with time.now_ns as 1000000000000
}

# Fails on purpose: a reader may read.
test_wrong_expectation if {
	not authz.allow with input as get
		with io.jwt.decode as writer_token
		with time.now_ns as 1000000000000
}

test_digest_mocked if {
	authz.digest == "mocked" with input as post with crypto.sha256 as "mocked"
}

test_digest_real if {
	authz.digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" with input as post
}

test_own_package_mock if {
	crypto.sha256("anything") == "m" with crypto.sha256 as "m"
}

todo_test_admin_may_delete if {
	false
}
