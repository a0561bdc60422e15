package usher.authz

import rego.v1

result := {
	"sha256": crypto.sha256("usher"),
	"sha1": crypto.sha1("usher"),
	"md5": crypto.md5("usher"),
	"sha256_of_body": crypto.sha256(input.attributes.request.http.body),
}
