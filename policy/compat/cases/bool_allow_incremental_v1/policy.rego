package usher.authz

default allow := false

allow if {
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "public"
}

allow if {
	input.attributes.source.principal in data.admins
}

allow if {
	input.attributes.request.http.method == "OPTIONS"
}
