package usher.authz

import rego.v1

default wrong_index := "undefined"

wrong_index := true if 0, "b" in ["a", "b"]

default wrong_key := "undefined"

wrong_key := true if "accept", "curl/8.5.0" in input.attributes.request.http.headers

# Defined only for this input, not for usher's warm-up requests (the RVM is
# used when it agrees with the interpreter on those).
result := {"wrong_index": wrong_index, "wrong_key": wrong_key} if {
	input.attributes.request.http.headers["x-compat-gate"] == "on"
}
