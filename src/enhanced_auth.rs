//! `onClientEnhancedAuth`: MQTT 5.0 enhanced authentication (AUTH packets)
//! decided in JavaScript, one hook call per step. The exchange itself (AUTH
//! 0x18 challenges, CONNACK, re-authentication) is the fork's
//! `rmqtt::enhanced_auth`; this turns a step into the hook's argument and
//! its answer back into a step.

use crate::fork::{AuthStepRequest as Step, EnhancedAuthStep};
use napi::bindgen_prelude::{Buffer, Result, ToNapiValue};
use napi::sys;
use napi_derive::napi;

use crate::hook_data::{nullable, AllowAll, Nullable};
use crate::hook_js::{Args, HookArgs};

/// One step of an enhanced authentication exchange.
#[napi(object)]
pub struct EnhancedAuthRequest {
  pub client_id: String,
  #[napi(ts_type = "string | null")]
  pub username: Nullable<String>,
  #[napi(ts_type = "string | null")]
  pub remote_addr: Nullable<String>,
  /// The Authentication Method the client chose in its CONNECT (e.g.
  /// `"SCRAM-SHA-256"`); every step of the exchange has the same one.
  pub method: String,
  /// The client's Authentication Data of this step, `null` if it sent none.
  #[napi(ts_type = "Buffer | null")]
  pub data: Nullable<Buffer>,
  /// A re-authentication of a connected client (it sent AUTH 0x19).
  pub reauth: bool,
  /// `false` on the packet that opens an exchange (the CONNECT, or AUTH
  /// 0x19), `true` on the client's answers to your challenges.
  pub continued: bool,
}

/// Answer of `onClientEnhancedAuth`: exactly one of `continue: true` (send
/// the client `data` as a challenge and wait for its answer), `allow: true`
/// (done: the client is connected, or re-authenticated) or `allow: false`.
#[napi(object)]
pub struct EnhancedAuthResult {
  pub allow: Option<bool>,
  /// Challenge the client with `data` (AUTH 0x18) and ask again with its answer.
  pub r#continue: Option<bool>,
  /// Authentication Data to send: the challenge, or the server's final
  /// message in the CONNACK (or AUTH 0x00).
  #[napi(ts_type = "Buffer | Uint8Array")]
  pub data: Option<Buffer>,
  /// A superuser skips the subscribe and publish authorization hooks.
  pub superuser: Option<bool>,
  /// Why the client was refused (logged).
  pub reason: Option<String>,
  /// CONNACK code for a refusal at connect; a failed re-authentication is
  /// always DISCONNECT 0x87. Default `"notAuthorized"`.
  #[napi(ts_type = "'notAuthorized' | 'badAuthenticationMethod' | 'badUsernameOrPassword'")]
  pub code: Option<String>,
}

impl AllowAll for EnhancedAuthResult {
  fn allow_all() -> Self {
    EnhancedAuthResult {
      allow: Some(true),
      r#continue: None,
      data: None,
      superuser: None,
      reason: None,
      code: None,
    }
  }
}

/// `(request)`
pub struct EnhancedAuth(pub EnhancedAuthRequest);

impl HookArgs for EnhancedAuth {
  const JS: &'static str = "(f, request) => f(request)";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    // A few calls per connection: napi-rs's own conversion is fine here.
    out.push(unsafe { EnhancedAuthRequest::to_napi_value(a.env(), self.0)? });
    Ok(())
  }
}

pub fn request(step: &Step) -> EnhancedAuthRequest {
  EnhancedAuthRequest {
    client_id: step.id.client_id.to_string(),
    username: nullable(step.id.username.as_ref().map(|u| u.to_string())),
    remote_addr: nullable(step.id.remote_addr.map(|a| a.to_string())),
    method: step.method.to_string(),
    data: nullable(step.data.as_ref().map(|d| d.to_vec().into())),
    reauth: step.reauth,
    continued: step.continued,
  }
}

const NOT_AUTHORIZED: u8 = 0x87;

/// A refusal, for a hook that failed or did not answer.
pub fn denied() -> EnhancedAuthStep {
  EnhancedAuthStep::Fail {
    code: NOT_AUTHORIZED,
    reason: None,
  }
}

/// The step an answer asks for; `Err` names what is wrong with the answer.
pub fn step(r: EnhancedAuthResult) -> std::result::Result<EnhancedAuthStep, String> {
  let data = r.data.map(|d| bytes::Bytes::copy_from_slice(&d));
  match (r.r#continue == Some(true), r.allow) {
    (true, None) => Ok(EnhancedAuthStep::Continue(data)),
    (false, Some(true)) => Ok(EnhancedAuthStep::Success {
      data,
      superuser: r.superuser.unwrap_or(false),
    }),
    (false, Some(false)) => {
      let code = match r.code.as_deref() {
        None | Some("notAuthorized") => NOT_AUTHORIZED,
        Some("badAuthenticationMethod") => 0x8C,
        Some("badUsernameOrPassword") => 0x86,
        Some(other) => {
          return Err(format!(
            "code: unknown code {other:?} (expected \"notAuthorized\", \"badAuthenticationMethod\" or \"badUsernameOrPassword\")"
          ))
        }
      };
      Ok(EnhancedAuthStep::Fail {
        code,
        reason: r.reason.map(Into::into),
      })
    }
    _ => Err("expected exactly one of `continue: true`, `allow: true` or `allow: false`".into()),
  }
}
