package usher.authz

tier := "gold" if {
	input.attributes.request.http.headers["x-plan"] == "enterprise"
} else := "silver" if {
	input.attributes.request.http.headers["x-plan"] == "team"
} else := "bronze"

rate_limit := data.rates[tier]
