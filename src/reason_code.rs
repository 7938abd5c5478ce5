//! The MQTT 5 reason codes a decision hook may refuse with (`code`), by
//! number or by name, and which packet each is valid in.

use napi::bindgen_prelude::Either;
use napi_derive::napi;

/// The packet a refusal is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
  Connack,
  Suback,
  Puback,
}

impl Packet {
  fn bit(self) -> u8 {
    match self {
      Packet::Connack => C,
      Packet::Suback => S,
      Packet::Puback => P,
    }
  }

  fn name(self) -> &'static str {
    match self {
      Packet::Connack => "CONNACK",
      Packet::Suback => "SUBACK",
      Packet::Puback => "PUBACK/PUBREC",
    }
  }
}

const C: u8 = 1;
const S: u8 = 2;
const P: u8 = 4;

macro_rules! reason_codes {
  ($($(#[doc = $doc:tt])* $variant:ident = $value:literal, $name:literal, $packets:expr;)*) => {
    /// The name of an MQTT 5 refusal code, for a decision's `code` (a
    /// number is accepted too).
    ///
    /// (Type declaration only: `code` is read as a number or a string.)
    #[napi(string_enum)]
    #[allow(dead_code)]
    pub enum ReasonCodeName {
      $($(#[doc = $doc])* #[napi(value = $name)] $variant,)*
    }

    /// Value, name, packets it is valid in.
    const CODES: &[(u8, &str, u8)] = &[$(($value, $name, $packets),)*];
  };
}

// Every refusal code of MQTT 5.0 (section 2.4) that CONNACK, SUBACK or
// PUBACK/PUBREC can carry.
reason_codes! {
  #[doc = "0x80"] UnspecifiedError = 0x80, "unspecifiedError", C | S | P;
  #[doc = "0x81 (CONNACK)"] MalformedPacket = 0x81, "malformedPacket", C;
  #[doc = "0x82 (CONNACK)"] ProtocolError = 0x82, "protocolError", C;
  #[doc = "0x83"] ImplementationSpecificError = 0x83, "implementationSpecificError", C | S | P;
  #[doc = "0x84 (CONNACK)"] UnsupportedProtocolVersion = 0x84, "unsupportedProtocolVersion", C;
  #[doc = "0x85 (CONNACK)"] ClientIdentifierNotValid = 0x85, "clientIdentifierNotValid", C;
  #[doc = "0x86 (CONNACK)"] BadUsernameOrPassword = 0x86, "badUsernameOrPassword", C;
  #[doc = "0x87"] NotAuthorized = 0x87, "notAuthorized", C | S | P;
  #[doc = "0x88 (CONNACK)"] ServerUnavailable = 0x88, "serverUnavailable", C;
  #[doc = "0x89 (CONNACK)"] ServerBusy = 0x89, "serverBusy", C;
  #[doc = "0x8A (CONNACK)"] Banned = 0x8A, "banned", C;
  #[doc = "0x8C (CONNACK)"] BadAuthenticationMethod = 0x8C, "badAuthenticationMethod", C;
  #[doc = "0x8F (SUBACK)"] TopicFilterInvalid = 0x8F, "topicFilterInvalid", S;
  #[doc = "0x90 (CONNACK, PUBACK)"] TopicNameInvalid = 0x90, "topicNameInvalid", C | P;
  #[doc = "0x91 (SUBACK, PUBACK)"] PacketIdentifierInUse = 0x91, "packetIdentifierInUse", S | P;
  #[doc = "0x95 (CONNACK)"] PacketTooLarge = 0x95, "packetTooLarge", C;
  #[doc = "0x97"] QuotaExceeded = 0x97, "quotaExceeded", C | S | P;
  #[doc = "0x99 (CONNACK, PUBACK)"] PayloadFormatInvalid = 0x99, "payloadFormatInvalid", C | P;
  #[doc = "0x9A (CONNACK)"] RetainNotSupported = 0x9A, "retainNotSupported", C;
  #[doc = "0x9B (CONNACK)"] QosNotSupported = 0x9B, "qosNotSupported", C;
  #[doc = "0x9C (CONNACK, with `serverReference`)"] UseAnotherServer = 0x9C, "useAnotherServer", C;
  #[doc = "0x9D (CONNACK, with `serverReference`)"] ServerMoved = 0x9D, "serverMoved", C;
  #[doc = "0x9E (SUBACK)"] SharedSubscriptionsNotSupported = 0x9E, "sharedSubscriptionsNotSupported", S;
  #[doc = "0x9F (CONNACK)"] ConnectionRateExceeded = 0x9F, "connectionRateExceeded", C;
  #[doc = "0xA1 (SUBACK)"] SubscriptionIdentifiersNotSupported = 0xA1, "subscriptionIdentifiersNotSupported", S;
  #[doc = "0xA2 (SUBACK)"] WildcardSubscriptionsNotSupported = 0xA2, "wildcardSubscriptionsNotSupported", S;
}

/// `code` as a hook returned it: the reason code for `packet`, or an error
/// naming what is wrong (reported by the caller as the hook's failure).
pub fn parse(code: &Either<f64, String>, packet: Packet) -> Result<u8, String> {
  let row = match code {
    Either::A(n) => CODES.iter().find(|(v, ..)| f64::from(*v) == *n),
    Either::B(s) => CODES.iter().find(|(_, name, _)| name == s),
  };
  let shown = match code {
    Either::A(n) => format!("{n}"),
    Either::B(s) => format!("{s:?}"),
  };
  match row {
    Some((v, _, packets)) if packets & packet.bit() != 0 => Ok(*v),
    Some((v, name, _)) => Err(format!(
      "code: {shown} (0x{v:02X} {name}) is not valid in a {} (valid: {})",
      packet.name(),
      valid(packet)
    )),
    None => Err(format!(
      "code: {shown} is not an MQTT 5 refusal code (valid in a {}: {})",
      packet.name(),
      valid(packet)
    )),
  }
}

fn valid(packet: Packet) -> String {
  CODES
    .iter()
    .filter(|(_, _, p)| p & packet.bit() != 0)
    .map(|(v, name, _)| format!("0x{v:02X} {name}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// The MQTT 3.1.1 CONNACK return code closest to an MQTT 5 refusal.
pub fn connack_v3(code: u8) -> u8 {
  match code {
    0x84 => 1,               // unacceptable protocol version
    0x85 => 2,               // identifier rejected
    0x86 => 4,               // bad user name or password
    0x87 | 0x8A | 0x8C => 5, // not authorized
    _ => 3,                  // server unavailable
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_and_numbers_are_checked_per_packet() {
    assert_eq!(
      parse(&Either::B("quotaExceeded".into()), Packet::Suback),
      Ok(0x97)
    );
    assert_eq!(parse(&Either::A(143.0), Packet::Suback), Ok(0x8F));
    assert!(parse(&Either::A(143.0), Packet::Puback).is_err());
    assert!(parse(&Either::A(0.0), Packet::Connack).is_err());
    assert!(parse(&Either::B("nope".into()), Packet::Connack).is_err());
    assert_eq!(
      parse(&Either::B("serverMoved".into()), Packet::Connack),
      Ok(0x9D)
    );
  }

  #[test]
  fn v3_codes() {
    assert_eq!(connack_v3(0x86), 4);
    assert_eq!(connack_v3(0x9C), 3);
  }
}
