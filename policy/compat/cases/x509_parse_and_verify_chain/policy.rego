package usher.authz

import rego.v1

result := [ok, [c.Subject.CommonName | some c in certs]] if {
	[ok, certs] := crypto.x509.parse_and_verify_certificates(concat("", [input.ca_pem, input.cert_pem]))
}
