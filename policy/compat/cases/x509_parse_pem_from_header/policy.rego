package usher.authz

import rego.v1

certs := crypto.x509.parse_certificates(urlquery.decode(input.attributes.request.http.headers["x-client-cert"]))

leaf := certs[0]

result := {
	"count": count(certs),
	"cn": leaf.Subject.CommonName,
	"org": leaf.Subject.Organization,
	"issuer_cn": leaf.Issuer.CommonName,
	"dns": leaf.DNSNames,
	"uris": [sprintf("%s://%s%s", [u.Scheme, u.Host, u.Path]) | some u in leaf.URIs],
	"serial": leaf.SerialNumber,
	"not_after": leaf.NotAfter,
	"is_ca": leaf.IsCA,
}
