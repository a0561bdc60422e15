package usher.authz

import rego.v1

cert := crypto.x509.parse_certificates(input.cert_der_b64)[0]

result := {
	"subject": cert.Subject.CommonName,
	"spiffe": [u | some x in cert.URIs; u := concat("", [x.Scheme, "://", x.Host, x.Path])],
	"not_before": cert.NotBefore,
	"version": cert.Version,
}
