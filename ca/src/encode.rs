//! Encodings and primitives used across the CA: lowercase hex (serials,
//! token hashes), strict PEM output, reading every certificate of a PEM
//! bundle, SHA-256 and the system CSPRNG (both from aws-lc-rs, the one crypto
//! provider of the workspace).

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::error::CaError;
use crate::files::not_pem;

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// PEM-encodes `der` (RFC 7468 strict: standard base64, 64-column lines, LF).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b64_len = der.len().div_ceil(3) * 4;
    let mut out = String::with_capacity(b64_len + b64_len / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut column = 0;
    for chunk in der.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
        column += 4;
        if column == 64 {
            out.push('\n');
            column = 0;
        }
    }
    if column != 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every certificate of a PEM file (other PEM blocks are ignored), each
/// checked to be a whole, valid X.509 certificate. `path` only names the
/// source in errors. With `allow_empty` false, a file without certificates
/// is an error.
pub(crate) fn pem_certs(
    bytes: &[u8],
    path: &Path,
    allow_empty: bool,
) -> Result<Vec<Vec<u8>>, CaError> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(bytes) {
        let der = item.map_err(|e| not_pem(path, "CERTIFICATE", &e))?;
        match X509Certificate::from_der(&der) {
            Ok(([], _)) => {}
            Ok(_) => {
                return Err(CaError::InvalidCertificate {
                    path: path.to_owned(),
                    reason: format!("certificate {} has trailing data", out.len() + 1),
                })
            }
            Err(e) => {
                return Err(CaError::InvalidCertificate {
                    path: path.to_owned(),
                    reason: format!("certificate {}: {e}", out.len() + 1),
                })
            }
        }
        out.push(der.to_vec());
    }
    if out.is_empty() && !allow_empty {
        return Err(not_pem(
            path,
            "CERTIFICATE",
            &rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(out)
}

/// PEM-encodes each certificate, concatenated.
pub(crate) fn pem_chain<'a>(ders: impl IntoIterator<Item = &'a Vec<u8>>) -> String {
    ders.into_iter()
        .map(|d| pem_encode("CERTIFICATE", d))
        .collect()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Fills `buf` from the system CSPRNG.
pub(crate) fn random_fill(buf: &mut [u8], action: &'static str) -> Result<(), CaError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CaError::Random { action })
}

/// 16 random bytes forming a positive DER INTEGER with no leading zero byte
/// (so the encoded serial is exactly these bytes).
pub(crate) fn random_serial(action: &'static str) -> Result<[u8; 16], CaError> {
    let mut serial = [0u8; 16];
    random_fill(&mut serial, action)?;
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1;
    }
    Ok(serial)
}
