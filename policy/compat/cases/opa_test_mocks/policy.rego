package envoy.authz

import rego.v1

default allow := false

token := payload if {
	[_, encoded] := split(input.attributes.request.http.headers.authorization, " ")
	[_, payload, _] := io.jwt.decode(encoded)
}

fresh if token.exp * 1000000000 > time.now_ns()

role_of(user) := resp.body.role if {
	resp := http.send({"method": "GET", "url": sprintf("https://directory.internal/users/%s", [user]), "timeout": "1s"})
	resp.status_code == 200
}

allow if {
	fresh
	role_of(token.sub) in data.roles.writers
	input.attributes.request.http.method in {"POST", "PUT"}
}

allow if {
	fresh
	input.attributes.request.http.method == "GET"
}

digest := crypto.sha256(input.attributes.request.http.body)
