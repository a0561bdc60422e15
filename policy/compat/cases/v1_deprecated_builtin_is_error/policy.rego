package usher.authz

allow if any([input.attributes.request.http.method == "GET", false])
