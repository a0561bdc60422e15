use super::*;

use std::time::UNIX_EPOCH;

use rcgen::Issuer;

use crate::issue::IssueRequest;
use crate::test_support::{certs, parse, rustls_verify, x509_verify_chain, TD};

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

fn web_request() -> IssueRequest {
    IssueRequest::new(SpiffeId::parse(WEB).unwrap())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A self-signed root for example.org with the given pathLenConstraint.
fn custom_root(dir: &Path, path_len: u8) -> Ca {
    let now = unix_now();
    let td_id = SpiffeId::trust_domain_id(TD).unwrap();
    let params = ca_params(
        &td_id,
        "custom root".into(),
        now - 60,
        now + 86400 * 400,
        path_len,
    )
    .unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(CA_CERT_FILE), cert.pem()).unwrap();
    write_atomic(
        &dir.join(CA_KEY_FILE),
        key.serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();
    load_ca(dir).unwrap()
}

// ---- init_intermediate -------------------------------------------------------------

#[test]
fn intermediate_below_root_issues_chains_that_verify_to_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    let int_dir = tmp.path().join("int");
    let root = init_ca(&root_dir, TD, false).unwrap();
    let int = init_intermediate(&int_dir, &root_dir, false).unwrap();

    assert_eq!(int.trust_domain(), TD);
    assert!(!int.is_root());
    assert_eq!(int.trust_bundle_pem(), root.cert_pem());
    assert_eq!(int.intermediates_pem(), int.cert_pem());
    assert_eq!(
        names(&int_dir),
        [CA_BUNDLE_FILE, CA_KEY_FILE, CA_CERT_FILE],
        "no chain.pem below a root"
    );
    assert_eq!(
        fs::metadata(int_dir.join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_to_string(int_dir.join(CA_BUNDLE_FILE)).unwrap(),
        root.cert_pem()
    );

    // The intermediate's own certificate.
    let cert = parse(int.cert_der());
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(
        spiffe_id_from_cert_der(int.cert_der()).unwrap().as_str(),
        "spiffe://example.org"
    );
    assert!(
        cert.validity().not_after.timestamp()
            <= parse(root.cert_der()).validity().not_after.timestamp()
    );

    // A leaf: leaf → intermediate → root.
    let issued = int.issue(&web_request()).unwrap();
    assert_eq!(certs(&issued.cert_pem).len(), 2);
    assert_eq!(issued.bundle_pem(), root.cert_pem());
    x509_verify_chain(issued.bundle_pem(), &issued.cert_pem);
    rustls_verify(issued.bundle_pem(), &issued.cert_pem, None).unwrap();

    // The same after loading from disk.
    let loaded = load_ca(&int_dir).unwrap();
    assert!(!loaded.is_root());
    assert_eq!(loaded.trust_bundle_pem(), root.cert_pem());
    let issued = loaded.issue(&web_request()).unwrap();
    rustls_verify(issued.bundle_pem(), &issued.cert_pem, None).unwrap();
    // Without the root in the bundle, the chain does not verify.
    let (_other_tmp, other) = {
        let t = tempfile::tempdir().unwrap();
        let ca = init_ca(t.path(), TD, false).unwrap();
        (t, ca)
    };
    assert!(rustls_verify(other.cert_pem(), &issued.cert_pem, None).is_err());
}

#[test]
fn two_level_intermediate_writes_the_parent_into_chain_pem() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    let root = custom_root(&root_dir, 2);
    let int1 = init_intermediate(&tmp.path().join("int1"), &root_dir, false).unwrap();
    assert_eq!(
        parse(int1.cert_der())
            .basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(1)
    );
    let int2_dir = tmp.path().join("int2");
    let int2 = init_intermediate(&int2_dir, &tmp.path().join("int1"), false).unwrap();
    assert_eq!(
        fs::read_to_string(int2_dir.join(CA_CHAIN_FILE)).unwrap(),
        int1.cert_pem()
    );
    assert_eq!(
        fs::read_to_string(int2_dir.join(CA_BUNDLE_FILE)).unwrap(),
        root.cert_pem()
    );
    let issued = load_ca(&int2_dir).unwrap().issue(&web_request()).unwrap();
    let chain = certs(&issued.cert_pem);
    assert_eq!(chain.len(), 3, "leaf, int2, int1");
    assert_eq!(chain[1].as_ref(), int2.cert_der());
    assert_eq!(chain[2].as_ref(), int1.cert_der());
    x509_verify_chain(root.cert_pem(), &issued.cert_pem);
    rustls_verify(root.cert_pem(), &issued.cert_pem, None).unwrap();
}

