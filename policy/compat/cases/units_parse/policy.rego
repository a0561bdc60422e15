package usher.authz

import rego.v1

result := {
	"k": units.parse("10K"),
	"ki": units.parse("10Ki"),
	"milli": units.parse("200m"),
	"mega_frac": units.parse("1.5M"),
	"plain": units.parse("42"),
	"bytes_kb": units.parse_bytes("5KB"),
	"bytes_kib": units.parse_bytes("5KiB"),
	"bytes_lower": units.parse_bytes("2mb"),
	"bytes_plain": units.parse_bytes("1024"),
	"bytes_gi": units.parse_bytes("1Gi"),
	"limit_ok": units.parse_bytes(input.attributes.request.http.headers["content-length"]) <= units.parse_bytes("1MB"),
}
