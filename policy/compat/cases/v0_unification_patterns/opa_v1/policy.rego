package usher.authz

allow if {
	["api", version, "users", user_id] = input.parsed_path
	version = "v2"
	user_id = input.attributes.request.http.headers["x-user-id"]
}

route := r if {
	["api", v, resource, _, _, _] = array.concat(input.parsed_path, ["", ""])
	r := {"version": v, "resource": resource}
}

result := {"allow": allow, "route": route}
