//! SPIFFE IDs (per the SPIFFE-ID standard) and extraction of the SPIFFE ID
//! from an X.509-SVID.
//!
//! A SPIFFE ID is a URI of the form `spiffe://<trust-domain>[/<path>]`:
//!
//! * the scheme is exactly `spiffe` (lowercase) followed by `://`;
//! * the trust domain is non-empty, at most 255 bytes, and made only of
//!   lowercase letters, digits, `.`, `-` and `_` (so no uppercase, no port,
//!   no userinfo);
//! * the path is either empty or a sequence of `/`-prefixed segments, each
//!   non-empty, not `.` or `..`, and made only of letters, digits, `.`, `-`
//!   and `_`;
//! * there is no query (`?`) and no fragment (`#`);
//! * the whole ID is at most 2048 bytes.

use std::fmt;
use std::str::FromStr;

use x509_parser::asn1_rs::{FromDer as _, Header, Tag};
use x509_parser::certificate::X509CertificateParser;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::nom::Parser as _;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;

/// The only scheme (plus separator) a SPIFFE ID may start with.
pub const SCHEME_PREFIX: &str = "spiffe://";

/// Maximum length of a whole SPIFFE ID, in bytes (SPIFFE-ID standard §2.3).
pub const MAX_ID_LEN: usize = 2048;

/// Maximum length of a trust domain name, in bytes (SPIFFE-ID standard §2.3).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A validated SPIFFE ID such as `spiffe://example.org/ns/default/sa/web`.
///
/// The value always satisfies every rule of the SPIFFE-ID standard; the only
/// ways to build one are [`SpiffeId::parse`] (or [`FromStr`]) and
/// [`SpiffeId::trust_domain_id`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The full ID, e.g. `spiffe://example.org/web`.
    id: String,
    /// Byte offset in `id` where the trust domain ends (and the path starts).
    td_end: usize,
}

/// Why a string is not a valid SPIFFE ID. One variant per rule of the
/// SPIFFE-ID standard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input string is empty.
    #[error("SPIFFE ID is empty")]
    Empty,

    /// The ID is longer than 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; the maximum is {MAX_ID_LEN} bytes")]
    TooLong {
        /// Length of the rejected input, in bytes.
        len: usize,
    },

    /// The ID does not start with `spiffe://`.
    #[error("SPIFFE ID must start with the scheme \"spiffe://\" (lowercase)")]
    WrongScheme,

    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has no trust domain: expected spiffe://<trust-domain>/<path>")]
    MissingTrustDomain,

    /// The trust domain is longer than 255 bytes.
    #[error("trust domain is {len} bytes long; the maximum is {MAX_TRUST_DOMAIN_LEN} bytes")]
    TrustDomainTooLong {
        /// Length of the rejected trust domain, in bytes.
        len: usize,
    },

    /// The trust domain contains a character outside `[a-z0-9._-]`.
    #[error(
        "trust domain contains the character {character:?}{}: only lowercase letters a-z, \
         digits 0-9, '.', '-' and '_' are allowed",
        trust_domain_char_hint(*.character)
    )]
    InvalidTrustDomainChar {
        /// The first offending character.
        character: char,
    },

    /// The path contains an empty segment: `//` or a trailing `/`.
    #[error("SPIFFE ID path contains an empty segment (\"//\" or a trailing \"/\")")]
    EmptyPathSegment,

    /// The path contains a `.` or `..` segment.
    #[error("SPIFFE ID path contains a \".\" or \"..\" segment, which is not allowed")]
    DotSegment,

    /// A path segment contains a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "SPIFFE ID path contains the character {character:?}: only letters a-z and A-Z, \
         digits 0-9, '.', '-' and '_' are allowed in path segments"
    )]
    InvalidPathChar {
        /// The first offending character.
        character: char,
    },

    /// The ID has a query component (`?...`).
    #[error("SPIFFE ID must not contain a query (\"?\")")]
    QueryPresent,

    /// The ID has a fragment component (`#...`).
    #[error("SPIFFE ID must not contain a fragment (\"#\")")]
    FragmentPresent,

    /// A workload ID was required but the ID names only a trust domain.
    #[error(
        "SPIFFE ID has no path: a workload ID needs one, e.g. \
         spiffe://example.org/ns/default/sa/web (a bare spiffe://<trust-domain> \
         names the trust domain itself)"
    )]
    MissingPath,
}

