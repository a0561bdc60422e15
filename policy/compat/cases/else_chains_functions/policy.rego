package usher.authz

import rego.v1

classify(path) := "health" if {
	path in {"/healthz", "/readyz"}
} else := "api" if {
	startswith(path, "/api/")
} else := "static" if {
	endswith(path, ".css")
} else := "other"

classes := [classify(p) | some p in ["/healthz", "/api/x", "/site.css", "/x"]]

level := "high" if input.attributes.request.http.method == "DELETE"
else := "medium" if input.attributes.request.http.method in {"PUT", "POST", "PATCH"}
else := "low"

result := {"classes": classes, "level": level}
