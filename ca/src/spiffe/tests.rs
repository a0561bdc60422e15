use super::*;

use rcgen::string::Ia5String;
use rcgen::{CertificateParams, KeyPair, SanType};

fn err(s: &str) -> SpiffeIdError {
    SpiffeId::parse(s).unwrap_err()
}

#[test]
fn valid_ids_parse_with_components() {
    let cases = [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/web", "example.org", "/web"),
        (
            "spiffe://k8s-west.example.com/ns/staging/sa/default",
            "k8s-west.example.com",
            "/ns/staging/sa/default",
        ),
        ("spiffe://td_1.x-y/A-Z_a.z-09", "td_1.x-y", "/A-Z_a.z-09"),
        ("spiffe://1.2.3.4/x", "1.2.3.4", "/x"),
        ("spiffe://example.org/...", "example.org", "/..."),
        (
            "spiffe://example.org/.a/..b/c.",
            "example.org",
            "/.a/..b/c.",
        ),
        (
            "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
            "example.com",
            "/9eebccd2-12bf-40a6-b262-65fe0487d453",
        ),
        ("spiffe://a/b/c/d/e/f/g", "a", "/b/c/d/e/f/g"),
    ];
    for (s, td, path) in cases {
        let id = SpiffeId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(id.as_str(), s);
        assert_eq!(id.to_string(), s);
        assert_eq!(id.trust_domain(), td, "{s}");
        assert_eq!(id.path(), path, "{s}");
        assert_eq!(id.is_trust_domain_id(), path.is_empty());
        assert_eq!(s.parse::<SpiffeId>().unwrap(), id);
    }
}

#[test]
fn empty() {
    assert_eq!(err(""), SpiffeIdError::Empty);
}

#[test]
fn wrong_scheme() {
    for s in [
        "example.org/web",
        "SPIFFE://example.org/web",
        "Spiffe://example.org/web",
        "spiffe:/example.org/web",
        "spiffe:example.org/web",
        "https://example.org/web",
        "spif://example.org",
        " spiffe://example.org/web",
        "spiffe",
        "/",
    ] {
        assert_eq!(err(s), SpiffeIdError::WrongScheme, "{s}");
    }
}

#[test]
fn missing_trust_domain() {
    for s in ["spiffe://", "spiffe:///", "spiffe:///web", "spiffe:////"] {
        assert_eq!(err(s), SpiffeIdError::MissingTrustDomain, "{s}");
    }
}

#[test]
fn bad_trust_domain_chars() {
    let cases = [
        ("spiffe://Example.org/web", 'E'),
        ("spiffe://example.ORG", 'O'),
        ("spiffe://example.org:8080/web", ':'),
        ("spiffe://example.org:/web", ':'),
        ("spiffe://user@example.org/web", '@'),
        ("spiffe://user:pw@example.org/web", ':'),
        ("spiffe://exa mple.org/web", ' '),
        ("spiffe://ex%41mple.org/web", '%'),
        ("spiffe://exämple.org/web", 'ä'),
        ("spiffe://[::1]/web", '['),
        ("spiffe://exa+mple/web", '+'),
        ("spiffe://example.org\\web", '\\'),
    ];
    for (s, character) in cases {
        assert_eq!(
            err(s),
            SpiffeIdError::InvalidTrustDomainChar { character },
            "{s}"
        );
    }
}

#[test]
fn trust_domain_length_limit() {
    let td255 = "a".repeat(255);
    let id = SpiffeId::parse(&format!("spiffe://{td255}/x")).unwrap();
    assert_eq!(id.trust_domain(), td255);
    let td256 = "a".repeat(256);
    assert_eq!(
        err(&format!("spiffe://{td256}/x")),
        SpiffeIdError::TrustDomainTooLong { len: 256 }
    );
    assert_eq!(
        SpiffeId::trust_domain_id(&td256).unwrap_err(),
        SpiffeIdError::TrustDomainTooLong { len: 256 }
    );
}

#[test]
fn empty_path_segments() {
    for s in [
        "spiffe://example.org/",
        "spiffe://example.org//",
        "spiffe://example.org//web",
        "spiffe://example.org/web/",
        "spiffe://example.org/ns//web",
        "spiffe://example.org/ns/web//",
    ] {
        assert_eq!(err(s), SpiffeIdError::EmptyPathSegment, "{s}");
    }
}

#[test]
fn dot_segments() {
    for s in [
        "spiffe://example.org/.",
        "spiffe://example.org/..",
        "spiffe://example.org/./web",
        "spiffe://example.org/ns/../web",
        "spiffe://example.org/web/.",
        "spiffe://example.org/web/..",
    ] {
        assert_eq!(err(s), SpiffeIdError::DotSegment, "{s}");
    }
}

