package usher.authz

import rego.v1

# A legacy webhook signed with HMAC-MD5, with a Content-MD5 digest.
http := input.attributes.request.http

default allow := false

allow if {
	http.method == "POST"
	crypto.hmac.equal(crypto.hmac.md5(http.body, "legacy-webhook-key"), http.headers["x-signature-md5"])
	crypto.md5(http.body) == http.headers["content-md5"]
}
