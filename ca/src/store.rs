//! The CA directory on disk, and writing issued certificates.
//!
//! A CA directory holds:
//!
//! * `ca.pem`: the CA's own certificate (a root, or an intermediate);
//! * `ca-key.pem`: its private key, mode 0600 (checked on load);
//! * `chain.pem` (optional): the intermediates above `ca.pem`, excluding the
//!   root, appended to every issued chain;
//! * `bundle.pem` (optional for a root): the trusted roots handed to
//!   workloads. It may hold several roots (old and new during a root
//!   rotation); the server re-reads it, see [`Ca::reload_bundle`];
//! * `trust-domain` (only for an imported CA whose certificate carries no
//!   SPIFFE ID): the trust domain name;
//! * `tokens.jsonl` and `issued.jsonl`: see [`crate::token`] and
//!   [`crate::issued_log`].
//!
//! A directory made by an older `usher ca init` has only the first two files;
//! its bundle is `ca.pem` itself.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::authority::{Ca, IssuedCert};
use crate::encode::{pem_certs, pem_chain, random_serial};
use crate::error::{crypto, CaError};
use crate::files::{
    create_dir, not_pem, read_error, read_limited, read_optional, read_required, refuse_existing,
    remove_if_exists, write_atomic,
};
use crate::spiffe::{spiffe_id_from_cert_der, CertIdentityError, SpiffeId};
use crate::validity::{offset_date_time, unix_secs, CLOCK_SKEW_SLACK};

use bundle::{check_chain, read_bundle, set_bundle};

// The file names, where `usher_ca::store` has always offered them.
pub use crate::layout::{
    BUNDLE_FILE, CA_BUNDLE_FILE, CA_CERT_FILE, CA_CHAIN_FILE, CA_KEY_FILE, LEAF_CERT_FILE,
    LEAF_KEY_FILE, TRUST_DOMAIN_FILE,
};

/// Lifetime of a root created by [`init_ca`] (ten years, leap days included).
const CA_VALIDITY: Duration = Duration::from_secs(3653 * 24 * 60 * 60);
/// Lifetime of an intermediate created by [`init_intermediate`] (three
/// years), capped at its parent's expiry.
const INTERMEDIATE_VALIDITY: Duration = Duration::from_secs(1096 * 24 * 60 * 60);

/// Key file permission bits that must be clear: any access by group or others.
const KEY_FORBIDDEN_MODE_BITS: u32 = 0o077;
/// The same, when the group may read the key (a Kubernetes Secret volume).
const KEY_FORBIDDEN_MODE_BITS_GROUP_READ: u32 = 0o037;

