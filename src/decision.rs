//! What a decision hook's answer means for the broker: each answer read
//! into a verdict (checked: a bad field is the hook's failure, named), and
//! the verdicts of several hook sets combined into rmqtt's result.
//!
//! Combining: every set that has the hook must allow; the first denial, in
//! the order the sets are asked, wins with its code and reason; QoS caps
//! combine as the lowest; a client is a superuser only if every set that
//! authenticated it says so.

use std::time::Duration;

use bytestring::ByteString;
use rmqtt::codec::v3::ConnectAckReason as ConnectAckV3;
use rmqtt::codec::v5::{ConnectAckReason as ConnectAckV5, PublishAckReason, SubscribeAckReason};
use rmqtt::types::{
  AuthResult, ConnectAckReason, PublishAclResult, PublishResult, QoS as RQoS, SubscribeAclResult,
};

use crate::fork::{self, AuthRefusal};
use crate::hook_data::{
  AuthenticateResult, Code, PublishAuthorizeResult, SubscribeAuthorizeResult,
};
use crate::reason_code::{self, Packet};

/// Longest `cacheMs` accepted: one day.
const MAX_CACHE_MS: f64 = 86_400_000.0;

#[derive(Clone, Debug)]
pub enum Verdict {
  /// Allowed; for a subscription, the QoS cap.
  Allow(Option<RQoS>),
  /// Denied: reason code (MQTT 5), Reason String, disconnect (publish only).
  Deny(u8, Option<ByteString>, bool),
}

impl Verdict {
  pub const DENY: Verdict = Verdict::Deny(0x87, None, false);
}

/// What an authentication answer means.
pub enum Login {
  Allow { superuser: bool },
  Refuse(AuthRefusal),
}

fn code(c: Option<&Code>, packet: Packet, default: u8) -> Result<u8, String> {
  c.map_or(Ok(default), |c| reason_code::parse(c, packet))
}

/// A Reason String or Server Reference: an MQTT UTF-8 string.
fn text(s: Option<String>, field: &str) -> Result<Option<ByteString>, String> {
  match s {
    Some(s) if s.len() > 65_535 => Err(format!("{field}: at most 65535 bytes, got {}", s.len())),
    Some(s) if s.contains('\0') => Err(format!("{field}: must not contain U+0000")),
    s => Ok(s.map(ByteString::from)),
  }
}

fn cache_ms(ms: Option<f64>) -> Result<Option<Duration>, String> {
  match ms {
    None => Ok(None),
    Some(ms) if (0.0..=MAX_CACHE_MS).contains(&ms) => Ok(Some(Duration::from_millis(ms as u64))),
    Some(ms) => Err(format!(
      "cacheMs: must be a number of milliseconds from 0 to {MAX_CACHE_MS}, got {ms}"
    )),
  }
}

fn qos(q: u32) -> Result<RQoS, String> {
  match q {
    0 => Ok(RQoS::AtMostOnce),
    1 => Ok(RQoS::AtLeastOnce),
    2 => Ok(RQoS::ExactlyOnce),
    _ => Err(format!("qos: must be 0, 1 or 2, got {q}")),
  }
}

pub fn subscribe(r: SubscribeAuthorizeResult) -> Result<(Verdict, Option<Duration>), String> {
  let ttl = cache_ms(r.cache_ms)?;
  let verdict = if r.allow {
    Verdict::Allow(r.qos.map(qos).transpose()?)
  } else {
    Verdict::Deny(
      code(r.code.as_ref(), Packet::Suback, 0x87)?,
      text(r.reason, "reason")?,
      false,
    )
  };
  Ok((verdict, ttl))
}

pub fn publish(r: PublishAuthorizeResult) -> Result<(Verdict, Option<Duration>), String> {
  let ttl = cache_ms(r.cache_ms)?;
  let verdict = if r.allow {
    Verdict::Allow(None)
  } else {
    Verdict::Deny(
      code(r.code.as_ref(), Packet::Puback, 0x87)?,
      text(r.reason, "reason")?,
      r.disconnect.unwrap_or(false),
    )
  };
  Ok((verdict, ttl))
}

