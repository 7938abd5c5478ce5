//! MQTT 5 message properties across the boundary: which of a message's
//! properties hooks see, and reading the ones `server.publish()` is given.
//!
//! rmqtt keeps them in the message itself (`Publish::properties`, rmqtt-codec's
//! `PublishProperties`); a 3.1.1 publish has none. The JS values hooks get are
//! made by `Args::properties` in `hook_js.rs`.

use std::num::NonZeroU32;

use bytes::Bytes;
use bytestring::ByteString;
use napi::bindgen_prelude::*;
use napi::{JsValue, ValueType};
use napi_derive::napi;
use rmqtt::codec::v5::PublishProperties;

use crate::error::invalid_arg;
use crate::js_value::type_name;

/// The MQTT 5 properties of a message, as hooks see them. Only the
/// properties the message carries are present.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct MessageProperties {
  /// User properties as `[key, value]` pairs, in the order they were sent,
  /// duplicate keys kept.
  #[napi(ts_type = "Array<[string, string]>")]
  pub user_properties: Option<Vec<Vec<String>>>,
  pub response_topic: Option<String>,
  pub correlation_data: Option<Buffer>,
  pub content_type: Option<String>,
  /// `true`: the payload is UTF-8 text. Absent when the publisher sent 0 or
  /// nothing (the same thing in MQTT: unspecified bytes).
  #[napi(ts_type = "true")]
  pub payload_format_indicator: Option<bool>,
  /// Seconds the message has left before it expires: the interval the
  /// publisher set, less the time the message has waited in the broker,
  /// rounded up (a subscriber receives it rounded down).
  pub message_expiry_interval: Option<u32>,
  /// The Subscription Identifiers of the subscriber's matching
  /// subscriptions: in `onMessageDelivered`/`onMessageAcked` (and drops
  /// meant for a subscriber), when its subscriptions have them.
  pub subscription_identifiers: Option<Vec<u32>>,
}

/// The MQTT 5 properties `server.publish()` sends. MQTT 5.0 subscribers
/// receive them; 3.1.1 subscribers get the message without them.
#[napi(object, js_name = "PublishProperties", object_to_js = false)]
#[allow(dead_code)] // read field by field in `read`
pub struct PublishPropertiesOptions {
  /// `[key, value]` pairs, sent in this order; a key may repeat.
  #[napi(ts_type = "Array<[string, string]>")]
  pub user_properties: Option<Vec<Vec<String>>>,
  /// A topic name (no wildcards) for the response.
  pub response_topic: Option<String>,
  /// Up to 65,535 bytes.
  #[napi(ts_type = "Buffer | Uint8Array")]
  pub correlation_data: Option<Buffer>,
  pub content_type: Option<String>,
  /// `true`: the payload is UTF-8 text (checked); `false` is the same as absent.
  pub payload_format_indicator: Option<bool>,
  /// Seconds, 1 to 4294967295, after which subscribers no longer get the
  /// message (a retained one is removed). Absent: it never expires.
  pub message_expiry_interval: Option<u32>,
}

/// Whether a message carries any property hooks show (a Topic Alias is
/// part of one connection, not of the message). A 5.0 PUBLISH always has
/// a `PublishProperties`, mostly empty; this is checked for each message.
#[inline]
fn any(p: &PublishProperties) -> bool {
  !p.user_properties.is_empty()
    || p.response_topic.is_some()
    || p.correlation_data.is_some()
    || p.content_type.is_some()
    || p.is_utf8_payload
    || p.message_expiry_interval.is_some()
    || !p.subscription_ids.is_empty()
}

/// The properties hooks see of a message created at `create_time`
/// (milliseconds): `None`, with no allocation, when it has none. The
/// expiry interval is made the remaining one, as rmqtt computes it when
/// sending (`hook::message_expiry`), but rounded up.
#[inline]
pub fn of(
  p: Option<&PublishProperties>,
  create_time: Option<i64>,
) -> Option<Box<PublishProperties>> {
  let p = p.filter(|p| any(p))?;
  let mut p = Box::new(p.clone());
  p.topic_alias = None;
  if let (Some(interval), Some(created)) = (p.message_expiry_interval, create_time) {
    let waited = crate::fork::timestamp_millis()
      .saturating_sub(created)
      .max(0);
    // Rounded up: a message that waited a few milliseconds still shows the
    // publisher's value (the wire, rounding down, may say a second less).
    let left = ((i64::from(interval.get()) * 1000 - waited).max(0) + 999) / 1000;
    p.message_expiry_interval = NonZeroU32::new(left as u32);
    if p.message_expiry_interval.is_none() && !any(&p) {
      return None;
    }
  }
  Some(p)
}

