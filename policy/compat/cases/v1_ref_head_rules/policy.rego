package usher.authz

routes["/orders"].methods := ["GET", "POST"]

routes["/orders"].public := false

routes["/health"].methods := ["GET"]

routes["/health"].public := true

limits.burst := 20

limits.rate := 5 if input.attributes.request.http.headers["x-plan"] == "free"

limits.rate := 50 if input.attributes.request.http.headers["x-plan"] != "free"

result := {"routes": routes, "limits": limits}
