package usher.authz

import rego.v1

issued := time.parse_rfc3339_ns(input.issued)

expires := time.add_date(issued, 0, 1, 0)

result := {
	"add_month_from_jan_31": time.date(expires),
	"add_month_leap": time.date(time.add_date(time.parse_rfc3339_ns("2024-01-31T00:00:00Z"), 0, 1, 0)),
	"add_year_feb_29": time.date(time.add_date(time.parse_rfc3339_ns("2024-02-29T00:00:00Z"), 1, 0, 0)),
	"add_days": time.date(time.add_date(issued, 0, 0, 45)),
	"diff": time.diff(expires, issued),
	"diff_simple": time.diff(time.parse_rfc3339_ns("2026-03-15T10:00:00Z"), time.parse_rfc3339_ns("2025-01-10T08:30:00Z")),
}
