use super::*;

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CustomExtension, DnType, IsCa, KeyUsagePurpose, PKCS_RSA_SHA256};
use x509_parser::extensions::GeneralName;

use crate::encode::pem_encode;
use crate::test_support::{certs, parse, rustls_verify, x509_verify_chain, TD};

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

fn web() -> SpiffeId {
    SpiffeId::parse(WEB).unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(Ia5String::try_from(s).unwrap())
}

/// A CSR signed by a fresh key of `alg`, with `edit` applied to its params.
fn csr_with(alg: &'static SignatureAlgorithm, edit: impl FnOnce(&mut CertificateParams)) -> String {
    let key = KeyPair::generate_for(alg).unwrap();
    csr_for_key(&key, edit)
}

fn csr_for_key(key: &KeyPair, edit: impl FnOnce(&mut CertificateParams)) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![uri(WEB)];
    edit(&mut params);
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn p256_csr(edit: impl FnOnce(&mut CertificateParams)) -> String {
    csr_with(&PKCS_ECDSA_P256_SHA256, edit)
}

fn new_ca() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::store::init_ca(dir.path(), TD, false).unwrap();
    (dir, ca)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---- make_key_and_csr / check_csr: accepted ---------------------------------------

#[test]
fn own_csr_passes_the_check() {
    let (key_pem, csr_pem) = make_key_and_csr(&web()).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    let checked = check_csr(&csr_pem).unwrap();
    assert_eq!(checked.spiffe_id, web());
    let key = KeyPair::from_pem(&key_pem).unwrap();
    assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    assert_eq!(
        checked.public_key_der,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    // Only the SPIFFE ID, no subject.
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).unwrap();
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).unwrap();
    assert_eq!(csr.certification_request_info.subject.iter().count(), 0);
}

#[test]
fn make_key_and_csr_refuses_trust_domain_id() {
    let td = SpiffeId::parse("spiffe://example.org").unwrap();
    assert!(matches!(
        make_key_and_csr(&td),
        Err(CaError::InvalidWorkloadId { .. })
    ));
}

#[test]
fn p384_and_ed25519_keys_are_accepted() {
    for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
        let checked = check_csr(&csr_with(alg, |_| {})).unwrap();
        assert_eq!(checked.spiffe_id, web());
    }
}

#[test]
fn harmless_extras_are_accepted_but_ignored() {
    // A subject, a digitalSignature key usage and a custom extension do not
    // make a CSR invalid; they are simply not copied (see sign_csr tests).
    let csr = p256_csr(|p| {
        p.distinguished_name.push(DnType::CommonName, "evil");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 2, 3, 4, 5],
            vec![0x05, 0x00],
        )];
    });
    assert_eq!(check_csr(&csr).unwrap().spiffe_id, web());
}

// ---- check_csr: refusals (one per rule) -----------------------------------------

#[test]
fn refuses_non_pem_and_garbage() {
    for input in [
        "",
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        &pem_encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00"),
    ] {
        assert!(
            matches!(check_csr(input), Err(CsrError::NotParseable { .. })),
            "{input:?}: {:?}",
            check_csr(input)
        );
    }
    // A certificate is not a CSR.
    let (_dir, ca) = new_ca();
    assert!(matches!(
        check_csr(ca.cert_pem()),
        Err(CsrError::NotParseable { .. })
    ));
    // Oversized input is refused before parsing.
    let huge = "A".repeat(MAX_CSR_PEM + 1);
    assert!(matches!(
        check_csr(&huge),
        Err(CsrError::NotParseable { .. })
    ));
}

#[test]
fn refuses_corrupted_signature() {
    let csr = p256_csr(|_| {});
    let mut der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = pem_encode("CERTIFICATE REQUEST", &der);
    assert_eq!(check_csr(&tampered), Err(CsrError::BadSignature));
}

