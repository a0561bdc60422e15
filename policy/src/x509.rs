//! `crypto.x509.parse_certificates` and
//! `crypto.x509.parse_and_verify_certificates`, which regorus lacks and
//! policies on client certificates need (a certificate forwarded by a
//! gateway, a chain in a header).
//!
//! The certificate objects have the field names and value shapes of Go's
//! `x509.Certificate` as OPA marshals it (`Subject.CommonName`, `DNSNames`,
//! `URIs[].{Scheme,Host,Path}`, `SerialNumber` a number, `NotAfter` an RFC
//! 3339 string, `IsCA`, ...), for the fields policies read; Go's nil lists
//! are `null` as in OPA.

use base64::Engine as _;
use regorus::Value;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Certificates in the input: PEM, or base64 of DER or of PEM, as OPA takes.
fn ders(input: &str) -> Option<Vec<Vec<u8>>> {
    let text = input.trim();
    if text.contains("-----BEGIN") {
        return pem_ders(text.as_bytes());
    }
    let compact: String = text.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    if bytes.starts_with(b"-----BEGIN") {
        return pem_ders(&bytes);
    }
    // One or more DER certificates back to back.
    let mut out = Vec::new();
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        let (next, _) = X509Certificate::from_der(rest).ok()?;
        let used = rest.len() - next.len();
        out.push(rest[..used].to_vec());
        rest = next;
    }
    (!out.is_empty()).then_some(out)
}

fn pem_ders(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.ok()?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `crypto.x509.parse_certificates(certs)`: undefined when nothing parses.
pub(crate) fn parse_certificates(args: &[Value]) -> Value {
    let Some(Value::String(input)) = args.first() else {
        return Value::Undefined;
    };
    let Some(ders) = ders(input) else {
        return Value::Undefined;
    };
    let mut out = Vec::with_capacity(ders.len());
    for der in &ders {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return Value::Undefined;
        };
        out.push(certificate(&cert, der));
    }
    Value::from(out)
}

/// `crypto.x509.parse_and_verify_certificates(certs)`: `[valid, certs]`.
/// As OPA: the first certificate is the root, the last the leaf, those
/// between intermediates; each is checked to be signed by the one before
/// and to be within its validity now; the certificates come back leaf
/// first. `[false, []]` when the chain does not verify.
pub(crate) fn parse_and_verify_certificates(args: &[Value]) -> Value {
    let invalid = || Value::from(vec![Value::from(false), Value::from(Vec::<Value>::new())]);
    let Some(Value::String(input)) = args.first() else {
        return Value::Undefined;
    };
    let Some(ders) = ders(input) else {
        return invalid();
    };
    if ders.len() < 2 {
        return invalid();
    }
    let mut certs = Vec::with_capacity(ders.len());
    for der in &ders {
        match X509Certificate::from_der(der) {
            Ok((_, c)) => certs.push(c),
            Err(_) => return invalid(),
        }
    }
    let now = x509_parser::time::ASN1Time::now();
    let root = &certs[0];
    if root.verify_signature(None).is_err() || !root.validity().is_valid_at(now) {
        return invalid();
    }
    for pair in certs.windows(2) {
        let (issuer, cert) = (&pair[0], &pair[1]);
        let signed = cert.issuer() == issuer.subject()
            && cert.verify_signature(Some(issuer.public_key())).is_ok();
        if !signed || !cert.validity().is_valid_at(now) || !issuer.is_ca() {
            return invalid();
        }
    }
    let parsed: Vec<Value> = certs
        .iter()
        .zip(&ders)
        .rev()
        .map(|(c, der)| certificate(c, der))
        .collect();
    Value::from(vec![Value::from(true), Value::from(parsed)])
}

fn list(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::from(items)
    }
}

fn name(n: &X509Name<'_>) -> Value {
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        list(
            it.filter_map(|a| a.as_str().ok())
                .map(Value::from)
                .collect(),
        )
    };
    let mut obj = Value::new_object();
    let fields = [
        ("Country", strings(&mut n.iter_country())),
        ("Organization", strings(&mut n.iter_organization())),
        (
            "OrganizationalUnit",
            strings(&mut n.iter_organizational_unit()),
        ),
        ("Locality", strings(&mut n.iter_locality())),
        ("Province", strings(&mut n.iter_state_or_province())),
        (
            "CommonName",
            Value::from(
                n.iter_common_name()
                    .next()
                    .and_then(|a| a.as_str().ok())
                    .unwrap_or(""),
            ),
        ),
    ];
    if let Ok(map) = obj.as_object_mut() {
        for (k, v) in fields {
            map.insert(Value::from(k), v);
        }
    }
    obj
}

/// Go's `url.URL` as JSON, for a URI SAN.
fn uri(s: &str) -> Value {
    let (scheme, rest) = s.split_once(':').unwrap_or(("", s));
    let (host, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find(['/', '?', '#']) {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        },
        None => ("", rest),
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (query, fragment) = query.split_once('#').unwrap_or((query, ""));
    let mut obj = Value::new_object();
    let fields = [
        ("Scheme", Value::from(scheme)),
        ("Opaque", Value::from("")),
        ("User", Value::Null),
        ("Host", Value::from(host)),
        ("Path", Value::from(path)),
        ("RawPath", Value::from("")),
        ("OmitHost", Value::from(false)),
        ("ForceQuery", Value::from(false)),
        ("RawQuery", Value::from(query)),
        ("Fragment", Value::from(fragment)),
        ("RawFragment", Value::from("")),
    ];
    if let Ok(map) = obj.as_object_mut() {
        for (k, v) in fields {
            map.insert(Value::from(k), v);
        }
    }
    obj
}

fn rfc3339(t: &x509_parser::time::ASN1Time) -> Value {
    let dt = t.to_datetime();
    Value::from(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    ))
}

