package usher.authz

import rego.v1

result := array.flatten([1, [2, [3, 4]], [], [[5]]])
