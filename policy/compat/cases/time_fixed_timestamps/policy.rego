package usher.authz

import rego.v1

issued := time.parse_rfc3339_ns(input.issued)

result := {
	"issued_ns": issued,
	"with_offset": time.parse_rfc3339_ns("2026-03-01T12:00:00+02:00"),
	"fractional": time.parse_rfc3339_ns("2026-03-01T12:00:00.123456789Z"),
	"date": time.date(issued),
	"clock": time.clock(issued),
	"weekday": time.weekday(issued),
	"date_tz": time.date([issued, "America/New_York"]),
	"parse_ns": time.parse_ns("2006-01-02", "2026-07-04"),
	"duration": time.parse_duration_ns("1h30m"),
	"duration_ms": time.parse_duration_ns("250ms"),
	"format": time.format([issued, "UTC", "2006-01-02T15:04:05Z07:00"]),
	"in_window": issued < input.now_ns,
}