#[test]
fn intermediate_refuses_parent_with_path_len_zero_and_own_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    init_ca(&root_dir, TD, false).unwrap();
    let int_dir = tmp.path().join("int");
    init_intermediate(&int_dir, &root_dir, false).unwrap();
    match init_intermediate(&tmp.path().join("int2"), &int_dir, false) {
        Err(CaError::NotACaCert { path, reason }) => {
            assert_eq!(path, int_dir.join(CA_CERT_FILE));
            assert!(reason.contains("pathLenConstraint"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!tmp.path().join("int2").exists());
    assert!(matches!(
        init_intermediate(&root_dir, &root_dir, true),
        Err(CaError::SameDirectory { .. })
    ));
    // Existing files are not replaced without force.
    match init_intermediate(&int_dir, &root_dir, false) {
        Err(CaError::AlreadyExists { path }) => assert_eq!(path, int_dir.join(CA_CERT_FILE)),
        other => panic!("unexpected {other:?}"),
    }
    init_intermediate(&int_dir, &root_dir, true).unwrap();
}

#[test]
fn intermediate_without_bundle_is_refused_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    init_ca(&root_dir, TD, false).unwrap();
    let int_dir = tmp.path().join("int");
    init_intermediate(&int_dir, &root_dir, false).unwrap();
    fs::remove_file(int_dir.join(CA_BUNDLE_FILE)).unwrap();
    match load_ca(&int_dir) {
        Err(CaError::Missing { path }) => assert_eq!(path, int_dir.join(CA_BUNDLE_FILE)),
        other => panic!("unexpected {other:?}"),
    }
}

// ---- bundle.pem and root rotation --------------------------------------------------

#[test]
fn old_root_dirs_are_their_own_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path(), TD, false).unwrap();
    assert_eq!(names(tmp.path()), [CA_KEY_FILE, CA_CERT_FILE]);
    assert!(ca.is_root());
    assert_eq!(ca.intermediates_pem(), "");
    let loaded = load_ca(tmp.path()).unwrap();
    assert_eq!(loaded.trust_bundle_pem(), ca.cert_pem());
    assert_eq!(loaded.reload_bundle().unwrap(), ca.cert_pem());
}

#[test]
fn reload_bundle_sees_a_second_root_and_refuses_a_bundle_without_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path(), TD, false).unwrap();
    let other_tmp = tempfile::tempdir().unwrap();
    let new_root = init_ca(other_tmp.path(), TD, false).unwrap();

    let both = format!("{}{}", ca.cert_pem(), new_root.cert_pem());
    fs::write(tmp.path().join(CA_BUNDLE_FILE), &both).unwrap();
    assert_eq!(
        ca.trust_bundle_pem(),
        ca.cert_pem(),
        "cached until reloaded"
    );
    assert_eq!(ca.reload_bundle().unwrap(), both);
    assert_eq!(ca.trust_bundle_pem(), both);
    let issued = ca.issue(&web_request()).unwrap();
    assert_eq!(issued.bundle_pem(), both);
    assert_eq!(load_ca(tmp.path()).unwrap().trust_bundle_pem(), both);

    // A bundle that drops this CA's root is refused; the last good one stays.
    fs::write(tmp.path().join(CA_BUNDLE_FILE), new_root.cert_pem()).unwrap();
    match ca.reload_bundle() {
        Err(CaError::NotChained {
            path, bundle_path, ..
        }) => {
            assert_eq!(path, tmp.path().join(CA_CERT_FILE));
            assert_eq!(bundle_path, tmp.path().join(CA_BUNDLE_FILE));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ca.trust_bundle_pem(), both);
    // Garbage is refused too.
    fs::write(tmp.path().join(CA_BUNDLE_FILE), "not pem").unwrap();
    assert!(matches!(ca.reload_bundle(), Err(CaError::NotPem { .. })));
}