#[test]
fn refuses_csr_signed_by_another_key() {
    // a's request info (a's public key) with b's signature.
    let der = |pem: &str| {
        CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let da = der(&p256_csr(|_| {}));
    let db = der(&p256_csr(|_| {}));
    let info_len = |d: &[u8]| {
        X509CertificationRequest::from_der(d)
            .unwrap()
            .1
            .certification_request_info
            .raw
            .len()
    };
    let content_a = &da[header_len(&da)..];
    let content_b = &db[header_len(&db)..];
    let mut body = content_a[..info_len(&da)].to_vec();
    body.extend_from_slice(&content_b[info_len(&db)..]);
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    let forged = pem_encode("CERTIFICATE REQUEST", &out);
    assert_eq!(check_csr(&forged), Err(CsrError::BadSignature));
}

fn header_len(der: &[u8]) -> usize {
    match der[1] {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

#[test]
fn refuses_csr_without_san() {
    let csr = p256_csr(|p| p.subject_alt_names.clear());
    assert_eq!(check_csr(&csr), Err(CsrError::NoSpiffeId));
}

#[test]
fn refuses_csr_with_only_a_dns_san() {
    let csr = p256_csr(|p| {
        p.subject_alt_names = vec![SanType::DnsName(Ia5String::try_from("web").unwrap())]
    });
    assert_eq!(check_csr(&csr), Err(CsrError::NoSpiffeId));
}

#[test]
fn refuses_extra_dns_san() {
    let csr = p256_csr(|p| {
        p.subject_alt_names.push(SanType::DnsName(
            Ia5String::try_from("evil.example").unwrap(),
        ))
    });
    match check_csr(&csr) {
        Err(CsrError::ExtraSans { found }) => assert!(found.contains("evil.example"), "{found}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn refuses_extra_ip_and_email_sans() {
    let csr = p256_csr(|p| {
        p.subject_alt_names
            .push(SanType::IpAddress("10.0.0.1".parse().unwrap()))
    });
    assert!(matches!(check_csr(&csr), Err(CsrError::ExtraSans { .. })));
    let csr = p256_csr(|p| {
        p.subject_alt_names
            .push(SanType::Rfc822Name(Ia5String::try_from("a@b.c").unwrap()))
    });
    assert!(matches!(check_csr(&csr), Err(CsrError::ExtraSans { .. })));
}

#[test]
fn refuses_two_uri_sans() {
    let csr = p256_csr(|p| p.subject_alt_names.push(uri("spiffe://example.org/admin")));
    match check_csr(&csr) {
        Err(CsrError::ExtraSans { found }) => assert!(found.contains("second URI"), "{found}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn refuses_uri_that_is_not_a_workload_spiffe_id() {
    for (u, want) in [
        ("https://example.org/web", SpiffeIdError::WrongScheme),
        ("spiffe://example.org", SpiffeIdError::MissingPath),
        (
            "spiffe://Example.org/web",
            SpiffeIdError::InvalidTrustDomainChar { character: 'E' },
        ),
    ] {
        let csr = p256_csr(|p| p.subject_alt_names = vec![uri(u)]);
        match check_csr(&csr) {
            Err(CsrError::InvalidSpiffeId { uri, error }) => {
                assert_eq!(uri, u);
                assert_eq!(error, want);
            }
            other => panic!("{u}: unexpected {other:?}"),
        }
    }
}

#[test]
fn refuses_ca_true() {
    let csr = p256_csr(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
    assert!(matches!(check_csr(&csr), Err(CsrError::CaRights { .. })));
}

#[test]
fn refuses_key_cert_sign() {
    let csr = p256_csr(|p| p.key_usages = vec![KeyUsagePurpose::KeyCertSign]);
    assert!(matches!(check_csr(&csr), Err(CsrError::CaRights { .. })));
}

#[test]
fn refuses_rsa_keys() {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let csr = csr_for_key(&key, |_| {});
    match check_csr(&csr) {
        Err(CsrError::UnsupportedKey { algorithm }) => {
            assert!(algorithm.contains("1.2.840.113549.1.1.1"), "{algorithm}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---- sign_csr ---------------------------------------------------------------------

#[test]
fn sign_csr_builds_an_svid_from_the_key_and_id_only() {
    let (_dir, ca) = new_ca();
    let csr = p256_csr(|p| {
        p.distinguished_name.push(DnType::CommonName, "evil");
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 2, 3, 4, 5],
            vec![0x05, 0x00],
        )];
    });
    let checked = check_csr(&csr).unwrap();
    let signed = ca.sign_csr(&checked, Duration::from_secs(3600)).unwrap();
    assert_eq!(signed.bundle_pem, ca.bundle_pem());
    let chain = certs(&signed.cert_chain_pem);
    assert_eq!(chain.len(), 1, "a root's leaf comes alone");
    assert_eq!(chain[0].as_ref(), signed.leaf_der.as_slice());
    let cert = parse(&chain[0]);

    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(sans, &[GeneralName::URI(WEB)]);
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert_eq!(ku.flags, 1, "digitalSignature only");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && eku.other.is_empty());
    assert_eq!(
        cert.subject().iter_common_name().count(),
        0,
        "CSR subject ignored"
    );
    assert!(
        cert.extensions()
            .iter()
            .all(|e| e.oid.to_id_string() != "1.2.3.4.5"),
        "CSR extensions are never copied"
    );
    assert_eq!(cert.public_key().raw, checked.public_key_der.as_slice());
    assert_eq!(cert.raw_serial().len(), 16);
    assert!(cert.raw_serial()[0] < 0x80);
    assert_eq!(signed.serial_hex, crate::encode::hex(cert.raw_serial()));
    rustls_verify(&ca.bundle_pem(), &signed.cert_chain_pem, None).unwrap();
    x509_verify_chain(&ca.bundle_pem(), &signed.cert_chain_pem);
}

#[test]
fn sign_csr_with_two_second_lifetime() {
    let (_dir, ca) = new_ca();
    let checked = check_csr(&make_key_and_csr(&web()).unwrap().1).unwrap();
    let signed = ca.sign_csr(&checked, Duration::from_secs(2)).unwrap();
    let cert = parse(&signed.leaf_der);
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let now = unix_now();
    assert!((now - 62..=now - 58).contains(&nb), "nb {nb} now {now}");
    assert!((now + 1..=now + 3).contains(&na), "na {na} now {now}");
    assert_eq!(na - nb, 62, "lifetime = ttl + clock-skew slack");
    assert_eq!(
        signed.not_after,
        UNIX_EPOCH + Duration::from_secs(na as u64)
    );
    assert_eq!(
        signed.not_before,
        UNIX_EPOCH + Duration::from_secs(nb as u64)
    );
    // One second works too.
    ca.sign_csr(&checked, Duration::from_secs(1)).unwrap();
}

#[test]
fn sign_csr_accepts_p384_and_ed25519_keys() {
    let (_dir, ca) = new_ca();
    for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
        let checked = check_csr(&csr_with(alg, |_| {})).unwrap();
        let signed = ca.sign_csr(&checked, Duration::from_secs(60)).unwrap();
        rustls_verify(&ca.bundle_pem(), &signed.cert_chain_pem, None).unwrap();
    }
}

#[test]
fn sign_csr_refuses_other_trust_domain_and_bad_ttl() {
    let (_dir, ca) = new_ca();
    let other = SpiffeId::parse("spiffe://other.org/x").unwrap();
    let checked = check_csr(&make_key_and_csr(&other).unwrap().1).unwrap();
    assert!(matches!(
        ca.sign_csr(&checked, Duration::from_secs(60)),
        Err(CaError::WrongTrustDomain { .. })
    ));
    let checked = check_csr(&make_key_and_csr(&web()).unwrap().1).unwrap();
    assert!(matches!(
        ca.sign_csr(&checked, Duration::ZERO),
        Err(CaError::InvalidTtl { .. })
    ));
}

#[test]
fn sign_csr_refuses_a_garbage_public_key() {
    let (_dir, ca) = new_ca();
    let bogus = CheckedCsr {
        spiffe_id: web(),
        public_key_der: vec![0x30, 0x00],
    };
    assert!(matches!(
        ca.sign_csr(&bogus, Duration::from_secs(60)),
        Err(CaError::Crypto { .. })
    ));
}
