use super::*;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use rcgen::BasicConstraints;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use crate::encode::{hex, pem_encode};
use crate::files::write_atomic;
use crate::spiffe::{spiffe_id_from_cert_der, CertIdentityError};

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

const TD: &str = "example.org";
const WEB: &str = "spiffe://example.org/ns/default/sa/web";

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ski<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
        .expect("subjectKeyIdentifier present")
}

fn aki<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
        .expect("authorityKeyIdentifier present")
}

fn new_ca() -> (tempfile::TempDir, Ca) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path(), TD, false).unwrap();
    (tmp, ca)
}

fn web_request() -> IssueRequest {
    IssueRequest::new(SpiffeId::parse(WEB).unwrap())
}

/// Verifies `leaf` chains to `ca` the way the proxy's rustls will, as a
/// client certificate and (if `server_name` is given) as a server certificate.
fn rustls_verify(ca: &Ca, leaf_pem: &str, server_name: Option<&str>) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .unwrap();
    let roots = Arc::new(roots);
    let leaf = CertificateDer::from(pem_to_der(leaf_pem));
    let now = UnixTime::now();

    let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .unwrap();
    client.verify_client_cert(&leaf, &[], now)?;

    if let Some(name) = server_name {
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        server.verify_server_cert(&leaf, &[], &name, &[], now)?;
    }
    Ok(())
}

// ---- init_ca -----------------------------------------------------------------

#[test]
fn init_ca_creates_dir_and_files_with_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("ca");
    let ca = init_ca(&dir, TD, false).unwrap();
    assert_eq!(ca.trust_domain(), TD);

    assert_eq!(mode_of(&dir), 0o700);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_path = dir.join(CA_CERT_FILE);
    assert_eq!(mode_of(&key_path), 0o600);
    let cert_mode = mode_of(&cert_path);
    assert_eq!(cert_mode & !0o644, 0, "cert mode {cert_mode:o}");
    assert_eq!(cert_mode & 0o600, 0o600, "cert mode {cert_mode:o}");

    let on_disk = fs::read_to_string(&cert_path).unwrap();
    assert_eq!(on_disk, ca.cert_pem());
    assert_eq!(ca.bundle_pem(), ca.cert_pem());
    assert!(fs::read_to_string(&key_path)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    // No temporary files left behind.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [CA_KEY_FILE, CA_CERT_FILE]);
}

#[test]
fn init_ca_root_certificate_contents() {
    let (_tmp, ca) = new_ca();
    let der = pem_to_der(ca.cert_pem());
    assert_eq!(der, ca.cert_der());
    let cert = parse(&der);

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(bc.value.ca);
    assert!(matches!(bc.value.path_len_constraint, None | Some(1)));

    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature() && !ku.key_encipherment());

    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(sans, &[GeneralName::URI("spiffe://example.org")]);
    assert_eq!(
        spiffe_id_from_cert_der(&der).unwrap().as_str(),
        "spiffe://example.org"
    );

    let subject = cert.subject();
    let cn = subject.iter_common_name().next().unwrap().as_str().unwrap();
    assert_eq!(cn, "usher root CA example.org");
    let o = subject
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(o, "usher");
    assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());

    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let now = unix_now();
    assert!(
        (now - 70..=now - 55).contains(&nb),
        "not_before {nb} now {now}"
    );
    let ten_years = 3652 * 86400;
    assert!(
        (na - nb - ten_years).abs() < 2 * 86400,
        "validity {}",
        na - nb
    );

    // Random positive 16-byte serial.
    let serial = cert.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] != 0 && serial[0] < 0x80);

    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert!(!ski(&cert).is_empty());
    cert.verify_signature(None).unwrap();
}

#[test]
fn init_ca_serials_differ() {
    let (_t1, a) = new_ca();
    let (_t2, b) = new_ca();
    let sa = parse(a.cert_der()).raw_serial().to_vec();
    let sb = parse(b.cert_der()).raw_serial().to_vec();
    assert_ne!(sa, sb);
}

