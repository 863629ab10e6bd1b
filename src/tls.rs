//! PEM certificates and keys for the shell's TLS (the OTLP client, the HTTP listeners): read,
//! parsed, and every error naming what it is and where it came from.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// rustls with ring, the one crypto provider of the binary.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A file's bytes; the error names `what` and the path.
pub(crate) fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// Every certificate in `pem`, at least one. `origin` says where it came from (a path).
pub(crate) fn certificates(
    what: &str,
    origin: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} {origin} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the {what} {origin} holds no certificate (a PEM \"BEGIN CERTIFICATE\" block)"
        ));
    }
    Ok(certs)
}

/// The private key in `pem` (PKCS#8, RSA or EC).
pub(crate) fn private_key(
    what: &str,
    origin: &str,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "the {what} {origin} holds no private key (a PEM PKCS#8, RSA or EC \"PRIVATE KEY\" block)"
        ),
        e => format!("the {what} {origin} is not valid PEM: {e}"),
    })
}

/// A root store of the certificates in `pem`.
pub(crate) fn roots(what: &str, origin: &str, pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certificates(what, origin, pem)?.into_iter().enumerate() {
        roots.add(c).map_err(|e| {
            format!(
                "certificate {} in the {what} {origin} cannot be a CA: {e}",
                i + 1
            )
        })?;
    }
    Ok(roots)
}
