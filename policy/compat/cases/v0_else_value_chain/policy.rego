package usher.authz

tier = "gold" {
    input.attributes.request.http.headers["x-plan"] == "enterprise"
} else = "silver" {
    input.attributes.request.http.headers["x-plan"] == "team"
} else = "bronze" {
    true
}

rate_limit = data.rates[tier]
