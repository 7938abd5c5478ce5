//! A TLS listener's material at `start()`: read (file, PEM text or
//! Buffer) and checked, so a problem is named (with the field) before
//! rustls' generic errors, and a certificate out of its validity period
//! does not start silently. `shown` is how a message names where the
//! material came from: a path in quotes, never the material itself.

use std::time::{SystemTime, UNIX_EPOCH};

use napi::Result;
use x509_parser::pem::Pem;

use crate::config::BrokerSpec;
use crate::error::invalid_arg;
use crate::fork::TlsPem;
use crate::system_error::StartError;
use crate::tls_source::PemSource;
use crate::warning::Warning;

/// Which part of a client certificate's subject becomes the MQTT username.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertAsUsername {
  CommonName,
  Subject,
}

/// A `tls`/`wss` listener's TLS settings as configured.
#[derive(Clone, Debug)]
pub struct TlsSpec {
  pub cert: PemSource,
  pub key: PemSource,
  /// CAs whose client certificates are accepted; none: no client certificates.
  pub ca: Option<PemSource>,
  pub require_client_cert: bool,
  pub cert_as_username: Option<CertAsUsername>,
  /// The material read from the sources: filled by [`load`].
  pub pem: Option<TlsPem>,
}

/// Reads and checks every listener's TLS material (`field` prefix
/// `listeners[i]`), adding certificate date warnings to the spec.
pub fn load(spec: &mut BrokerSpec) -> std::result::Result<(), StartError> {
  for (i, l) in spec.listeners.iter_mut().enumerate() {
    let Some(tls) = &mut l.tls else { continue };
    let field = |f: &str| format!("listeners[{i}].{f}");
    let cert = tls.cert.read(&field("tlsCert"))?;
    check_certificates(
      &field("tlsCert"),
      &cert.shown,
      &cert.bytes,
      &mut spec.warnings,
    )?;
    let key = tls.key.read(&field("tlsKey"))?;
    check_key(&field("tlsKey"), &key.shown, &key.bytes)?;
    let ca = match &tls.ca {
      Some(ca) => {
        let ca = ca.read(&field("tlsCa"))?;
        check_certificates(&field("tlsCa"), &ca.shown, &ca.bytes, &mut spec.warnings)?;
        Some(ca.bytes)
      }
      None => None,
    };
    tls.pem = Some(TlsPem {
      cert: cert.bytes,
      key: key.bytes,
      client_ca: ca,
    });
  }
  Ok(())
}

/// The material must hold a PEM certificate. One expired or not yet valid
/// (leaf or chain) adds a warning: clients that verify it will refuse to
/// connect, those that do not still can, so the listener starts. A
/// certificate that does not parse is left for rustls to report when the
/// listener is bound.
pub fn check_certificates(
  field: &str,
  shown: &str,
  pem: &[u8],
  warnings: &mut Vec<Warning>,
) -> Result<()> {
  if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
    return Err(invalid_arg(format!(
      "{field}: no PEM certificate in {shown}"
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
          "{field}: the certificate \"{subject}\" in {shown} expired on {}; TLS clients that verify it will refuse to connect",
          validity.not_after
        ),
      ));
    } else if validity.not_before.timestamp() > now {
      warnings.push(Warning::new(
        "MQTT_SERVER_TLS_CERT_NOT_YET_VALID",
        format!(
          "{field}: the certificate \"{subject}\" in {shown} is not valid before {}; TLS clients that verify it will refuse to connect until then",
          validity.not_before
        ),
      ));
    }
  }
  Ok(())
}

/// The material must hold an unencrypted PEM private key.
pub fn check_key(field: &str, shown: &str, pem: &[u8]) -> Result<()> {
  let text = String::from_utf8_lossy(pem);
  // PKCS#8 ("ENCRYPTED PRIVATE KEY") or OpenSSL's legacy encrypted PEM.
  if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    || text.contains("Proc-Type: 4,ENCRYPTED")
  {
    return Err(invalid_arg(format!(
      "{field}: encrypted private keys are not supported; {shown} is encrypted. Decrypt it into a file readable only by this process (e.g. `openssl pkey -in encrypted.pem -out key.pem`)"
    )));
  }
  if !text.contains("PRIVATE KEY-----") {
    return Err(invalid_arg(format!(
      "{field}: no PEM private key in {shown}"
    )));
  }
  Ok(())
}