#[test]
fn bad_path_chars() {
    let cases = [
        ("spiffe://example.org/we b", ' '),
        ("spiffe://example.org/web%20", '%'),
        ("spiffe://example.org/w:eb", ':'),
        ("spiffe://example.org/w@eb", '@'),
        ("spiffe://example.org/wéb", 'é'),
        ("spiffe://example.org/web+1", '+'),
        ("spiffe://example.org/a/b~c", '~'),
        ("spiffe://example.org/a/b*", '*'),
        ("spiffe://example.org/a\\b", '\\'),
        ("spiffe://example.org/a/b\n", '\n'),
    ];
    for (s, character) in cases {
        assert_eq!(err(s), SpiffeIdError::InvalidPathChar { character }, "{s}");
    }
}

#[test]
fn query_and_fragment() {
    for s in [
        "spiffe://example.org/web?x=1",
        "spiffe://example.org?x",
        "spiffe://example.org/web?",
        "spiffe://example.org/web?a#b",
        "spiffe://exa?mple.org/web",
        "spiffe://?",
    ] {
        assert_eq!(err(s), SpiffeIdError::QueryPresent, "{s}");
    }
    for s in [
        "spiffe://example.org/web#frag",
        "spiffe://example.org#frag",
        "spiffe://example.org/web#",
        "spiffe://example.org/web#a?b",
    ] {
        assert_eq!(err(s), SpiffeIdError::FragmentPresent, "{s}");
    }
}

#[test]
fn max_length() {
    let prefix = "spiffe://example.org/";
    let exactly = format!("{prefix}{}", "a".repeat(MAX_ID_LEN - prefix.len()));
    assert_eq!(exactly.len(), 2048);
    assert_eq!(SpiffeId::parse(&exactly).unwrap().as_str(), exactly);
    let over = format!("{exactly}b");
    assert_eq!(err(&over), SpiffeIdError::TooLong { len: 2049 });
    // The length rule is checked before anything else.
    assert_eq!(err(&"X".repeat(5000)), SpiffeIdError::TooLong { len: 5000 });
}

#[test]
fn trust_domain_id_constructor() {
    let id = SpiffeId::trust_domain_id("example.org").unwrap();
    assert_eq!(id.as_str(), "spiffe://example.org");
    assert_eq!(id.trust_domain(), "example.org");
    assert_eq!(id.path(), "");
    assert_eq!(id, SpiffeId::parse("spiffe://example.org").unwrap());

    assert_eq!(
        SpiffeId::trust_domain_id("").unwrap_err(),
        SpiffeIdError::MissingTrustDomain
    );
    for (td, character) in [
        ("Example.org", 'E'),
        ("example.org:443", ':'),
        ("example.org/web", '/'),
        ("spiffe://example.org", ':'),
        ("a?b", '?'),
        ("a#b", '#'),
    ] {
        assert_eq!(
            SpiffeId::trust_domain_id(td).unwrap_err(),
            SpiffeIdError::InvalidTrustDomainChar { character },
            "{td}"
        );
    }
}

#[test]
fn parse_workload_requires_path() {
    assert_eq!(
        SpiffeId::parse_workload("spiffe://example.org").unwrap_err(),
        SpiffeIdError::MissingPath
    );
    assert_eq!(
        SpiffeId::parse_workload("spiffe://example.org/").unwrap_err(),
        SpiffeIdError::EmptyPathSegment
    );
    assert_eq!(
        SpiffeId::parse_workload("spiffe://example.org/web")
            .unwrap()
            .path(),
        "/web"
    );
}

#[test]
fn error_messages_name_the_rule() {
    let msg = err("spiffe://Example.org/x").to_string();
    assert!(msg.contains("'E'") && msg.contains("lowercase"), "{msg}");
    let msg = err("spiffe://example.org:80/x").to_string();
    assert!(msg.contains("port"), "{msg}");
    let msg = err("spiffe://u@example.org/x").to_string();
    assert!(msg.contains("userinfo"), "{msg}");
    assert!(err("http://x").to_string().contains("spiffe://"));
    assert!(err("spiffe://a/b/").to_string().contains("empty segment"));
    assert!(err("spiffe://a/..").to_string().contains("\"..\""));
    assert!(err("spiffe://a/b?c").to_string().contains("query"));
    assert!(err("spiffe://a/b#c").to_string().contains("fragment"));
}

#[test]
fn debug_display_hash_eq() {
    use std::collections::HashSet;
    let a = SpiffeId::parse("spiffe://example.org/web").unwrap();
    assert_eq!(format!("{a:?}"), "SpiffeId(\"spiffe://example.org/web\")");
    assert_eq!(format!("{a}"), "spiffe://example.org/web");
    let set: HashSet<SpiffeId> = [a.clone(), a.clone()].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert_ne!(a, SpiffeId::parse("spiffe://example.org/Web").unwrap());
}

