use super::*;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::spiffe::SpiffeIdError;
use crate::test_support::TD;

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn pattern(s: &str) -> IdPattern {
    IdPattern::parse(s).unwrap()
}

fn new_ca() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::store::init_ca(dir.path(), TD, false).unwrap();
    dir
}

fn spec(p: &str, ttl_secs: u64, single_use: bool) -> TokenSpec {
    TokenSpec {
        pattern: pattern(p),
        ttl: Duration::from_secs(ttl_secs),
        single_use,
    }
}

const SHOP_X: &str = "spiffe://example.org/ns/shop/sa/x";

// ---- IdPattern -----------------------------------------------------------------

#[test]
fn exact_pattern_matches_only_itself() {
    let p = pattern(SHOP_X);
    assert_eq!(p, IdPattern::Exact(id(SHOP_X)));
    assert!(p.matches(&id(SHOP_X)));
    assert!(!p.matches(&id("spiffe://example.org/ns/shop/sa/x/y")));
    assert!(!p.matches(&id("spiffe://example.org/ns/shop/sa/xy")));
    assert!(!p.matches(&id("spiffe://other.org/ns/shop/sa/x")));
}

#[test]
fn prefix_pattern_matches_whole_segments_below_it() {
    let p = pattern("spiffe://example.org/ns/shop/*");
    assert_eq!(p, IdPattern::Prefix(id("spiffe://example.org/ns/shop")));
    assert!(p.matches(&id(SHOP_X)));
    assert!(p.matches(&id("spiffe://example.org/ns/shop/x")));
    assert!(!p.matches(&id("spiffe://example.org/ns/shopping")));
    assert!(!p.matches(&id("spiffe://example.org/ns/shopping/sa/x")));
    assert!(!p.matches(&id("spiffe://example.org/ns/shop")));
    assert!(!p.matches(&id("spiffe://example.org/ns")));
    assert!(!p.matches(&id("spiffe://other.org/ns/shop/sa/x")));
}

#[test]
fn trust_domain_wildcard_matches_every_workload_of_it() {
    let p = pattern("spiffe://example.org/*");
    assert!(p.matches(&id(SHOP_X)));
    assert!(p.matches(&id("spiffe://example.org/a")));
    assert!(!p.matches(&id("spiffe://example.org")));
    assert!(!p.matches(&id("spiffe://example.orgx/a")));
    assert!(!p.matches(&id("spiffe://other.org/a")));
}

#[test]
fn pattern_display_round_trips() {
    for s in [
        SHOP_X,
        "spiffe://example.org/ns/shop/*",
        "spiffe://example.org/*",
    ] {
        assert_eq!(pattern(s).to_string(), s);
        assert_eq!(s.parse::<IdPattern>().unwrap(), pattern(s));
    }
}

#[test]
fn pattern_rejects_misplaced_wildcards_and_bad_ids() {
    for s in [
        "spiffe://example.org/ns/*/sa/x",
        "spiffe://example.org/ns/shop*",
        "spiffe://example.org/ns/shop/**",
        "spiffe://*/ns",
        "*",
    ] {
        match IdPattern::parse(s) {
            Err(IdPatternError::MisplacedWildcard { pattern }) => assert_eq!(pattern, s),
            other => panic!("{s}: unexpected {other:?}"),
        }
    }
    assert!(matches!(
        IdPattern::parse("spiffe://example.org"),
        Err(IdPatternError::TrustDomainOnly { .. })
    ));
    assert!(matches!(
        IdPattern::parse("https://example.org/x"),
        Err(IdPatternError::InvalidId {
            error: SpiffeIdError::WrongScheme,
            ..
        })
    ));
    assert!(matches!(
        IdPattern::parse("spiffe://example.org/ns//*"),
        Err(IdPatternError::InvalidId {
            error: SpiffeIdError::EmptyPathSegment,
            ..
        })
    ));
}

// ---- mint ------------------------------------------------------------------------

#[test]
fn minted_token_is_random_and_only_its_hash_is_stored() {
    let ca = new_ca();
    let a = mint_token(ca.path(), &spec(SHOP_X, 3600, true)).unwrap();
    let b = mint_token(ca.path(), &spec(SHOP_X, 3600, true)).unwrap();
    assert_ne!(a, b);
    let hex_part = a.strip_prefix(TOKEN_PREFIX).unwrap();
    assert_eq!(hex_part.len(), 64);
    assert!(hex_part.bytes().all(|c| c.is_ascii_hexdigit()));

    let path = ca.path().join(TOKENS_FILE);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(hex_part), "the token itself is not stored");
    assert!(text.contains(&hex(&sha256(a.as_bytes()))));
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["pattern"], SHOP_X);
    assert_eq!(first["single_use"], true);
    let expires = first["expires_at"].as_u64().unwrap();
    let created = first["created_at"].as_u64().unwrap();
    assert_eq!(expires - created, 3600);
}