#[test]
fn init_ca_refuses_overwrite_without_force() {
    let (tmp, first) = new_ca();
    match init_ca(tmp.path(), TD, false) {
        Err(CaError::AlreadyExists { path }) => {
            assert_eq!(path, tmp.path().join(CA_CERT_FILE))
        }
        other => panic!("unexpected: {other:?}"),
    }
    // Only the key present: still refused, naming the key.
    fs::remove_file(tmp.path().join(CA_CERT_FILE)).unwrap();
    let e = init_ca(tmp.path(), TD, false).unwrap_err();
    match &e {
        CaError::AlreadyExists { path } => assert_eq!(path, &tmp.path().join(CA_KEY_FILE)),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains(CA_KEY_FILE), "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    // Nothing was changed.
    assert!(!tmp.path().join(CA_CERT_FILE).exists());
    drop(first);
}

#[test]
fn init_ca_force_replaces_and_fixes_key_mode() {
    let (tmp, first) = new_ca();
    let key_path = tmp.path().join(CA_KEY_FILE);
    let old_key = fs::read(&key_path).unwrap();
    // Even if someone loosened the old key's permissions, the new key file is
    // created 0600 rather than inheriting them.
    set_mode(&key_path, 0o644);
    let second = init_ca(tmp.path(), "other.example", true).unwrap();
    assert_eq!(second.trust_domain(), "other.example");
    assert_ne!(first.cert_pem(), second.cert_pem());
    assert_ne!(fs::read(&key_path).unwrap(), old_key);
    assert_eq!(mode_of(&key_path), 0o600);
    let loaded = load_ca(tmp.path()).unwrap();
    assert_eq!(loaded.cert_pem(), second.cert_pem());
}

#[test]
fn init_ca_rejects_invalid_trust_domain() {
    let tmp = tempfile::tempdir().unwrap();
    for (td, want) in [
        ("", SpiffeIdError::MissingTrustDomain),
        (
            "Example.org",
            SpiffeIdError::InvalidTrustDomainChar { character: 'E' },
        ),
        (
            "spiffe://example.org",
            SpiffeIdError::InvalidTrustDomainChar { character: ':' },
        ),
        (
            "example.org/x",
            SpiffeIdError::InvalidTrustDomainChar { character: '/' },
        ),
    ] {
        match init_ca(tmp.path(), td, false) {
            Err(CaError::InvalidTrustDomain {
                trust_domain,
                error,
            }) => {
                assert_eq!(trust_domain, td);
                assert_eq!(error, want);
            }
            other => panic!("{td}: unexpected {other:?}"),
        }
    }
    // Nothing was written.
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn init_ca_reports_unwritable_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    match init_ca(&file.join("ca"), TD, false) {
        Err(CaError::CreateDir { path, .. }) => assert_eq!(path, file.join("ca")),
        other => panic!("unexpected: {other:?}"),
    }
}

// ---- load_ca -----------------------------------------------------------------

#[test]
fn load_ca_round_trip() {
    let (tmp, created) = new_ca();
    let loaded = load_ca(tmp.path()).unwrap();
    assert_eq!(loaded.trust_domain(), TD);
    assert_eq!(loaded.cert_pem(), created.cert_pem());
    assert_eq!(loaded.cert_der(), created.cert_der());
    assert_eq!(loaded.bundle_pem(), created.bundle_pem());

    // Certificates from the loaded CA chain to the original root, and
    // vice versa.
    let from_loaded = loaded.issue(&web_request()).unwrap();
    rustls_verify(&created, &from_loaded.cert_pem, None).unwrap();
    let from_created = created.issue(&web_request()).unwrap();
    rustls_verify(&loaded, &from_created.cert_pem, None).unwrap();
}

#[test]
fn load_ca_refuses_unprotected_key() {
    let (tmp, _ca) = new_ca();
    let key_path = tmp.path().join(CA_KEY_FILE);
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        set_mode(&key_path, mode);
        match load_ca(tmp.path()) {
            Err(CaError::KeyPermissions { path, mode: got }) => {
                assert_eq!(path, key_path);
                assert_eq!(got, mode);
            }
            other => panic!("{mode:o}: unexpected {other:?}"),
        }
    }
    set_mode(&key_path, 0o644);
    let msg = load_ca(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("0644") && msg.contains(CA_KEY_FILE), "{msg}");
    // 0400 is fine.
    set_mode(&key_path, 0o400);
    load_ca(tmp.path()).unwrap();
}

