package usher.authz

allow {
	input.attributes.request.http.method == "GET"
}
