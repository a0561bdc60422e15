package usher.authz

import rego.v1

# Go's fmt as OPA's sprintf uses it: flags, widths, precision, verbs on
# values of other types, and Go's error texts.
http := input.attributes.request.http

result := {
	"log_line": sprintf("%-6s %-24s %5d %08.3f", [http.method, http.path, 403, 12.3456]),
	"signs": sprintf("%+d|% d|%+.1f|%+05d|%x|%X|%#x|%o|%#o|%b|%c|%U|%q", [5, 5, 2.25, -3, 255, 255, 255, 8, 8, 5, 65, 9731, 65]),
	"strings": sprintf("[%8.3s]|[%-8q]|%x|% X|%q|%06s", ["abcdef", "ab", "hi", "hi", "tab\there é", "ab"]),
	"floats": sprintf("%e|%E|%.2e|%g|%.3g|%v|%v|%v|%v|%#g", [123456.789, 0.000123, 2.5, 0.00001, 3.14159, 1234567.5, 0.1, 100.0, -0.5, 1.5]),
	"composites": sprintf("%v|%s|%v|%v|%v|%5v|", [[1, "a", null], {"b": {"c"}, "a": []}, set(), true, {"x", "y"}, false]),
	"mismatches": sprintf("%d|%s|%t|%d %d", ["x", 7, true, 1]),
	"extra": sprintf("%s", ["a", 2, "b"]),
	"indexed": sprintf("%[2]s-%[1]s|%*d|%-*d|", ["a", "b", 4, 7, 3, 8]),
	"big": sprintf("%d|%x|%+d", [123456789012345678901234567890, 18446744073709551615, 9223372036854775808]),
}