/// Creates a new root CA for `trust_domain` in `dir` (created, mode 0700, if
/// missing): `ca.pem` (0644) and `ca-key.pem` (0600). Refuses to replace
/// existing files unless `force`; with `force`, a `chain.pem`, `bundle.pem`
/// or `trust-domain` of the CA being replaced is removed, as it would not
/// match the new root.
pub fn init_ca(dir: &Path, trust_domain: &str, force: bool) -> Result<Ca, CaError> {
    let td_id = trust_domain_id(trust_domain)?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    create_dir(dir)?;
    if !force {
        refuse_existing(&[
            &cert_path,
            &key_path,
            &dir.join(CA_CHAIN_FILE),
            &dir.join(CA_BUNDLE_FILE),
        ])?;
    }

    let now = SystemTime::now();
    let not_before = unix_secs(now.checked_sub(CLOCK_SKEW_SLACK))?;
    let not_after = unix_secs(now.checked_add(CA_VALIDITY))?;
    let params = ca_params(
        &td_id,
        format!("usher root CA {}", td_id.trust_domain()),
        not_before,
        not_after,
        1,
    )?;
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto("generate the CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(crypto("self-sign the CA certificate"))?;
    let key_pem = key.serialize_pem();
    // Run the same checks as `load_ca` before anything touches the disk.
    let mut ca = Ca::from_parts(cert.der().to_vec(), key, &cert_path, &key_path, None)?;

    for stale in [CA_CHAIN_FILE, CA_BUNDLE_FILE, TRUST_DOMAIN_FILE] {
        remove_if_exists(&dir.join(stale))?;
    }
    // Key first: a directory with a certificate but no key is never left behind.
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
    ca.dir = Some(dir.to_owned());
    Ok(ca)
}

/// Creates an intermediate CA in `dir`, signed by the CA in `parent_dir`:
/// a new P-256 key (`ca-key.pem`, 0600), its certificate (`ca.pem`, for the
/// parent's trust domain, pathLenConstraint one less than the parent's),
/// `chain.pem` (the parent and its own chain, unless the parent is the root)
/// and `bundle.pem` (the parent's bundle: the roots). Refuses to replace
/// existing files unless `force`.
pub fn init_intermediate(dir: &Path, parent_dir: &Path, force: bool) -> Result<Ca, CaError> {
    let parent = load_ca(parent_dir)?;
    if let (Ok(a), Ok(b)) = (fs::canonicalize(dir), fs::canonicalize(parent_dir)) {
        if a == b {
            return Err(CaError::SameDirectory { path: a });
        }
    }
    let parent_cert_path = parent_dir.join(CA_CERT_FILE);
    let path_len = match parent.path_len {
        Some(0) => {
            return Err(CaError::NotACaCert {
                path: parent_cert_path,
                reason: "its pathLenConstraint is 0, so it may sign only workload \
                         certificates, not another CA"
                    .to_owned(),
            })
        }
        Some(n) => n - 1,
        None => 0,
    };
    let path_len = u8::try_from(path_len).unwrap_or(u8::MAX);

    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let chain_path = dir.join(CA_CHAIN_FILE);
    let bundle_path = dir.join(CA_BUNDLE_FILE);
    create_dir(dir)?;
    if !force {
        refuse_existing(&[&cert_path, &key_path, &chain_path, &bundle_path])?;
    }

    let td_id = trust_domain_id(parent.trust_domain())?;
    let now = SystemTime::now();
    let not_before = unix_secs(now.checked_sub(CLOCK_SKEW_SLACK))?;
    let not_after = unix_secs(now.checked_add(INTERMEDIATE_VALIDITY))?.min(parent.not_after);
    let mut params = ca_params(
        &td_id,
        format!("usher intermediate CA {}", td_id.trust_domain()),
        not_before,
        not_after,
        path_len,
    )?;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(crypto("generate the intermediate CA key"))?;
    let cert = params
        .signed_by(&key, &parent.issuer)
        .map_err(crypto("sign the intermediate CA certificate"))?;
    let key_pem = key.serialize_pem();

    let chain_pem = parent.intermediates_pem();
    let bundle_pem = parent.trust_bundle_pem();
    let mut ca = Ca::from_parts(cert.der().to_vec(), key, &cert_path, &key_path, None)?;
    ca.chain_pem.clone_from(&chain_pem);
    set_bundle(&ca, bundle_pem.clone());
    check_chain(&ca, &cert_path, &bundle_path)?;

    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
    if chain_pem.is_empty() {
        remove_if_exists(&chain_path)?;
    } else {
        write_atomic(&chain_path, chain_pem.as_bytes(), 0o644)?;
    }
    write_atomic(&bundle_path, bundle_pem.as_bytes(), 0o644)?;
    remove_if_exists(&dir.join(TRUST_DOMAIN_FILE))?;
    ca.dir = Some(dir.to_owned());
    Ok(ca)
}

/// Imports a CA certificate and key made elsewhere (cert-manager, an
/// organisation's PKI) into `dir`, for `trust_domain`. Checks that the key
/// is the certificate's, that the certificate is a CA (CA:TRUE,
/// keyCertSign), not expired, and that it chains (through `chain_pem`, the
/// intermediates above it, if any) to a root in `bundle_pem`. If the
/// certificate carries a SPIFFE ID it must be `spiffe://<trust_domain>`;
/// otherwise the trust domain is recorded in `trust-domain`. Refuses to
/// replace existing files unless `force`.
pub fn import_ca(
    dir: &Path,
    cert_pem: &str,
    key_pem: &str,
    bundle_pem: &str,
    chain_pem: Option<&str>,
    trust_domain: &str,
    force: bool,
) -> Result<Ca, CaError> {
    trust_domain_id(trust_domain)?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let chain_path = dir.join(CA_CHAIN_FILE);
    let bundle_path = dir.join(CA_BUNDLE_FILE);
    let td_path = dir.join(TRUST_DOMAIN_FILE);

    let cert_der = single_cert(cert_pem.as_bytes(), &cert_path)?;
    let key = parse_key(key_pem.as_bytes(), &key_path)?;
    let chain = match chain_pem {
        Some(pem) => pem_certs(pem.as_bytes(), &chain_path, true)?,
        None => Vec::new(),
    };
    let roots = pem_certs(bundle_pem.as_bytes(), &bundle_path, false)?;
    let key_pem = key.serialize_pem();

    let mut ca = Ca::from_parts(
        cert_der,
        key,
        &cert_path,
        &key_path,
        Some((trust_domain, &td_path)),
    )?;
    ca.chain_pem = pem_chain(&chain);
    set_bundle(&ca, pem_chain(&roots));
    check_chain(&ca, &cert_path, &bundle_path)?;
    let needs_td_file = matches!(
        spiffe_id_from_cert_der(&ca.cert_der),
        Err(CertIdentityError::NoSanExtension | CertIdentityError::NoUriSan)
    );

    create_dir(dir)?;
    if !force {
        refuse_existing(&[&cert_path, &key_path, &chain_path, &bundle_path, &td_path])?;
    }
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
    if ca.chain_pem.is_empty() {
        remove_if_exists(&chain_path)?;
    } else {
        write_atomic(&chain_path, ca.chain_pem.as_bytes(), 0o644)?;
    }
    write_atomic(&bundle_path, ca.trust_bundle_pem().as_bytes(), 0o644)?;
    if needs_td_file {
        write_atomic(&td_path, format!("{trust_domain}\n").as_bytes(), 0o644)?;
    } else {
        remove_if_exists(&td_path)?;
    }
    ca.dir = Some(dir.to_owned());
    Ok(ca)
}

/// Loads the CA in `dir` (see the module docs for the files). The key file
/// must not be accessible by group or others. Without `bundle.pem`, the CA
/// must be a root, and is its own bundle.
pub fn load_ca(dir: &Path) -> Result<Ca, CaError> {
    load_ca_with(dir, false)
}

/// [`load_ca`]; with `allow_group_read`, the key file may also be readable
/// (only readable) by its group, as Kubernetes makes the files of a Secret
/// volume for a pod with `fsGroup` (root-owned, mode 0440): the only way a
/// non-root CA can read its key from a Secret.
pub fn load_ca_with(dir: &Path, allow_group_read: bool) -> Result<Ca, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let td_path = dir.join(TRUST_DOMAIN_FILE);

    let cert_der = single_cert(&read_required(&cert_path)?, &cert_path)?;

    let key_file = File::open(&key_path).map_err(|error| read_error(&key_path, error))?;
    let meta = key_file.metadata().map_err(|error| CaError::Read {
        path: key_path.clone(),
        error,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    let forbidden = match allow_group_read {
        true => KEY_FORBIDDEN_MODE_BITS_GROUP_READ,
        false => KEY_FORBIDDEN_MODE_BITS,
    };
    if mode & forbidden != 0 {
        return Err(CaError::KeyPermissions {
            path: key_path,
            mode,
        });
    }
    let key_bytes = read_limited(key_file).map_err(|error| CaError::Read {
        path: key_path.clone(),
        error,
    })?;
    let key = parse_key(&key_bytes, &key_path)?;

    let td = read_trust_domain_file(&td_path)?;
    let mut ca = Ca::from_parts(
        cert_der,
        key,
        &cert_path,
        &key_path,
        td.as_deref().map(|td| (td, td_path.as_path())),
    )?;
    let chain_path = dir.join(CA_CHAIN_FILE);
    if let Some(bytes) = read_optional(&chain_path)? {
        ca.chain_pem = pem_chain(&pem_certs(&bytes, &chain_path, true)?);
    }
    let bundle = read_bundle(dir, &ca)?;
    set_bundle(&ca, bundle);
    ca.dir = Some(dir.to_owned());
    Ok(ca)
}

/// The trust domain of the CA in `dir`, from `ca.pem` (or `trust-domain`),
/// without touching the key: for tools such as `usher ca token` that only
/// need to know which trust domain the CA serves.
pub fn trust_domain_of(dir: &Path) -> Result<String, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let td_path = dir.join(TRUST_DOMAIN_FILE);
    let cert_der = single_cert(&read_required(&cert_path)?, &cert_path)?;
    match spiffe_id_from_cert_der(&cert_der) {
        Ok(id) => Ok(id.trust_domain().to_owned()),
        Err(error @ (CertIdentityError::NoSanExtension | CertIdentityError::NoUriSan)) => {
            match read_trust_domain_file(&td_path)? {
                Some(td) => Ok(trust_domain_id(&td)?.trust_domain().to_owned()),
                None => Err(CaError::CaIdentity {
                    path: cert_path,
                    error,
                }),
            }
        }
        Err(error) => Err(CaError::CaIdentity {
            path: cert_path,
            error,
        }),
    }
}

fn read_trust_domain_file(td_path: &Path) -> Result<Option<String>, CaError> {
    match read_optional(td_path)? {
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| CaError::CorruptLog {
                path: td_path.to_owned(),
                line: 1,
                reason: "not UTF-8; expected a trust domain name such as example.org".to_owned(),
            })?;
            Ok(Some(text.trim().to_owned()))
        }
        None => Ok(None),
    }
}

