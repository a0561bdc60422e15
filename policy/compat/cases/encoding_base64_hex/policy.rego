package usher.authz

import rego.v1

creds := base64.decode(trim_prefix(input.attributes.request.http.headers.authorization, "Basic "))

result := {
	"basic_user": split(creds, ":")[0],
	"encode": base64.encode("usher:compat?>"),
	"url_encode": base64url.encode("??>>"),
	"std_encode_same": base64.encode("??>>"),
	"url_no_pad": base64url.encode_no_pad("ab"),
	"url_decode_no_pad": base64url.decode("YWI"),
	"url_decode": base64url.decode("Pz8-Pg"),
	"is_valid": base64.is_valid("not base64!"),
	"is_valid_ok": base64.is_valid("YWJj"),
	"hex_encode": hex.encode("usher"),
	"hex_decode": hex.decode("7573686572"),
}