/// Longest string or binary data MQTT can carry (a two-byte length).
const MAX_FIELD_BYTES: usize = 65_535;

const FIELDS: &str = "userProperties, responseTopic, correlationData, contentType, \
                      payloadFormatIndicator, messageExpiryInterval";

/// Reads `options.properties` of `server.publish()`. Errors name the field
/// (`properties.userProperties[2][0]: ...`).
pub fn read(value: &Unknown) -> Result<PublishProperties> {
  let object = expect_object(value, "properties")?;
  let mut out = PublishProperties::default();
  let keys = object.get_property_names()?;
  for i in 0..keys.get_array_length()? {
    let key: String = keys.get_element(i)?;
    let item: Unknown = object.get_named_property(&key)?;
    if item.get_type()? == ValueType::Undefined {
      continue;
    }
    let path = format!("properties.{key}");
    match key.as_str() {
      "userProperties" => out.user_properties = user_properties(&item, &path)?,
      "responseTopic" => {
        let topic = string(&item, &path)?;
        crate::publish::validate_topic(&topic)
          .map_err(|e| invalid_arg(format!("{path}: {}", e.trim_start_matches("topic: "))))?;
        out.response_topic = Some(topic.into());
      }
      "correlationData" => out.correlation_data = Some(binary(&item, &path)?),
      "contentType" => out.content_type = Some(string(&item, &path)?.into()),
      "payloadFormatIndicator" => {
        out.is_utf8_payload = match item.get_type()? {
          ValueType::Boolean => unsafe { item.cast::<bool>()? },
          other => {
            return Err(invalid_arg(format!(
              "{path}: must be a boolean, got {}",
              type_name(other)
            )))
          }
        };
      }
      "messageExpiryInterval" => out.message_expiry_interval = Some(expiry(&item, &path)?),
      "subscriptionIdentifiers" => {
        return Err(invalid_arg(format!(
          "{path}: set by the broker for each subscriber; a publish cannot carry them"
        )))
      }
      _ => {
        return Err(invalid_arg(format!(
          "{path}: unknown property; expected one of {FIELDS}"
        )))
      }
    }
  }
  Ok(out)
}

/// A payload said to be UTF-8 text must be [MQTT-3.3.2-4 lets a receiver check].
pub fn check_payload(p: &PublishProperties, payload: &[u8]) -> Result<()> {
  if p.is_utf8_payload && std::str::from_utf8(payload).is_err() {
    return Err(invalid_arg(
      "properties.payloadFormatIndicator: is true (UTF-8 text) but the payload is not valid UTF-8",
    ));
  }
  Ok(())
}

fn expect_object<'a>(value: &Unknown<'a>, path: &str) -> Result<Object<'a>> {
  match value.get_type()? {
    ValueType::Object if !value.is_array()? && !value.is_buffer()? && !value.is_typedarray()? => unsafe {
      value.cast()
    },
    ValueType::Object => Err(invalid_arg(format!(
      "{path}: expected an object, got an array"
    ))),
    other => Err(invalid_arg(format!(
      "{path}: expected an object, got {}",
      type_name(other)
    ))),
  }
}

/// A UTF-8 string MQTT can carry: at most 65,535 bytes, no U+0000 [MQTT-1.5.4-2].
fn string(value: &Unknown, path: &str) -> Result<String> {
  let s: String = match value.get_type()? {
    ValueType::String => unsafe { value.cast()? },
    other => {
      return Err(invalid_arg(format!(
        "{path}: must be a string, got {}",
        type_name(other)
      )))
    }
  };
  if s.len() > MAX_FIELD_BYTES {
    return Err(invalid_arg(format!(
      "{path}: is {} bytes long in UTF-8, the MQTT limit is {MAX_FIELD_BYTES}",
      s.len()
    )));
  }
  if s.contains('\0') {
    return Err(invalid_arg(format!(
      "{path}: must not contain the NUL character"
    )));
  }
  Ok(s)
}