/// `v5`: the client speaks MQTT 5 (else it gets the closest 3.1.1 code and
/// no properties).
pub fn authenticate(r: AuthenticateResult, v5: bool, has_username: bool) -> Result<Login, String> {
  if r.allow {
    return Ok(Login::Allow {
      superuser: r.superuser.unwrap_or(false),
    });
  }
  let default = if has_username { 0x86 } else { 0x87 };
  let code = code(r.code.as_ref(), Packet::Connack, default)?;
  let reason_string = text(r.reason, "reason")?;
  let server_reference = text(r.server_reference, "serverReference")?;
  if server_reference.is_some() && !matches!(code, 0x9C | 0x9D) {
    return Err(format!(
      "serverReference: only with code 'useAnotherServer' (0x9C) or 'serverMoved' (0x9D), got 0x{code:02X}"
    ));
  }
  Ok(Login::Refuse(refusal(
    code,
    v5,
    reason_string,
    server_reference,
  )))
}

fn refusal(
  code: u8,
  v5: bool,
  reason_string: Option<ByteString>,
  server_reference: Option<ByteString>,
) -> AuthRefusal {
  if v5 {
    AuthRefusal {
      code: ConnectAckReason::V5(
        ConnectAckV5::try_from(code).unwrap_or(ConnectAckV5::NotAuthorized),
      ),
      reason_string,
      server_reference,
    }
  } else {
    AuthRefusal {
      code: ConnectAckReason::V3(
        ConnectAckV3::try_from(reason_code::connack_v3(code))
          .unwrap_or(ConnectAckV3::NotAuthorized),
      ),
      reason_string: None,
      server_reference: None,
    }
  }
}

pub fn login_result(l: Login) -> AuthResult {
  match l {
    Login::Allow { superuser } => AuthResult::Allow(superuser, None),
    Login::Refuse(r) => fork::refused(r),
  }
}

/// The combined subscribe verdict as rmqtt's result, for `requested` QoS.
pub fn subscribe_result(v: Verdict, requested: RQoS) -> SubscribeAclResult {
  match v {
    Verdict::Allow(cap) => {
      SubscribeAclResult::new_success(cap.map_or(requested, |c| requested.min(c)), None)
    }
    Verdict::Deny(code, reason, _) => fork::subscribe_refusal(
      SubscribeAckReason::try_from(code).unwrap_or(SubscribeAckReason::NotAuthorized),
      reason,
    ),
  }
}

pub fn publish_result(v: Verdict) -> PublishAclResult {
  match v {
    Verdict::Allow(_) => PublishAclResult::allow(),
    Verdict::Deny(code, reason, disconnect) => PublishAclResult(PublishResult::reason_code(
      PublishAckReason::try_from(code).unwrap_or(PublishAckReason::NotAuthorized),
      Some(reason.unwrap_or_else(|| "PublishRefused".into())),
      disconnect,
    )),
  }
}

/// The QoS cap of the allows so far combined with one more set's: the
/// lowest (a denial ends the asking before this).
pub fn and(so_far: Option<RQoS>, next: Option<RQoS>) -> Option<RQoS> {
  match (so_far, next) {
    (Some(a), Some(b)) => Some(a.min(b)),
    (a, b) => a.or(b),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn caps_combine_as_the_lowest() {
    assert_eq!(and(None, Some(RQoS::AtLeastOnce)), Some(RQoS::AtLeastOnce));
    assert_eq!(
      and(Some(RQoS::ExactlyOnce), Some(RQoS::AtMostOnce)),
      Some(RQoS::AtMostOnce)
    );
    assert_eq!(and(None, None), None);
  }

  #[test]
  fn server_reference_needs_a_redirect_code() {
    let r = AuthenticateResult {
      allow: false,
      superuser: None,
      reason: None,
      code: Some(Code::B("notAuthorized".into())),
      server_reference: Some("x:1883".into()),
    };
    assert!(authenticate(r, true, true).is_err());
  }
}