/// `cert.pem` (0644), `key.pem` (0600) and `bundle.pem` (0644). Each file is
/// replaced atomically, so a reader never sees a partly written file.
pub fn write_issued(out: &Path, issued: &IssuedCert) -> Result<(), CaError> {
    create_dir(out)?;
    write_atomic(&out.join(LEAF_KEY_FILE), issued.key_pem.as_bytes(), 0o600)?;
    write_atomic(&out.join(LEAF_CERT_FILE), issued.cert_pem.as_bytes(), 0o644)?;
    write_atomic(&out.join(BUNDLE_FILE), issued.bundle_pem.as_bytes(), 0o644)?;
    Ok(())
}

fn trust_domain_id(trust_domain: &str) -> Result<SpiffeId, CaError> {
    SpiffeId::trust_domain_id(trust_domain).map_err(|error| CaError::InvalidTrustDomain {
        trust_domain: trust_domain.to_owned(),
        error,
    })
}

/// Certificate parameters of a CA for `td_id` (its URI SAN marks the trust
/// domain, as `load_ca` expects).
fn ca_params(
    td_id: &SpiffeId,
    common_name: String,
    not_before: i64,
    not_after: i64,
    path_len: u8,
) -> Result<CertificateParams, CaError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "usher");
    // A SPIFFE ID is ASCII by construction, so this cannot fail in practice.
    let uri = Ia5String::try_from(td_id.as_str()).map_err(|e| CaError::Crypto {
        action: "encode the trust domain ID as a URI SAN",
        error: e,
    })?;
    let serial = random_serial("generate the CA serial number")?;
    let mut params = CertificateParams::default();
    params.not_before = offset_date_time(not_before)?;
    params.not_after = offset_date_time(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The one certificate of a PEM file (`path` names it in errors).
fn single_cert(bytes: &[u8], path: &Path) -> Result<Vec<u8>, CaError> {
    let mut certs = CertificateDer::pem_slice_iter(bytes);
    let first = match certs.next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => return Err(not_pem(path, "CERTIFICATE", &e)),
        None => {
            return Err(not_pem(
                path,
                "CERTIFICATE",
                &rustls_pki_types::pem::Error::NoItemsFound,
            ))
        }
    };
    if certs.next().is_some() {
        return Err(CaError::InvalidCertificate {
            path: path.to_owned(),
            reason: "it holds more than one certificate; expected only the CA certificate"
                .to_owned(),
        });
    }
    Ok(first.to_vec())
}

fn parse_key(bytes: &[u8], path: &Path) -> Result<KeyPair, CaError> {
    let key_der =
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| not_pem(path, "PRIVATE KEY", &e))?;
    KeyPair::try_from(&key_der).map_err(|e| CaError::InvalidKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

mod bundle;
mod check;

#[cfg(test)]
mod tests;
