package usher.authz

allow if input.attributes.request.http.method == "GET"
