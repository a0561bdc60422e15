package usher.authz

deny[msg] {
    not input.attributes.request.http.headers["x-tenant"]
    msg := "missing x-tenant"
}

deny[msg] {
    input.attributes.request.http.method == "DELETE"
    msg := sprintf("DELETE by %v", [input.attributes.source.principal])
}

limits[route] = n {
    some route
    n := data.limits[route]
    n > 10
}

caller_ns = ns {
    parts := split(input.attributes.source.principal, "/")
    ns := parts[4]
}

decision = {"deny": deny, "limits": limits, "ns": caller_ns, "allow": count(deny) == 0}