fn binary(value: &Unknown, path: &str) -> Result<Bytes> {
  if value.get_type()? != ValueType::Object || !(value.is_buffer()? || value.is_typedarray()?) {
    return Err(invalid_arg(format!(
      "{path}: must be a Buffer or Uint8Array, got {}",
      type_name(value.get_type()?)
    )));
  }
  let bytes: Uint8Array = unsafe { value.cast() }.map_err(|_| {
    invalid_arg(format!(
      "{path}: must be a Buffer or Uint8Array, got another typed array"
    ))
  })?;
  if bytes.len() > MAX_FIELD_BYTES {
    return Err(invalid_arg(format!(
      "{path}: is {} bytes long, the MQTT limit is {MAX_FIELD_BYTES}",
      bytes.len()
    )));
  }
  Ok(Bytes::copy_from_slice(&bytes))
}

fn expiry(value: &Unknown, path: &str) -> Result<NonZeroU32> {
  let bad = |got: String| {
    invalid_arg(format!(
      "{path}: must be an integer from 1 to 4294967295 (seconds; omit it for no expiry), got {got}"
    ))
  };
  let n: f64 = match value.get_type()? {
    ValueType::Number => unsafe { value.cast()? },
    other => return Err(bad(type_name(other).into())),
  };
  if n.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&n) {
    return Err(bad(n.to_string()));
  }
  Ok(NonZeroU32::new(n as u32).unwrap_or(NonZeroU32::MIN))
}

fn user_properties(value: &Unknown, path: &str) -> Result<Vec<(ByteString, ByteString)>> {
  let pairs = array(value, path, "an array of [key, value] pairs")?;
  (0..pairs.len())
    .map(|i| {
      let pair: Unknown = pairs
        .get(i)?
        .unwrap_or_else(|| unreachable!("index below length"));
      let at = format!("{path}[{i}]");
      let pair = array(&pair, &at, "a [key, value] pair of strings")?;
      if pair.len() != 2 {
        return Err(invalid_arg(format!(
          "{at}: must be a [key, value] pair of strings, got {} elements",
          pair.len()
        )));
      }
      let part = |j: u32| -> Result<ByteString> {
        let v: Unknown = pair
          .get(j)?
          .unwrap_or_else(|| unreachable!("index below length"));
        Ok(string(&v, &format!("{at}[{j}]"))?.into())
      };
      Ok((part(0)?, part(1)?))
    })
    .collect()
}

fn array<'a>(value: &Unknown<'a>, path: &str, what: &str) -> Result<Array<'a>> {
  if value.get_type()? == ValueType::Object && value.is_array()? {
    return unsafe { value.cast() };
  }
  Err(invalid_arg(format!(
    "{path}: must be {what}, got {}",
    type_name(value.get_type()?)
  )))
}

/// Bytes the properties add to a PUBLISH, as a 5.0 subscriber receives it,
/// beyond the one byte of an empty property list (rmqtt-codec's own
/// `encoded_size` is private to it).
pub fn encoded_size(p: &PublishProperties) -> usize {
  let string = |s: &Option<ByteString>| s.as_ref().map_or(0, |s| 3 + s.len());
  let len = p.correlation_data.as_ref().map_or(0, |d| 3 + d.len())
    + p.message_expiry_interval.map_or(0, |_| 5)
    + string(&p.content_type)
    + string(&p.response_topic)
    + if p.is_utf8_payload { 2 } else { 0 }
    + p
      .user_properties
      .iter()
      .map(|(k, v)| 5 + k.len() + v.len())
      .sum::<usize>();
  // The property length is a variable byte integer: 1 byte up to 127.
  let prefix = match len {
    0..=127 => 1,
    128..=16_383 => 2,
    16_384..=2_097_151 => 3,
    _ => 4,
  };
  len + prefix - 1
}