#[test]
fn mint_refuses_bad_ttl_other_trust_domain_and_missing_ca() {
    let ca = new_ca();
    match mint_token(ca.path(), &spec(SHOP_X, 0, false)) {
        Err(CaError::InvalidTokenTtl { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    match mint_token(ca.path(), &spec("spiffe://other.org/ns/*", 60, false)) {
        Err(CaError::WrongTrustDomain { expected, .. }) => assert_eq!(expected, TD),
        other => panic!("unexpected {other:?}"),
    }
    let empty = tempfile::tempdir().unwrap();
    match mint_token(empty.path(), &spec(SHOP_X, 60, false)) {
        Err(CaError::Missing { path }) => assert_eq!(path, empty.path().join("ca.pem")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!empty.path().join(TOKENS_FILE).exists());
}

// ---- check -----------------------------------------------------------------------

#[test]
fn unknown_token_is_refused() {
    let ca = new_ca();
    let store = TokenStore::open(ca.path()).unwrap();
    mint_token(ca.path(), &spec(SHOP_X, 60, false)).unwrap();
    let fake = format!("{TOKEN_PREFIX}{}", "0".repeat(64));
    assert!(matches!(
        store.check_and_consume(&fake, &id(SHOP_X)),
        Err(TokenError::Unknown)
    ));
    assert!(matches!(
        store.check_and_consume("", &id(SHOP_X)),
        Err(TokenError::Unknown)
    ));
}

#[test]
fn expired_token_is_refused_by_the_injected_clock() {
    let ca = new_ca();
    let minted_at = SystemTime::now();
    let token = mint_token_at(ca.path(), &spec(SHOP_X, 1, false), minted_at).unwrap();
    let clock: Clock = Arc::new(move || minted_at + Duration::from_secs(2));
    let store = TokenStore::with_clock(ca.path(), clock).unwrap();
    match store.check_and_consume(&token, &id(SHOP_X)) {
        Err(TokenError::Expired { expired_at }) => {
            let secs = expired_at.duration_since(UNIX_EPOCH).unwrap().as_secs();
            assert_eq!(secs, unix(minted_at) + 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The same token is fine while it is valid.
    let store = TokenStore::with_clock(ca.path(), Arc::new(move || minted_at)).unwrap();
    store.check_and_consume(&token, &id(SHOP_X)).unwrap();
}

#[test]
fn token_minted_in_the_past_is_expired_now() {
    let ca = new_ca();
    let past = SystemTime::now() - Duration::from_secs(3600);
    let token = mint_token_at(ca.path(), &spec(SHOP_X, 60, false), past).unwrap();
    let store = TokenStore::open(ca.path()).unwrap();
    assert!(matches!(
        store.check_and_consume(&token, &id(SHOP_X)),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn single_use_token_works_once() {
    let ca = new_ca();
    let store = TokenStore::open(ca.path()).unwrap();
    let token = mint_token(ca.path(), &spec(SHOP_X, 60, true)).unwrap();
    store.check_and_consume(&token, &id(SHOP_X)).unwrap();
    assert!(matches!(
        store.check_and_consume(&token, &id(SHOP_X)),
        Err(TokenError::AlreadyUsed)
    ));
    let text = fs::read_to_string(ca.path().join(TOKENS_FILE)).unwrap();
    let used: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(used["used"], hex(&sha256(token.as_bytes())));
    assert!(used["at"].as_u64().unwrap() > 0);
}

#[test]
fn reusable_token_works_many_times() {
    let ca = new_ca();
    let store = TokenStore::open(ca.path()).unwrap();
    let token = mint_token(
        ca.path(),
        &spec("spiffe://example.org/ns/shop/*", 60, false),
    )
    .unwrap();
    for sa in ["a", "b", "a"] {
        let want = id(&format!("spiffe://example.org/ns/shop/sa/{sa}"));
        store.check_and_consume(&token, &want).unwrap();
    }
    // Nothing was recorded as used.
    assert_eq!(
        fs::read_to_string(ca.path().join(TOKENS_FILE))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn token_for_another_id_is_refused_and_not_spent() {
    let ca = new_ca();
    let store = TokenStore::open(ca.path()).unwrap();
    let token = mint_token(ca.path(), &spec("spiffe://example.org/ns/a/*", 60, true)).unwrap();
    let other = id("spiffe://example.org/ns/b/x");
    match store.check_and_consume(&token, &other) {
        Err(TokenError::NotAllowed { pattern, requested }) => {
            assert_eq!(pattern, "spiffe://example.org/ns/a/*");
            assert_eq!(requested, other);
        }
        other => panic!("unexpected {other:?}"),
    }
    store
        .check_and_consume(&token, &id("spiffe://example.org/ns/a/x"))
        .unwrap();
}

#[test]
fn tokens_minted_after_the_store_opened_are_seen() {
    let ca = new_ca();
    let store = TokenStore::open(ca.path()).unwrap();
    assert!(!ca.path().join(TOKENS_FILE).exists());
    let token = mint_token(ca.path(), &spec(SHOP_X, 60, true)).unwrap();
    store.check_and_consume(&token, &id(SHOP_X)).unwrap();
}

#[test]
fn used_state_survives_reopening() {
    let ca = new_ca();
    let token = mint_token(ca.path(), &spec(SHOP_X, 60, true)).unwrap();
    {
        let store = TokenStore::open(ca.path()).unwrap();
        store.check_and_consume(&token, &id(SHOP_X)).unwrap();
    }
    let reopened = TokenStore::open(ca.path()).unwrap();
    assert!(matches!(
        reopened.check_and_consume(&token, &id(SHOP_X)),
        Err(TokenError::AlreadyUsed)
    ));
}

#[test]
fn corrupt_token_file_is_reported_with_its_line() {
    let ca = new_ca();
    mint_token(ca.path(), &spec(SHOP_X, 60, true)).unwrap();
    let path = ca.path().join(TOKENS_FILE);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"hash\": \"zz\"}\n");
    fs::write(&path, text).unwrap();
    match TokenStore::open(ca.path()) {
        Err(CaError::CorruptLog { path: p, line, .. }) => {
            assert_eq!(p, path);
            assert_eq!(line, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unhex32_rejects_bad_input() {
    assert_eq!(unhex32(&"ab".repeat(32)), Some([0xab; 32]));
    assert_eq!(unhex32(&"AB".repeat(32)), None);
    assert_eq!(unhex32("ab"), None);
    assert_eq!(unhex32(&"g0".repeat(32)), None);
}
