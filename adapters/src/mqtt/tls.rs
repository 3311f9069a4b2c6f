//! TLS for the MQTT client connections: rustls (with the ring provider)
//! configured from `tls`, `ca_file`, `client_cert` and `client_key`.
//!
//! - The broker's certificate is checked against `ca_file` (PEM, one or more
//!   certificates) or, without it, the system's root certificates; its name
//!   must match `host` (a DNS name or an IP address in the certificate's
//!   subject alternative names).
//! - `client_cert` and `client_key` (PEM) authenticate the client for
//!   mutual TLS.
//!
//! Files are read when the source is built (so `twinrt check` reports a
//! missing or malformed file, naming the field and the file) and again when
//! it connects.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::{ConfigError, MqttConfig};

/// The rumqttc transport of a source with `tls = true`; `None` for plain TCP.
pub fn transport(config: &MqttConfig) -> Result<Option<Transport>, ConfigError> {
    if !config.tls {
        return Ok(None);
    }
    let tls = client_config(config)?;
    Ok(Some(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls),
    ))))
}

/// The rustls client configuration of a source, whether or not `tls` is set.
pub fn client_config(config: &MqttConfig) -> Result<ClientConfig, ConfigError> {
    let roots = match &config.ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("ca_file", path)? {
                roots.add(cert).map_err(|e| pem_error("ca_file", path, e))?;
            }
            roots
        }
        None => system_roots()?,
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Pem {
                field: "tls",
                path: Default::default(),
                message: e.to_string(),
            })?
            .with_root_certificates(roots);
    match (&config.client_cert, &config.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let certs = read_certs("client_cert", cert_path)?;
            let key = read_key(key_path)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| pem_error("client_key", key_path, e))
        }
        // Validation refuses one without the other.
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn system_roots() -> Result<RootCertStore, ConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(ConfigError::NoSystemRoots { detail });
    }
    Ok(roots)
}

fn pem_error(field: &'static str, path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Pem {
        field,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| pem_error(field, path, format_args!("cannot read it: {e}")))
}

fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(field, path)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(field, path, format_args!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            field,
            path,
            "no certificate found: expected PEM `BEGIN CERTIFICATE` blocks",
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes = read("client_key", path)?;
    rustls_pemfile::private_key(&mut BufReader::new(bytes.as_slice()))
        .map_err(|e| pem_error("client_key", path, format_args!("invalid PEM: {e}")))?
        .ok_or_else(|| {
            pem_error(
                "client_key",
                path,
                "no private key found: expected a PEM `PRIVATE KEY` block",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> MqttConfig {
        toml::from_str(&format!(
            "host = \"127.0.0.1\"\nclient_id = \"c\"\ntls = true\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn unreadable_and_invalid_files_name_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(&config(&format!("ca_file = {:?}", missing))).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("`ca_file` file `"), "{text}");
        assert!(
            text.contains("missing.pem") && text.contains("cannot read"),
            "{text}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = client_config(&config(&format!("ca_file = {:?}", junk))).unwrap_err();
        assert!(e.to_string().contains("no certificate found"), "{e}");

        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
        let e = client_config(&config(&format!(
            "ca_file = {ca_pem:?}\nclient_cert = {ca_pem:?}\nclient_key = {junk:?}"
        )))
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("`client_key` file `") && text.contains("no private key"),
            "{text}"
        );

        let key_pem = dir.path().join("key.pem");
        std::fs::write(&key_pem, ca.signing_key.serialize_pem()).unwrap();
        client_config(&config(&format!(
            "ca_file = {ca_pem:?}\nclient_cert = {ca_pem:?}\nclient_key = {key_pem:?}"
        )))
        .expect("a matching certificate and key");
    }
}