#[test]
fn init_ca_force_removes_files_of_the_replaced_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    init_ca(&root_dir, TD, false).unwrap();
    let int_dir = tmp.path().join("int");
    init_intermediate(&int_dir, &root_dir, false).unwrap();
    match init_ca(&int_dir, TD, false) {
        Err(CaError::AlreadyExists { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let fresh = init_ca(&int_dir, TD, true).unwrap();
    assert_eq!(names(&int_dir), [CA_KEY_FILE, CA_CERT_FILE]);
    assert_eq!(
        load_ca(&int_dir).unwrap().trust_bundle_pem(),
        fresh.cert_pem()
    );
}

// ---- import_ca ---------------------------------------------------------------------

/// An organisation root (no SPIFFE ID) and a CA below it, as cert-manager
/// would hand them over.
struct OrgPki {
    root_pem: String,
    ca_pem: String,
    ca_key_pem: String,
}

fn org_pki(spiffe_uri: Option<&str>) -> OrgPki {
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::default();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    root_params
        .distinguished_name
        .push(DnType::CommonName, "Org Root");
    let root_cert = root_params.self_signed(&root_key).unwrap();
    let root = Issuer::new(root_params, root_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "mesh issuer");
    params.use_authority_key_identifier_extension = true;
    if let Some(u) = spiffe_uri {
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(u).unwrap())];
    }
    let cert = params.signed_by(&key, &root).unwrap();
    OrgPki {
        root_pem: root_cert.pem(),
        ca_pem: cert.pem(),
        ca_key_pem: key.serialize_pem(),
    }
}

