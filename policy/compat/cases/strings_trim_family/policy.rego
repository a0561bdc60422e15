package usher.authz

import rego.v1

result := {
	"trim": trim("--==value==--", "-="),
	"trim_left": trim_left("///a/b//", "/"),
	"trim_right": trim_right("///a/b//", "/"),
	"trim_prefix": trim_prefix(input.attributes.request.http.headers.authorization, "Bearer "),
	"trim_prefix_absent": trim_prefix("token", "Bearer "),
	"trim_suffix": trim_suffix("orders.shop.svc.cluster.local", ".cluster.local"),
	"trim_space": trim_space("  \t padded \n "),
}