fn certificate(c: &X509Certificate<'_>, der: &[u8]) -> Value {
    let b64 = |b: &[u8]| Value::from(base64::engine::general_purpose::STANDARD.encode(b));
    let (mut dns, mut emails, mut ips, mut uris) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for g in &san.value.general_names {
            match g {
                GeneralName::DNSName(d) => dns.push(Value::from(*d)),
                GeneralName::RFC822Name(e) => emails.push(Value::from(*e)),
                GeneralName::URI(u) => uris.push(uri(u)),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        ips.push(Value::from(ip.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    let basic = c.basic_constraints().ok().flatten();
    let serial = {
        // A number, as Go marshals a big.Int: exact up to 2^64, else a float.
        let big = c.serial.clone();
        match u64::try_from(big.clone()) {
            Ok(n) => Value::from(n),
            Err(_) => serde_json::from_str::<serde_json::Value>(&big.to_string())
                .map(Value::from)
                .unwrap_or(Value::Null),
        }
    };
    let key_usage = c
        .key_usage()
        .ok()
        .flatten()
        .map_or(0u64, |k| u64::from(k.value.flags));
    let mut obj = Value::new_object();
    let fields = [
        ("Raw", b64(der)),
        ("Version", Value::from(u64::from(c.version().0) + 1)),
        ("SerialNumber", serial),
        ("Subject", name(c.subject())),
        ("Issuer", name(c.issuer())),
        ("NotBefore", rfc3339(&c.validity().not_before)),
        ("NotAfter", rfc3339(&c.validity().not_after)),
        ("KeyUsage", Value::from(key_usage)),
        ("BasicConstraintsValid", Value::from(basic.is_some())),
        ("IsCA", Value::from(c.is_ca())),
        ("DNSNames", list(dns)),
        ("EmailAddresses", list(emails)),
        ("IPAddresses", list(ips)),
        ("URIs", list(uris)),
        ("Signature", b64(c.signature_value.data.as_ref())),
    ];
    if let Ok(map) = obj.as_object_mut() {
        for (k, v) in fields {
            map.insert(Value::from(k), v);
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::string::Ia5String;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

    /// A root and a leaf it signed: (root PEM, leaf PEM).
    fn chain() -> (String, String) {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::default();
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.distinguished_name
            .push(DnType::CommonName, "test root");
        let root_pem = root.self_signed(&root_key).unwrap().pem();
        let issuer = Issuer::new(root, root_key);
        let mut leaf = CertificateParams::new(vec!["orders.shop.svc".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "orders");
        leaf.distinguished_name
            .push(DnType::OrganizationName, "shop");
        leaf.subject_alt_names.push(SanType::URI(
            Ia5String::try_from("spiffe://mesh.test/ns/shop/sa/orders").unwrap(),
        ));
        let leaf_pem = leaf
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap()
            .pem();
        (root_pem, leaf_pem)
    }

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    #[test]
    fn parse_certificates_gives_go_field_names() {
        let (_, leaf) = chain();
        let parsed = parse_certificates(&[s(&leaf)]);
        let c = &parsed[0];
        assert_eq!(c["Subject"]["CommonName"], s("orders"));
        assert_eq!(c["Subject"]["Organization"], Value::from(vec![s("shop")]));
        assert_eq!(c["Subject"]["Country"], Value::Null);
        assert_eq!(c["Issuer"]["CommonName"], s("test root"));
        assert_eq!(c["DNSNames"], Value::from(vec![s("orders.shop.svc")]));
        assert_eq!(c["URIs"][0]["Scheme"], s("spiffe"));
        assert_eq!(c["URIs"][0]["Host"], s("mesh.test"));
        assert_eq!(c["URIs"][0]["Path"], s("/ns/shop/sa/orders"));
        assert_eq!(c["IsCA"], Value::from(false));
        assert_eq!(c["Version"], Value::from(3u64));
        // Base64 of the DER, and of the PEM, give the same.
        let der = x509_parser::pem::parse_x509_pem(leaf.as_bytes())
            .unwrap()
            .1
            .contents;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_certificates(&[s(&b64)])[0]["Raw"], c["Raw"]);
        let b64_pem = base64::engine::general_purpose::STANDARD.encode(leaf.as_bytes());
        assert_eq!(parse_certificates(&[s(&b64_pem)])[0]["Raw"], c["Raw"]);
        assert_eq!(
            parse_certificates(&[s("not a certificate")]),
            Value::Undefined
        );
    }

    #[test]
    fn chains_verify_root_first_and_come_back_leaf_first() {
        let (root, leaf) = chain();
        let ok = parse_and_verify_certificates(&[s(&format!("{root}{leaf}"))]);
        assert_eq!(ok[0], Value::from(true));
        assert_eq!(ok[1][0]["Subject"]["CommonName"], s("orders"));
        assert_eq!(ok[1][1]["Subject"]["CommonName"], s("test root"));
        // Leaf first, a leaf alone, or another root: not verified.
        let (other_root, _) = chain();
        for bad in [
            format!("{leaf}{root}"),
            leaf.clone(),
            format!("{other_root}{leaf}"),
        ] {
            let r = parse_and_verify_certificates(&[s(&bad)]);
            assert_eq!(r[0], Value::from(false));
        }
    }
}
