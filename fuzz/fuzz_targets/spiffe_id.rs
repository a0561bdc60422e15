//! `SpiffeId::parse` / `parse_workload`: SPIFFE IDs arrive in peer
//! certificates' URI SANs, in usher.yaml routes and in CA requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_ca::spiffe::{MAX_ID_LEN, MAX_TRUST_DOMAIN_LEN, SCHEME_PREFIX};
use usher_ca::{SpiffeId, SpiffeIdError};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SpiffeId::parse(s);
    let workload = SpiffeId::parse_workload(s);
    assert_eq!(parsed, s.parse::<SpiffeId>(), "FromStr agrees with parse");
    match parsed {
        Ok(id) => {
            // The ID is kept verbatim and re-parses to an equal ID.
            assert_eq!(id.as_str(), s);
            assert_eq!(id.to_string(), s);
            let again = SpiffeId::parse(id.as_str()).expect("a parsed ID must re-parse");
            assert_eq!(again, id);
            // Its parts are well-formed and put back together make the ID.
            let td = id.trust_domain();
            assert!(!td.is_empty(), "empty trust domain in {s:?}");
            assert!(td.len() <= MAX_TRUST_DOMAIN_LEN);
            assert!(s.len() <= MAX_ID_LEN);
            assert_eq!(format!("{SCHEME_PREFIX}{td}{}", id.path()), s);
            assert!(id.path().is_empty() || id.path().starts_with('/'));
            // The trust domain alone is a valid trust-domain ID.
            let td_id = SpiffeId::trust_domain_id(td).expect("trust domain re-validates");
            assert!(td_id.is_trust_domain_id());
            assert_eq!(td_id.trust_domain(), td);
            // parse_workload accepts exactly the IDs with a path.
            match workload {
                Ok(w) => {
                    assert!(!id.is_trust_domain_id());
                    assert_eq!(w, id);
                }
                Err(e) => {
                    assert!(id.is_trust_domain_id());
                    assert_eq!(e, SpiffeIdError::MissingPath);
                }
            }
        }
        Err(e) => {
            // Errors display (they end up in operator-facing messages).
            assert!(!e.to_string().is_empty());
            assert_eq!(workload, Err(e), "parse_workload fails the same way");
        }
    }
});
