//! The TLS client certificate a client connected with, as
//! `onClientAuthenticate` sees it (`request.certificate`).

use napi_derive::napi;
use rmqtt::types::ConnectInfo;

use crate::hook_data::{nullable, Nullable};

/// A verified client certificate (mTLS): listeners with `tlsCa` only.
#[napi(object)]
pub struct ClientCertificate {
  /// The subject distinguished name, e.g. `"CN=alice, O=Acme"`: what
  /// `certAsUsername: 'dn'` makes the username.
  pub subject: String,
  /// The subject's Common Name; `certAsUsername: 'cn'` makes it the username.
  #[napi(ts_type = "string | null")]
  pub cn: Nullable<String>,
  /// The subject's Organization (O).
  #[napi(ts_type = "string | null")]
  pub organization: Nullable<String>,
  /// The serial number, lowercase hex.
  #[napi(ts_type = "string | null")]
  pub serial: Nullable<String>,
}

/// The certificate of a CONNECT's connection; `null` without one.
pub fn of(c: &ConnectInfo) -> Nullable<ClientCertificate> {
  nullable(c.cert().map(|cert| ClientCertificate {
    subject: cert.subject.clone(),
    cn: nullable(cert.common_name.clone()),
    organization: nullable(cert.organization.clone()),
    serial: nullable(cert.serial.clone()),
  }))
}