// ---- spiffe_id_from_cert_der ------------------------------------------------

fn cert_with_sans(sans: Vec<SanType>) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.self_signed(&key).unwrap().der().to_vec()
}

fn uri(s: &str) -> SanType {
    SanType::URI(Ia5String::try_from(s).unwrap())
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(Ia5String::try_from(s).unwrap())
}

#[test]
fn cert_identity_single_uri() {
    let der = cert_with_sans(vec![
        dns("web.example.org"),
        uri("spiffe://example.org/ns/default/sa/web"),
        SanType::IpAddress("10.0.0.1".parse().unwrap()),
    ]);
    let id = spiffe_id_from_cert_der(&der).unwrap();
    assert_eq!(id.as_str(), "spiffe://example.org/ns/default/sa/web");
    assert_eq!(id.trust_domain(), "example.org");
}

#[test]
fn cert_identity_no_san_extension() {
    let der = cert_with_sans(vec![]);
    assert!(matches!(
        spiffe_id_from_cert_der(&der),
        Err(CertIdentityError::NoSanExtension)
    ));
}

#[test]
fn cert_identity_no_uri_san() {
    let der = cert_with_sans(vec![dns("web.example.org")]);
    assert!(matches!(
        spiffe_id_from_cert_der(&der),
        Err(CertIdentityError::NoUriSan)
    ));
}

#[test]
fn cert_identity_two_uri_sans() {
    let der = cert_with_sans(vec![
        uri("spiffe://example.org/a"),
        dns("web.example.org"),
        uri("spiffe://example.org/b"),
    ]);
    let e = spiffe_id_from_cert_der(&der).unwrap_err();
    assert!(
        matches!(e, CertIdentityError::MultipleUriSans { count: 2 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("exactly one"));
}

#[test]
fn cert_identity_invalid_spiffe_id() {
    let der = cert_with_sans(vec![uri("https://example.org/web")]);
    match spiffe_id_from_cert_der(&der) {
        Err(CertIdentityError::InvalidSpiffeId { uri, error }) => {
            assert_eq!(uri, "https://example.org/web");
            assert_eq!(error, SpiffeIdError::WrongScheme);
        }
        other => panic!("unexpected: {other:?}"),
    }
    let der = cert_with_sans(vec![uri("spiffe://example.org/a/../b")]);
    assert!(matches!(
        spiffe_id_from_cert_der(&der),
        Err(CertIdentityError::InvalidSpiffeId {
            error: SpiffeIdError::DotSegment,
            ..
        })
    ));
}

#[test]
fn cert_identity_not_a_certificate() {
    for bad in [&b""[..], b"hello", b"\x30\x03\x02\x01\x01"] {
        assert!(
            matches!(
                spiffe_id_from_cert_der(bad),
                Err(CertIdentityError::NotACertificate { .. })
            ),
            "{bad:?}"
        );
    }
    // Trailing garbage after a valid certificate is rejected too.
    let mut der = cert_with_sans(vec![uri("spiffe://example.org/a")]);
    der.push(0);
    assert!(matches!(
        spiffe_id_from_cert_der(&der),
        Err(CertIdentityError::NotACertificate { .. })
    ));
    // A truncated certificate.
    let der = cert_with_sans(vec![uri("spiffe://example.org/a")]);
    assert!(matches!(
        spiffe_id_from_cert_der(&der[..der.len() - 10]),
        Err(CertIdentityError::NotACertificate { .. })
    ));
}

#[test]
fn single_uri_san_rejects_malformed_extension_values() {
    // Not a SEQUENCE.
    assert!(matches!(
        single_uri_san(b"\x04\x00"),
        Err(CertIdentityError::MalformedSan { .. })
    ));
    // SEQUENCE with trailing bytes after it.
    assert!(matches!(
        single_uri_san(b"\x30\x00\x00"),
        Err(CertIdentityError::MalformedSan { .. })
    ));
    // Empty SEQUENCE: no URI.
    assert!(matches!(
        single_uri_san(b"\x30\x00"),
        Err(CertIdentityError::NoUriSan)
    ));
    // One [6] URI "spiffe://a/b".
    let mut v = vec![0x30, 14, 0x86, 12];
    v.extend_from_slice(b"spiffe://a/b");
    assert_eq!(single_uri_san(&v).unwrap(), "spiffe://a/b");
    // A URI entry that is not UTF-8.
    let v = [0x30, 4, 0x86, 2, 0xff, 0xfe];
    assert!(matches!(
        single_uri_san(&v),
        Err(CertIdentityError::MalformedSan { .. })
    ));
    // Length longer than the data.
    assert!(matches!(
        single_uri_san(&[0x30, 10, 0x86, 1]),
        Err(CertIdentityError::MalformedSan { .. })
    ));
}