#[test]
fn imported_ca_without_spiffe_id_issues_chains_to_the_org_root() {
    let pki = org_pki(None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = import_ca(
        &dir,
        &pki.ca_pem,
        &pki.ca_key_pem,
        &pki.root_pem,
        None,
        TD,
        false,
    )
    .unwrap();
    assert_eq!(ca.trust_domain(), TD);
    assert!(!ca.is_root());
    assert_eq!(
        names(&dir),
        [CA_BUNDLE_FILE, CA_KEY_FILE, CA_CERT_FILE, TRUST_DOMAIN_FILE]
    );
    assert_eq!(
        fs::metadata(dir.join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(trust_domain_of(&dir).unwrap(), TD);

    let loaded = load_ca(&dir).unwrap();
    assert_eq!(loaded.trust_domain(), TD);
    let issued = loaded.issue(&web_request()).unwrap();
    assert_eq!(certs(&issued.cert_pem).len(), 2);
    x509_verify_chain(&pki.root_pem, &issued.cert_pem);
    rustls_verify(&pki.root_pem, &issued.cert_pem, None).unwrap();

    // Without the trust-domain file the CA no longer says its trust domain.
    fs::remove_file(dir.join(TRUST_DOMAIN_FILE)).unwrap();
    assert!(matches!(load_ca(&dir), Err(CaError::CaIdentity { .. })));
}

#[test]
fn import_with_chain_pem() {
    // root → org intermediate → mesh CA; chain.pem holds the org intermediate.
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::default();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    root_params
        .distinguished_name
        .push(DnType::CommonName, "Root");
    let root_cert = root_params.self_signed(&root_key).unwrap();
    let root = Issuer::new(root_params, root_key);

    let mid_key = KeyPair::generate().unwrap();
    let mut mid_params = CertificateParams::default();
    mid_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    mid_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    mid_params
        .distinguished_name
        .push(DnType::CommonName, "Mid");
    let mid_cert = mid_params.signed_by(&mid_key, &root).unwrap();
    let mid = Issuer::new(mid_params, mid_key);

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.distinguished_name.push(DnType::CommonName, "Mesh");
    params.subject_alt_names = vec![SanType::URI(
        Ia5String::try_from("spiffe://example.org").unwrap(),
    )];
    let cert = params.signed_by(&key, &mid).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    // Without the chain it does not reach the root.
    assert!(matches!(
        import_ca(
            tmp.path(),
            &cert.pem(),
            &key.serialize_pem(),
            &root_cert.pem(),
            None,
            TD,
            false
        ),
        Err(CaError::NotChained { .. })
    ));
    let ca = import_ca(
        tmp.path(),
        &cert.pem(),
        &key.serialize_pem(),
        &root_cert.pem(),
        Some(&mid_cert.pem()),
        TD,
        false,
    )
    .unwrap();
    assert_eq!(
        names(tmp.path()),
        [CA_BUNDLE_FILE, CA_KEY_FILE, CA_CERT_FILE, CA_CHAIN_FILE],
        "the certificate names its trust domain: no trust-domain file"
    );
    let issued = load_ca(tmp.path()).unwrap().issue(&web_request()).unwrap();
    assert_eq!(certs(&issued.cert_pem).len(), 3);
    rustls_verify(&root_cert.pem(), &issued.cert_pem, None).unwrap();
    drop(ca);
}

#[test]
fn import_refuses_a_key_that_does_not_match() {
    let pki = org_pki(None);
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    match import_ca(
        tmp.path(),
        &pki.ca_pem,
        &other.serialize_pem(),
        &pki.root_pem,
        None,
        TD,
        false,
    ) {
        Err(CaError::KeyMismatch { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(names(tmp.path()).len(), 0, "nothing written");
}

#[test]
fn import_refuses_a_non_ca_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let root = init_ca(&tmp.path().join("root"), TD, false).unwrap();
    let leaf = root.issue(&web_request()).unwrap();
    let out = tmp.path().join("imported");
    match import_ca(
        &out,
        &leaf.cert_pem,
        &leaf.key_pem,
        root.cert_pem(),
        None,
        TD,
        false,
    ) {
        Err(CaError::NotACaCert { reason, .. }) => assert!(reason.contains("CA:TRUE"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!out.exists());
}

#[test]
fn import_refuses_other_root_and_other_trust_domain() {
    let pki = org_pki(None);
    let stranger = org_pki(None);
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        import_ca(
            tmp.path(),
            &pki.ca_pem,
            &pki.ca_key_pem,
            &stranger.root_pem,
            None,
            TD,
            false
        ),
        Err(CaError::NotChained { .. })
    ));
    let named = org_pki(Some("spiffe://other.org"));
    match import_ca(
        tmp.path(),
        &named.ca_pem,
        &named.ca_key_pem,
        &named.root_pem,
        None,
        TD,
        false,
    ) {
        Err(CaError::TrustDomainMismatch {
            cert_trust_domain,
            expected,
            ..
        }) => {
            assert_eq!(cert_trust_domain, "other.org");
            assert_eq!(expected, TD);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        import_ca(
            tmp.path(),
            &pki.ca_pem,
            &pki.ca_key_pem,
            &pki.root_pem,
            None,
            "Bad TD",
            false
        ),
        Err(CaError::InvalidTrustDomain { .. })
    ));
    assert!(matches!(
        import_ca(
            tmp.path(),
            &pki.ca_pem,
            &pki.ca_key_pem,
            "",
            None,
            TD,
            false
        ),
        Err(CaError::NotPem { .. })
    ));
    assert_eq!(names(tmp.path()).len(), 0);
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let pki = org_pki(None);
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), TD, false).unwrap();
    assert!(matches!(
        import_ca(
            tmp.path(),
            &pki.ca_pem,
            &pki.ca_key_pem,
            &pki.root_pem,
            None,
            TD,
            false
        ),
        Err(CaError::AlreadyExists { .. })
    ));
    import_ca(
        tmp.path(),
        &pki.ca_pem,
        &pki.ca_key_pem,
        &pki.root_pem,
        None,
        TD,
        true,
    )
    .unwrap();
    assert!(!load_ca(tmp.path()).unwrap().is_root());
}

#[test]
fn trust_domain_of_reads_the_certificate_only() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), TD, false).unwrap();
    // Even with an unprotected key (which load_ca refuses).
    fs::set_permissions(
        tmp.path().join(CA_KEY_FILE),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(trust_domain_of(tmp.path()).unwrap(), TD);
}