fn trust_domain_char_hint(c: char) -> &'static str {
    match c {
        'A'..='Z' => " (trust domains must be lowercase)",
        ':' => " (a port is not allowed)",
        '@' => " (userinfo is not allowed)",
        _ => "",
    }
}

const fn is_trust_domain_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

const fn is_path_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

/// Returns the first char of `s` that fails `ok` (checked per byte; any
/// non-ASCII char fails because its bytes are all >= 0x80).
fn first_bad_char(s: &str, ok: fn(u8) -> bool) -> Option<char> {
    // Fast path: all ASCII bytes valid.
    if s.bytes().all(ok) {
        return None;
    }
    s.chars().find(|&c| !(c.is_ascii() && ok(c as u8)))
}

fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: td.len() });
    }
    match first_bad_char(td, is_trust_domain_byte) {
        Some(character) => Err(SpiffeIdError::InvalidTrustDomainChar { character }),
        None => Ok(()),
    }
}

/// `path` is empty or starts with '/'.
fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    let Some(segments) = path.strip_prefix('/') else {
        // Empty path (trust-domain-only ID). The caller guarantees any
        // non-empty path starts with '/'.
        return Ok(());
    };
    for segment in segments.split('/') {
        if segment.is_empty() {
            return Err(SpiffeIdError::EmptyPathSegment);
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(character) = first_bad_char(segment, is_path_byte) {
            return Err(SpiffeIdError::InvalidPathChar { character });
        }
    }
    Ok(())
}

/// Validates `s` and returns the byte offset where its trust domain ends.
fn validate(s: &str) -> Result<usize, SpiffeIdError> {
    if s.is_empty() {
        return Err(SpiffeIdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(SpiffeIdError::TooLong { len: s.len() });
    }
    let Some(rest) = s.strip_prefix(SCHEME_PREFIX) else {
        return Err(SpiffeIdError::WrongScheme);
    };
    // Whichever of '?' / '#' comes first starts the query / fragment
    // (RFC 3986 §3).
    for b in rest.bytes() {
        match b {
            b'?' => return Err(SpiffeIdError::QueryPresent),
            b'#' => return Err(SpiffeIdError::FragmentPresent),
            _ => {}
        }
    }
    let td_len = rest.find('/').unwrap_or(rest.len());
    let (td, path) = rest.split_at_checked(td_len).unwrap_or((rest, ""));
    validate_trust_domain(td)?;
    validate_path(path)?;
    Ok(SCHEME_PREFIX.len() + td_len)
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID. A bare trust-domain ID
    /// (`spiffe://example.org`) is accepted and has an empty [`path`](Self::path).
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        let td_end = validate(s)?;
        Ok(SpiffeId {
            id: s.to_owned(),
            td_end,
        })
    }

    /// Like [`parse`](Self::parse) but additionally requires a non-empty path,
    /// as workload (leaf certificate) IDs must have.
    pub fn parse_workload(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        let id = Self::parse(s)?;
        if id.is_trust_domain_id() {
            return Err(SpiffeIdError::MissingPath);
        }
        Ok(id)
    }

    /// Builds the trust-domain ID `spiffe://<td>` after validating `td` as a
    /// trust domain name (e.g. `example.org`, not `spiffe://example.org`).
    pub fn trust_domain_id(td: &str) -> Result<SpiffeId, SpiffeIdError> {
        validate_trust_domain(td)?;
        let mut id = String::with_capacity(SCHEME_PREFIX.len() + td.len());
        id.push_str(SCHEME_PREFIX);
        id.push_str(td);
        let td_end = id.len();
        Ok(SpiffeId { id, td_end })
    }

    /// The trust domain name, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        self.id.get(SCHEME_PREFIX.len()..self.td_end).unwrap_or("")
    }

    /// The path, e.g. `/ns/default/sa/web`; empty for a trust-domain ID.
    pub fn path(&self) -> &str {
        self.id.get(self.td_end..).unwrap_or("")
    }

    /// True for a bare trust-domain ID such as `spiffe://example.org`.
    pub fn is_trust_domain_id(&self) -> bool {
        self.path().is_empty()
    }

    /// The full ID, e.g. `spiffe://example.org/ns/default/sa/web`.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpiffeId").field(&self.id).finish()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

