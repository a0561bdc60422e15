package usher.authz

import rego.v1

result := {
	"flag_i": regex.match(`(?i)^bearer `, input.attributes.request.http.headers.authorization),
	"flag_i_group": regex.match(`(?i:ADMIN)-[0-9]+`, "admin-42"),
	"flag_s": regex.match(`(?s)a.b`, "a\nb"),
	"find": regex.find_n(`(?i)sk_live_[a-z]+`, "SK_LIVE_abc and sk_live_def", -1),
}
