package usher.lib

is_get if {
	input.attributes.request.http.method == "GET"
}

path_allowed contains p if {
	p := data.paths[_]
}
