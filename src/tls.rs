//! Checks of a TLS listener's certificate and key files at `start()`, so a
//! problem is named (with the field) before rustls' generic errors, and a
//! certificate out of its validity period does not start silently.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use napi::Result;
use x509_parser::pem::Pem;

use crate::error::invalid_arg;
use crate::warning::Warning;

/// Whether a `tlsCert`/`tlsKey` value is PEM text rather than a path.
pub fn looks_like_pem(value: &str) -> bool {
  value.contains("-----BEGIN") || value.contains('\n')
}

/// The file must hold a PEM certificate. One expired or not yet valid (leaf
/// or chain) adds a warning: clients that verify it will refuse to connect,
/// those that do not still can, so the listener starts. A certificate that
/// does not parse is left for rustls to report when the listener is bound.
pub fn check_certificates(
  field: &str,
  path: &Path,
  pem: &[u8],
  warnings: &mut Vec<Warning>,
) -> Result<()> {
  let shown = path.display();
  if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
    return Err(invalid_arg(format!(
      "{field}: no PEM certificate in \"{shown}\""
    )));
  }
  let now = SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_secs() as i64);
  for block in Pem::iter_from_buffer(pem) {
    let Ok(block) = block else { break };
    if block.label != "CERTIFICATE" {
      continue;
    }
    let Ok(cert) = block.parse_x509() else {
      continue;
    };
    let validity = cert.validity();
    let subject = cert.subject();
    if validity.not_after.timestamp() < now {
      warnings.push(Warning::new(
        "MQTT_SERVER_TLS_CERT_EXPIRED",
        format!(
          "{field}: the certificate \"{subject}\" in \"{shown}\" expired on {}; TLS clients that verify it will refuse to connect",
          validity.not_after
        ),
      ));
    } else if validity.not_before.timestamp() > now {
      warnings.push(Warning::new(
        "MQTT_SERVER_TLS_CERT_NOT_YET_VALID",
        format!(
          "{field}: the certificate \"{subject}\" in \"{shown}\" is not valid before {}; TLS clients that verify it will refuse to connect until then",
          validity.not_before
        ),
      ));
    }
  }
  Ok(())
}

/// The key file must hold an unencrypted PEM private key.
pub fn check_key(field: &str, path: &Path, pem: &[u8]) -> Result<()> {
  let shown = path.display();
  let text = String::from_utf8_lossy(pem);
  // PKCS#8 ("ENCRYPTED PRIVATE KEY") or OpenSSL's legacy encrypted PEM.
  if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    || text.contains("Proc-Type: 4,ENCRYPTED")
  {
    return Err(invalid_arg(format!(
      "{field}: encrypted private keys are not supported; \"{shown}\" is encrypted. Decrypt it into a file readable only by this process (e.g. `openssl pkey -in encrypted.pem -out key.pem`)"
    )));
  }
  if !text.contains("PRIVATE KEY-----") {
    return Err(invalid_arg(format!(
      "{field}: no PEM private key in \"{shown}\""
    )));
  }
  Ok(())
}