#[test]
fn load_ca_names_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_ca(tmp.path()).unwrap_err();
    match &e {
        CaError::Missing { path } => assert_eq!(path, &tmp.path().join(CA_CERT_FILE)),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains(CA_CERT_FILE), "{e}");

    init_ca(tmp.path(), TD, false).unwrap();
    fs::remove_file(tmp.path().join(CA_KEY_FILE)).unwrap();
    let e = load_ca(tmp.path()).unwrap_err();
    match &e {
        CaError::Missing { path } => assert_eq!(path, &tmp.path().join(CA_KEY_FILE)),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains(CA_KEY_FILE), "{e}");
}

#[test]
fn load_ca_rejects_non_pem() {
    let (tmp, _ca) = new_ca();
    let cert_path = tmp.path().join(CA_CERT_FILE);
    let key_path = tmp.path().join(CA_KEY_FILE);
    let good_cert = fs::read(&cert_path).unwrap();

    fs::write(&cert_path, b"this is not PEM\n").unwrap();
    match load_ca(tmp.path()) {
        Err(CaError::NotPem { path, expected, .. }) => {
            assert_eq!(path, cert_path);
            assert_eq!(expected, "CERTIFICATE");
        }
        other => panic!("unexpected: {other:?}"),
    }
    // A key where the certificate should be.
    fs::copy(&key_path, &cert_path).unwrap();
    assert!(matches!(load_ca(tmp.path()), Err(CaError::NotPem { .. })));
    // Corrupt base64.
    fs::write(
        &cert_path,
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(load_ca(tmp.path()), Err(CaError::NotPem { .. })));
    // Valid PEM, not a certificate inside.
    fs::write(
        &cert_path,
        b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    match load_ca(tmp.path()) {
        Err(CaError::InvalidCertificate { path, .. }) => assert_eq!(path, cert_path),
        other => panic!("unexpected: {other:?}"),
    }
    // Two certificates.
    let two = [good_cert.clone(), good_cert.clone()].concat();
    fs::write(&cert_path, two).unwrap();
    assert!(matches!(
        load_ca(tmp.path()),
        Err(CaError::InvalidCertificate { .. })
    ));

    fs::write(&cert_path, &good_cert).unwrap();
    fs::write(&key_path, b"garbage").unwrap();
    match load_ca(tmp.path()) {
        Err(CaError::NotPem { path, expected, .. }) => {
            assert_eq!(path, key_path);
            assert_eq!(expected, "PRIVATE KEY");
        }
        other => panic!("unexpected: {other:?}"),
    }
    fs::write(
        &key_path,
        b"-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    match load_ca(tmp.path()) {
        Err(CaError::InvalidKey { path, .. }) => assert_eq!(path, key_path),
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn load_ca_rejects_key_of_another_ca() {
    let (tmp_a, _a) = new_ca();
    let (tmp_b, _b) = new_ca();
    fs::copy(
        tmp_b.path().join(CA_KEY_FILE),
        tmp_a.path().join(CA_KEY_FILE),
    )
    .unwrap();
    set_mode(&tmp_a.path().join(CA_KEY_FILE), 0o600);
    let e = load_ca(tmp_a.path()).unwrap_err();
    match &e {
        CaError::KeyMismatch { path, cert_path } => {
            assert_eq!(path, &tmp_a.path().join(CA_KEY_FILE));
            assert_eq!(cert_path, &tmp_a.path().join(CA_CERT_FILE));
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn load_ca_rejects_leaf_certificate() {
    let (_tmp, ca) = new_ca();
    let issued = ca.issue(&web_request()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(CA_CERT_FILE), &issued.cert_pem).unwrap();
    write_atomic(
        &dir.path().join(CA_KEY_FILE),
        issued.key_pem.as_bytes(),
        0o600,
    )
    .unwrap();
    match load_ca(dir.path()) {
        Err(CaError::NotACaCert { path, reason }) => {
            assert_eq!(path, dir.path().join(CA_CERT_FILE));
            assert!(reason.contains("CA:TRUE"), "{reason}");
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn load_ca_rejects_ca_without_spiffe_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key).unwrap();
    fs::write(dir.path().join(CA_CERT_FILE), cert.pem()).unwrap();
    write_atomic(
        &dir.path().join(CA_KEY_FILE),
        key.serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();
    match load_ca(dir.path()) {
        Err(CaError::CaIdentity { path, error }) => {
            assert_eq!(path, dir.path().join(CA_CERT_FILE));
            assert!(matches!(error, CertIdentityError::NoSanExtension));
        }
        other => panic!("unexpected: {other:?}"),
    }
}

/// Writes a hand-made CA for `example.org` valid from `nb` to `na` (Unix seconds).
fn write_custom_ca(dir: &Path, nb: i64, na: i64) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.not_before = OffsetDateTime::from_unix_timestamp(nb).unwrap();
    params.not_after = OffsetDateTime::from_unix_timestamp(na).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.subject_alt_names = vec![SanType::URI(
        Ia5String::try_from("spiffe://example.org").unwrap(),
    )];
    let cert = params.self_signed(&key).unwrap();
    fs::write(dir.join(CA_CERT_FILE), cert.pem()).unwrap();
    write_atomic(
        &dir.join(CA_KEY_FILE),
        key.serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();
}

#[test]
fn load_ca_refuses_expired_root() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    write_custom_ca(dir.path(), now - 7200, now - 3600);
    let e = load_ca(dir.path()).unwrap_err();
    match &e {
        CaError::CaExpired { path, .. } => assert_eq!(path, &dir.path().join(CA_CERT_FILE)),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains("expired"), "{e}");
}

#[test]
fn load_ca_accepts_foreign_but_valid_root_and_caps_leaf_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    write_custom_ca(dir.path(), now - 60, now + 3600);
    let ca = load_ca(dir.path()).unwrap();
    assert_eq!(ca.trust_domain(), TD);
    let issued = ca.issue(&web_request()).unwrap();
    let der = pem_to_der(&issued.cert_pem);
    let na = parse(&der).validity().not_after.timestamp();
    assert_eq!(na, now + 3600, "leaf capped at the root's notAfter");
    assert_eq!(
        issued.not_after,
        UNIX_EPOCH + Duration::from_secs(na as u64)
    );
    rustls_verify(&ca, &issued.cert_pem, None).unwrap();
}

#[test]
fn load_ca_refuses_huge_files() {
    let (tmp, _ca) = new_ca();
    let cert_path = tmp.path().join(CA_CERT_FILE);
    fs::write(&cert_path, vec![b'A'; 1024 * 1024 + 1]).unwrap();
    match load_ca(tmp.path()) {
        Err(CaError::Read { path, error }) => {
            assert_eq!(path, cert_path);
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
        other => panic!("unexpected: {other:?}"),
    }
}

// ---- issue -------------------------------------------------------------------

#[test]
fn issued_leaf_is_a_valid_x509_svid() {
    let (_tmp, ca) = new_ca();
    let mut req = web_request();
    req.dns_names = vec!["web.default.svc".into(), "web".into()];
    req.ttl = Duration::from_secs(3600);
    let issued = ca.issue(&req).unwrap();
    assert_eq!(issued.bundle_pem, ca.bundle_pem());

    let der = pem_to_der(&issued.cert_pem);
    let cert = parse(&der);
    let ca_cert = parse(ca.cert_der());

    // Exactly one URI SAN, the SPIFFE ID, plus the DNS SANs.
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let uris: Vec<_> = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [WEB]);
    let dns: Vec<_> = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["web.default.svc", "web"]);
    assert_eq!(spiffe_id_from_cert_der(&der).unwrap().as_str(), WEB);

    // Not a CA.
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    assert!(!cert.is_ca());

    // digitalSignature only.
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "only digitalSignature: {:?}", ku.value);

    // serverAuth + clientAuth.
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && !eku.code_signing && eku.other.is_empty());

    // Validity ≈ ttl, starting a minute in the past.
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let now = unix_now();
    assert!(
        (now - 70..=now - 55).contains(&nb),
        "not_before {nb} now {now}"
    );
    assert!(
        (now + 3590..=now + 3601).contains(&na),
        "not_after {na} now {now}"
    );
    assert_eq!(
        issued.not_after,
        UNIX_EPOCH + Duration::from_secs(na as u64)
    );

    // Signed by the CA.
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert!(cert.verify_signature(None).is_err());
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    assert_eq!(aki(&cert), ski(&ca_cert));
    assert!(!ski(&cert).is_empty());
    assert_ne!(ski(&cert), ski(&ca_cert));

    // Subject: O=usher, CN=first DNS name.
    let o = cert.subject().iter_organization().next().unwrap();
    assert_eq!(o.as_str().unwrap(), "usher");
    let cns: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cns, ["web.default.svc"]);

    // Serial: random, positive, reported as hex.
    assert_eq!(cert.raw_serial().len(), 16);
    assert!(cert.raw_serial()[0] < 0x80);
    assert_eq!(issued.serial_hex, hex(cert.raw_serial()));
    assert_eq!(issued.serial_hex.len(), 32);

    // Fresh P-256 key whose public half is in the certificate.
    let key = KeyPair::from_pem(&issued.key_pem).unwrap();
    assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref()
    );
    assert_ne!(
        cert.public_key().raw,
        ca_cert.public_key().raw,
        "leaf must not reuse the CA key"
    );

    // And rustls (webpki) accepts it for both directions of mTLS.
    rustls_verify(&ca, &issued.cert_pem, Some("web.default.svc")).unwrap();
}

#[test]
fn issued_leaf_without_dns_names_has_no_cn() {
    let (_tmp, ca) = new_ca();
    let issued = ca.issue(&web_request()).unwrap();
    let der = pem_to_der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(cert.subject().iter_common_name().count(), 0);
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(sans, &[GeneralName::URI(WEB)]);
    rustls_verify(&ca, &issued.cert_pem, None).unwrap();

    // Default TTL: 24 hours.
    let na = cert.validity().not_after.timestamp();
    let now = unix_now();
    assert!((now + 86390..=now + 86401).contains(&na));
}

#[test]
fn each_issue_uses_a_new_key_and_serial() {
    let (_tmp, ca) = new_ca();
    let a = ca.issue(&web_request()).unwrap();
    let b = ca.issue(&web_request()).unwrap();
    assert_ne!(a.key_pem, b.key_pem);
    assert_ne!(a.serial_hex, b.serial_hex);
}

#[test]
fn issue_refuses_wrong_trust_domain() {
    let (_tmp, ca) = new_ca();
    let req = IssueRequest::new(SpiffeId::parse("spiffe://evil.org/ns/default/sa/web").unwrap());
    let e = ca.issue(&req).unwrap_err();
    match &e {
        CaError::WrongTrustDomain { id, expected } => {
            assert_eq!(id.as_str(), "spiffe://evil.org/ns/default/sa/web");
            assert_eq!(expected, TD);
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains("evil.org"), "{e}");
    // A trust domain that merely starts with ours is still a different one.
    let req = IssueRequest::new(SpiffeId::parse("spiffe://example.org.evil/web").unwrap());
    assert!(matches!(
        ca.issue(&req),
        Err(CaError::WrongTrustDomain { .. })
    ));
}

#[test]
fn issue_refuses_trust_domain_only_id() {
    let (_tmp, ca) = new_ca();
    let req = IssueRequest::new(SpiffeId::trust_domain_id(TD).unwrap());
    match ca.issue(&req) {
        Err(CaError::InvalidWorkloadId { id, error }) => {
            assert_eq!(id.as_str(), "spiffe://example.org");
            assert_eq!(error, SpiffeIdError::MissingPath);
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn issue_validates_ttl() {
    let (_tmp, ca) = new_ca();
    for ttl in [
        Duration::ZERO,
        MAX_TTL + Duration::from_secs(1),
        Duration::from_secs(u64::MAX),
    ] {
        let mut req = web_request();
        req.ttl = ttl;
        match ca.issue(&req) {
            Err(CaError::InvalidTtl { ttl: got }) => assert_eq!(got, ttl),
            other => panic!("{ttl:?}: unexpected {other:?}"),
        }
    }
    let mut req = web_request();
    req.ttl = MAX_TTL;
    ca.issue(&req).unwrap();
    req.ttl = Duration::from_secs(1);
    ca.issue(&req).unwrap();
}

#[test]
fn issue_validates_dns_names() {
    let (_tmp, ca) = new_ca();
    for bad in [
        "",
        "*.example.org",
        "exa mple.org",
        "example.org.",
        "-web.example.org",
        "web-.example.org",
        "10.0.0.1",
        "web..example",
        "wéb.example",
        "web/x",
        &"a".repeat(64),
    ] {
        let mut req = web_request();
        req.dns_names = vec!["ok.example".into(), bad.into()];
        let e = ca.issue(&req).unwrap_err();
        match &e {
            CaError::InvalidDnsName { name } => assert_eq!(name, bad),
            other => panic!("{bad:?}: unexpected {other:?}"),
        }
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
    let mut req = web_request();
    req.dns_names = vec![
        "localhost".into(),
        "Web.Example".into(),
        "a-b.c_d.example".into(),
    ];
    ca.issue(&req).unwrap();
}

#[test]
fn long_first_dns_name_is_not_used_as_cn() {
    let (_tmp, ca) = new_ca();
    let long = format!("{}.{}.example", "a".repeat(40), "b".repeat(40));
    let mut req = web_request();
    req.dns_names = vec![long.clone()];
    let issued = ca.issue(&req).unwrap();
    let der = pem_to_der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(cert.subject().iter_common_name().count(), 0);
    rustls_verify(&ca, &issued.cert_pem, Some(&long)).unwrap();
}

#[test]
fn issue_can_make_expired_certificates() {
    let (_tmp, ca) = new_ca();
    let mut req = web_request();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86400);
    req.not_before = Some(two_days_ago);
    req.ttl = Duration::from_secs(3600);
    let issued = ca.issue(&req).unwrap();
    assert!(issued.not_after < SystemTime::now());

    let der = pem_to_der(&issued.cert_pem);
    let cert = parse(&der);
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let want_nb = two_days_ago.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(nb, want_nb);
    assert_eq!(na, want_nb + 3600);
    assert!(!cert.validity().is_valid());

    match rustls_verify(&ca, &issued.cert_pem, None) {
        Err(rustls::Error::InvalidCertificate(e)) => {
            assert!(
                matches!(e, rustls::CertificateError::ExpiredContext { .. })
                    || matches!(e, rustls::CertificateError::Expired),
                "{e:?}"
            );
        }
        other => panic!("expected expiry error, got {other:?}"),
    }
}

#[test]
fn issue_rejects_unrepresentable_validity() {
    let (_tmp, ca) = new_ca();
    let mut req = web_request();
    req.not_before = Some(UNIX_EPOCH - Duration::from_secs(1));
    assert!(matches!(
        ca.issue(&req),
        Err(CaError::InvalidValidity { .. })
    ));
    // Year 10000.
    req.not_before = Some(UNIX_EPOCH + Duration::from_secs(253_402_300_800));
    assert!(matches!(
        ca.issue(&req),
        Err(CaError::InvalidValidity { .. })
    ));
}

#[test]
fn issue_request_defaults() {
    let req = web_request();
    assert_eq!(req.ttl, Duration::from_secs(86400));
    assert_eq!(IssueRequest::DEFAULT_TTL, DEFAULT_TTL);
    assert!(req.dns_names.is_empty());
    assert!(req.not_before.is_none());
    assert_eq!(req.spiffe_id.as_str(), WEB);
}

#[test]
fn debug_output_redacts_keys() {
    let (_tmp, ca) = new_ca();
    let issued = ca.issue(&web_request()).unwrap();
    let dbg = format!("{issued:?}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
    assert!(dbg.contains(&issued.serial_hex));
    let dbg = format!("{ca:?}");
    assert!(!dbg.contains("PRIVATE") && dbg.contains(TD), "{dbg}");
}

#[test]
fn ca_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ca>();
    assert_send_sync::<CaError>();
    assert_send_sync::<IssuedCert>();
}

// ---- write_issued ------------------------------------------------------------

#[test]
fn write_issued_writes_files_with_modes() {
    let (_tmp, ca) = new_ca();
    let out_tmp = tempfile::tempdir().unwrap();
    let out = out_tmp.path().join("svid");
    let issued = ca.issue(&web_request()).unwrap();
    write_issued(&out, &issued).unwrap();

    assert_eq!(mode_of(&out), 0o700);
    assert_eq!(mode_of(&out.join(LEAF_KEY_FILE)), 0o600);
    for f in [LEAF_CERT_FILE, BUNDLE_FILE] {
        let m = mode_of(&out.join(f));
        assert_eq!(m & !0o644, 0, "{f} mode {m:o}");
    }
    assert_eq!(
        fs::read_to_string(out.join(LEAF_CERT_FILE)).unwrap(),
        issued.cert_pem
    );
    assert_eq!(
        fs::read_to_string(out.join(LEAF_KEY_FILE)).unwrap(),
        issued.key_pem
    );
    assert_eq!(
        fs::read_to_string(out.join(BUNDLE_FILE)).unwrap(),
        ca.cert_pem()
    );
}

#[test]
fn write_issued_overwrites_atomically_and_keeps_key_private() {
    let (_tmp, ca) = new_ca();
    let out = tempfile::tempdir().unwrap();
    // Pre-existing files, the key one world-readable.
    for f in [LEAF_CERT_FILE, LEAF_KEY_FILE, BUNDLE_FILE] {
        fs::write(out.path().join(f), b"old").unwrap();
        set_mode(&out.path().join(f), 0o644);
    }
    let first = ca.issue(&web_request()).unwrap();
    write_issued(out.path(), &first).unwrap();
    let second = ca.issue(&web_request()).unwrap();
    write_issued(out.path(), &second).unwrap();

    assert_eq!(mode_of(&out.path().join(LEAF_KEY_FILE)), 0o600);
    assert_eq!(
        fs::read_to_string(out.path().join(LEAF_KEY_FILE)).unwrap(),
        second.key_pem
    );
    assert_eq!(
        fs::read_to_string(out.path().join(LEAF_CERT_FILE)).unwrap(),
        second.cert_pem
    );
    // Only the three files: no temporaries left behind.
    let mut names: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [BUNDLE_FILE, LEAF_CERT_FILE, LEAF_KEY_FILE]);
}

#[test]
fn write_issued_reports_path_on_failure() {
    let (_tmp, ca) = new_ca();
    let out = tempfile::tempdir().unwrap();
    // A directory where cert.pem should go: the rename over it fails.
    fs::create_dir(out.path().join(LEAF_CERT_FILE)).unwrap();
    fs::write(out.path().join(LEAF_CERT_FILE).join("x"), b"x").unwrap();
    let issued = ca.issue(&web_request()).unwrap();
    let e = write_issued(out.path(), &issued).unwrap_err();
    match &e {
        CaError::Write { path, .. } => assert_eq!(path, &out.path().join(LEAF_CERT_FILE)),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(e.to_string().contains(LEAF_CERT_FILE), "{e}");
    // The temporary file was cleaned up.
    let leftovers: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---- helpers -----------------------------------------------------------------

#[test]
fn pem_encode_matches_rcgen_and_round_trips() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::default().self_signed(&key).unwrap();
    assert_eq!(pem_encode("CERTIFICATE", cert.der()), cert.pem());
    for len in 0..200usize {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        let pem = pem_encode("CERTIFICATE", &data);
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        if len > 0 {
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), &data[..], "len {len}");
        }
    }
}

#[test]
fn hex_encodes_lowercase() {
    assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    assert_eq!(hex(&[]), "");
}
