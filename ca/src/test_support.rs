//! Helpers shared by the unit tests of several modules.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

pub(crate) const TD: &str = "example.org";

/// Every certificate of a PEM string, DER.
pub(crate) fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

pub(crate) fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

/// Verifies `chain_pem` (leaf first, then intermediates) against the roots
/// in `bundle_pem` the way the proxy's rustls will: as a client certificate
/// and, with `server_name`, as a server certificate.
pub(crate) fn rustls_verify(
    bundle_pem: &str,
    chain_pem: &str,
    server_name: Option<&str>,
) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in certs(bundle_pem) {
        roots.add(root).unwrap();
    }
    let roots = Arc::new(roots);
    let chain = certs(chain_pem);
    let (leaf, intermediates) = chain.split_first().unwrap();
    let now = UnixTime::now();
    let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .unwrap();
    client.verify_client_cert(leaf, intermediates, now)?;
    if let Some(name) = server_name {
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        server.verify_server_cert(leaf, intermediates, &name, &[], now)?;
    }
    Ok(())
}

/// Checks each signature of `chain_pem` + the first root of `bundle_pem`
/// with x509-parser: leaf → intermediates → root.
pub(crate) fn x509_verify_chain(bundle_pem: &str, chain_pem: &str) {
    let mut all = certs(chain_pem);
    all.extend(certs(bundle_pem).into_iter().take(1));
    for pair in all.windows(2) {
        let child = parse(&pair[0]);
        let parent = parse(&pair[1]);
        assert_eq!(child.issuer().as_raw(), parent.subject().as_raw());
        child
            .verify_signature(Some(parent.public_key()))
            .expect("signed by the next certificate");
    }
    let root = parse(&all[all.len() - 1]);
    root.verify_signature(None).expect("root is self-signed");
}
