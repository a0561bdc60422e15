package usher.authz

import rego.v1

f(x) := "small" if x < 10

f(x) := "even" if x % 2 == 0

result := f(count(input.parsed_path) * 2)
