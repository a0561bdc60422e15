# Method and path rules: which calls each caller may make.
#
# Query: data.usher.routes.allow
# Data:  routes.yaml (merged at the root of `data`: data.routes)
#
# A route allows a method on a path pattern (glob: `*` matches one segment,
# `**` any number) for the callers it lists, or for every mesh workload when
# it lists none.
package usher.routes

default allow := false

request := input.attributes.request.http

# The path without the query string.
path := concat("/", ["", concat("/", input.parsed_path)])

allow if {
	some route in data.routes
	request.method in route.methods
	glob.match(route.path, ["/"], path)
	caller_may_use(route)
}

caller_may_use(route) if not route.callers

caller_may_use(route) if input.attributes.source.principal in route.callers

# An order can be read by the caller that placed it only: the caller's
# service account must match the `owner` query parameter.
allow if {
	request.method == "GET"
	["api", "v1", "orders", _] = input.parsed_path
	input.parsed_query.owner == [caller_account]
}

caller_account := account if {
	["spiffe:", "", "mesh.local", "ns", _, "sa", account] := split(input.attributes.source.principal, "/")
}
