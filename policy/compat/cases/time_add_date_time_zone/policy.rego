package usher.authz

import rego.v1

# time.add_date on [ns, tz]: Go's AddDate in that zone, into the hour that
# does not exist (spring) and the one that exists twice (autumn).
s := input.schedule

result := {
	"spring": time.format(time.add_date(s.before_spring, 0, 0, 1)),
	"autumn": time.format(time.add_date(s.before_autumn, 0, 0, 1)),
	"new_york": time.format(time.add_date(s.new_york, 0, 1, 0)),
	"utc_end_of_month": time.date(time.add_date(s.utc_named, 0, 1, 0)),
	"back_a_month": time.date(time.add_date(time.parse_rfc3339_ns("2024-03-31T12:00:00Z"), 0, -1, 0)),
	"many": time.date(time.add_date(time.parse_rfc3339_ns("2024-01-01T00:00:00Z"), -1, 25, 400)),
	"diff_across_months": time.diff(time.parse_rfc3339_ns("2024-03-01T00:00:00Z"), time.parse_rfc3339_ns("2024-01-31T12:00:00Z")),
}
