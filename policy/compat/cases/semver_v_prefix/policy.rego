package usher.authz

import rego.v1

result := [semver.is_valid(x) | some x in ["v1.2.3", "V1.2.3", "1.2.3"]]
