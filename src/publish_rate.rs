//! `maxPublishRate` of a listener: how fast each of its connections may
//! publish. A client past it is throttled, not disconnected: the broker
//! stops reading from its socket until it is back within the rate, so TCP
//! pushes back on it (rmqtt 0045-limits: `publish_rate.rs`). Its other
//! packets wait too; deliveries to it go on.

use napi_derive::napi;
use serde::Deserialize;

use crate::config::{integer, opt_number};
use crate::error::invalid_arg;

/// Inbound publish rate of each connection of a listener; give one or both.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(
  rename_all = "camelCase",
  deny_unknown_fields,
  expecting = "an object { messages?, bytes? }"
)]
pub struct PublishRateConfig {
  /// PUBLISH packets per second, 1-4294967295.
  #[serde(default, deserialize_with = "opt_number")]
  pub messages: Option<f64>,
  /// Topic and payload bytes per second, 1-9007199254740991.
  #[serde(default, deserialize_with = "opt_number")]
  pub bytes: Option<f64>,
}

/// Validated: (messages, bytes) per second, 0 for no limit.
pub fn parse(field: &str, c: &PublishRateConfig) -> napi::Result<(u32, u64)> {
  if c.messages.is_none() && c.bytes.is_none() {
    return Err(invalid_arg(format!(
      "{field}: give messages, bytes or both"
    )));
  }
  let messages = c
    .messages
    .map(|v| integer(&format!("{field}.messages"), v, 1, u32::MAX as u64))
    .transpose()?;
  let bytes = c
    .bytes
    .map(|v| integer(&format!("{field}.bytes"), v, 1, (1 << 53) - 1))
    .transpose()?;
  Ok((messages.unwrap_or(0) as u32, bytes.unwrap_or(0)))
}