/// Why no SPIFFE ID could be taken from a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertIdentityError {
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("not a valid DER-encoded X.509 certificate: {error}")]
    NotACertificate {
        /// What the X.509 parser rejected.
        error: X509Error,
    },

    /// The certificate has no subjectAltName extension at all.
    #[error(
        "certificate has no subjectAltName extension; an X.509-SVID must carry its \
         SPIFFE ID as a URI SAN"
    )]
    NoSanExtension,

    /// The certificate's subjectAltName extension is malformed or repeated.
    #[error("certificate has a malformed subjectAltName extension: {reason}")]
    MalformedSan {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The subjectAltName extension has no URI entry.
    #[error(
        "certificate's subjectAltName has no URI entry; an X.509-SVID must carry its \
         SPIFFE ID as exactly one URI SAN"
    )]
    NoUriSan,

    /// The subjectAltName extension has more than one URI entry.
    #[error(
        "certificate's subjectAltName has {count} URI entries; an X.509-SVID must have \
         exactly one (its SPIFFE ID)"
    )]
    MultipleUriSans {
        /// How many URI SANs were found.
        count: usize,
    },

    /// The single URI SAN is not a valid SPIFFE ID.
    #[error("certificate's URI SAN {uri:?} is not a valid SPIFFE ID: {error}")]
    InvalidSpiffeId {
        /// The URI SAN as found in the certificate.
        uri: String,
        /// Which SPIFFE ID rule it breaks.
        error: SpiffeIdError,
    },
}

fn not_a_cert(e: x509_parser::nom::Err<X509Error>) -> CertIdentityError {
    let error = match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
        x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
    };
    CertIdentityError::NotACertificate { error }
}

const MALFORMED_SAN: CertIdentityError = CertIdentityError::MalformedSan {
    reason: "it is not a valid DER SEQUENCE of GeneralNames",
};

/// Finds the one URI entry in a DER-encoded subjectAltName extension value,
/// without allocating.
fn single_uri_san(san_der: &[u8]) -> Result<&str, CertIdentityError> {
    let (rest, header) = Header::from_der(san_der).map_err(|_| MALFORMED_SAN)?;
    if header.tag() != Tag::Sequence || !header.is_constructed() {
        return Err(MALFORMED_SAN);
    }
    let (rest, mut names) = header.parse_der_content(rest).map_err(|_| MALFORMED_SAN)?;
    if !rest.is_empty() {
        return Err(MALFORMED_SAN);
    }
    let mut uri = None;
    let mut count = 0usize;
    while !names.is_empty() {
        let (rest, name) = GeneralName::from_der(names).map_err(|_| MALFORMED_SAN)?;
        names = rest;
        match name {
            GeneralName::URI(u) => {
                count += 1;
                uri.get_or_insert(u);
            }
            // An undecodable URI entry (not UTF-8) still counts as a URI SAN,
            // and it cannot be a SPIFFE ID.
            GeneralName::Invalid(tag, _) if tag.0 == 6 => {
                return Err(CertIdentityError::MalformedSan {
                    reason: "a URI entry is not valid text",
                });
            }
            _ => {}
        }
    }
    match (uri, count) {
        (Some(u), 1) => Ok(u),
        (None, _) => Err(CertIdentityError::NoUriSan),
        (Some(_), count) => Err(CertIdentityError::MultipleUriSans { count }),
    }
}

/// Extracts the SPIFFE ID of an X.509-SVID: the certificate must carry
/// exactly one URI SAN, and it must be a valid SPIFFE ID.
///
/// This does not verify the certificate chain; it is meant to be called on a
/// peer certificate that the TLS stack has already verified. Only the
/// subjectAltName extension is decoded, and the only allocation beyond the
/// X.509 parser's own is the returned ID's string.
pub fn spiffe_id_from_cert_der(der: &[u8]) -> Result<SpiffeId, CertIdentityError> {
    let (rest, cert) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map_err(not_a_cert)?;
    if !rest.is_empty() {
        return Err(CertIdentityError::NotACertificate {
            error: X509Error::InvalidCertificate,
        });
    }
    let mut san = None;
    for ext in cert.extensions() {
        if ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
            if san.is_some() {
                return Err(CertIdentityError::MalformedSan {
                    reason: "the extension appears more than once",
                });
            }
            san = Some(ext.value);
        }
    }
    let san = san.ok_or(CertIdentityError::NoSanExtension)?;
    let uri = single_uri_san(san)?;
    SpiffeId::parse(uri).map_err(|error| CertIdentityError::InvalidSpiffeId {
        uri: uri.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests;
