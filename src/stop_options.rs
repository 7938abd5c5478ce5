//! The options of `stop()` and `close()`.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::{JsValue, ValueType};
use napi_derive::napi;

use crate::config;
use crate::drain;
use crate::error::invalid_arg;
use crate::js_value;

/// Longest `drainTimeoutMs` accepted: an hour (a larger value is a mistake
/// rather than a wish to wait).
const MAX_DRAIN_MS: u64 = 3_600_000;

/// Options for `stop()` and `close()`.
#[napi(object)]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct StopOptions {
  /// How long, in milliseconds, connected clients get to receive (and
  /// acknowledge, for QoS 1 and 2) the messages routed to them before the
  /// stop, once no new connection is accepted; then every client is
  /// disconnected. 0 disconnects at once. Default 3000. With `storage`,
  /// what is still queued for a persistent session then is kept in the
  /// store, and `stop()` waits for the store's writes as long as they move.
  #[serde(default, deserialize_with = "config::opt_number")]
  pub drain_timeout_ms: Option<f64>,
}

/// Reads `options` (on the JS thread) into the drain's timeout; errors name
/// the field.
pub fn read(options: Option<Unknown>) -> Result<Duration> {
  let value = match options {
    None => serde_json::Value::Null,
    Some(o) => match o.get_type()? {
      ValueType::Object if o.is_array()? => {
        return Err(invalid_arg("options: expected an object, got an array"))
      }
      ValueType::Object | ValueType::Undefined | ValueType::Null => {
        js_value::to_json(&o, "options")?
      }
      other => {
        return Err(invalid_arg(format!(
          "options: expected an object, got {}",
          js_value::type_name(other)
        )))
      }
    },
  };
  let parsed: StopOptions = match value {
    serde_json::Value::Null => StopOptions::default(),
    v => config::from_json(v, "options")?,
  };
  Ok(match parsed.drain_timeout_ms {
    None => drain::DEFAULT_TIMEOUT,
    Some(ms) => Duration::from_millis(config::integer(
      "options.drainTimeoutMs",
      ms,
      0,
      MAX_DRAIN_MS,
    )?),
  })
}
