package usher.authz

import rego.v1

result := {
	"encode": urlquery.encode("a b&c=d/é"),
	"decode": urlquery.decode("a+b%26c%3Dd%2F%C3%A9"),
	"encode_object": urlquery.encode_object({"q": "rock & roll", "tags": ["a", "b"], "set": {"y", "x"}}),
	"decode_object": urlquery.decode_object("page=2&tag=a&tag=b&empty=&q=x+y"),
	"roundtrip": urlquery.decode_object(urlquery.encode_object({"k": "v w"})),
	"from_path": urlquery.decode_object(split(input.attributes.request.http.path, "?")[1]),
}
