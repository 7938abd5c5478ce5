//! Opt-in `$SYS` topics (`sysTopics: { intervalSeconds }`): the broker
//! publishes its stats, retained, under the names mosquitto uses, so
//! dashboards made for mosquitto read them unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use napi_derive::napi;
use rmqtt::context::ServerContext;
use serde::Deserialize;

use crate::publish::{Message, PublishOptions, Publisher};
use crate::stats::{self, Counters, ServerStats};

/// `sysTopics` of `start()`'s config.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct SysTopicsConfig {
  /// Seconds between two publications of the `$SYS` topics, 1-86400.
  /// Default 10 (mosquitto's `sys_interval`).
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub interval_seconds: Option<f64>,
}

const DEFAULT_INTERVAL: u64 = 10;

/// The interval of a `sysTopics` config, checked.
pub fn interval(config: &SysTopicsConfig) -> napi::Result<Duration> {
  let secs = match config.interval_seconds {
    None => DEFAULT_INTERVAL,
    Some(v) => crate::config::integer("sysTopics.intervalSeconds", v, 1, 86_400)?,
  };
  Ok(Duration::from_secs(secs))
}

/// Minutes of mosquitto's three load averages.
const LOAD_MINUTES: [(u32, &str); 3] = [(1, "1min"), (5, "5min"), (15, "15min")];

/// Per-minute rates averaged exponentially over 1, 5 and 15 minutes, as
/// mosquitto computes its `$SYS/broker/load/...`.
struct Load {
  topic: &'static str,
  last: f64,
  averages: [f64; 3],
}

impl Load {
  fn new(topic: &'static str) -> Self {
    Load {
      topic,
      last: 0.0,
      averages: [0.0; 3],
    }
  }

  fn update(&mut self, total: f64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let per_minute = (total - self.last) * 60.0 / secs;
    self.last = total;
    for (i, (minutes, _)) in LOAD_MINUTES.iter().enumerate() {
      let decay = (-secs / (60.0 * *minutes as f64)).exp();
      self.averages[i] = per_minute + decay * (self.averages[i] - per_minute);
    }
  }
}

/// Publishes the `$SYS` topics every `every` until the broker stops (the
/// task dies with its runtime).
pub fn spawn(
  runtime: &tokio::runtime::Handle,
  scx: ServerContext,
  counters: Arc<Counters>,
  publisher: Publisher,
  every: Duration,
) {
  runtime.spawn(async move {
    let mut loads = [
      Load::new("messages/received"),
      Load::new("messages/sent"),
      Load::new("bytes/received"),
      Load::new("bytes/sent"),
    ];
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
      ticks.tick().await;
      let s = stats::snapshot(&scx, &counters).await;
      let totals = [
        s.messages_received.total(),
        s.messages_sent.total(),
        s.bytes_received,
        s.bytes_sent,
      ];
      for (load, total) in loads.iter_mut().zip(totals) {
        load.update(total, every);
      }
      for (topic, value) in topics(&s, &loads) {
        let options = PublishOptions {
          retain: Some(true),
          ..Default::default()
        };
        let Ok(m) = Message::new(topic, Bytes::from(value), Some(options), None) else {
          continue;
        };
        // Not awaited: the publisher keeps the order, and a stopping
        // broker drops what is left.
        drop(publisher.publish(m));
      }
    }
  });
}

/// Every `$SYS` topic and its value.
fn topics(s: &ServerStats, loads: &[Load]) -> Vec<(String, String)> {
  let int = |v: f64| format!("{v}");
  let mut out = vec![
    (
      "version".to_string(),
      format!("embedded-mqtt-broker {}", env!("CARGO_PKG_VERSION")),
    ),
    ("uptime".into(), format!("{} seconds", s.uptime_seconds)),
    ("clients/connected".into(), int(s.connections)),
    ("clients/active".into(), int(s.connections)),
    ("clients/maximum".into(), int(s.connections_peak)),
    ("clients/total".into(), int(s.sessions)),
    (
      "clients/disconnected".into(),
      int((s.sessions - s.connections).max(0.0)),
    ),
    ("messages/received".into(), int(s.messages_received.total())),
    ("messages/sent".into(), int(s.messages_sent.total())),
    (
      "publish/messages/received".into(),
      int(s.messages_received.total()),
    ),
    ("publish/messages/sent".into(), int(s.messages_sent.total())),
    (
      "publish/messages/dropped".into(),
      int(s.messages_dropped.total()),
    ),
    ("bytes/received".into(), int(s.bytes_received)),
    ("bytes/sent".into(), int(s.bytes_sent)),
    ("subscriptions/count".into(), int(s.subscriptions)),
    ("retained messages/count".into(), int(s.retained_messages)),
  ];
  for load in loads {
    for (i, (_, name)) in LOAD_MINUTES.iter().enumerate() {
      out.push((
        format!("load/{}/{name}", load.topic),
        format!("{:.2}", load.averages[i]),
      ));
    }
  }
  out
    .into_iter()
    .map(|(t, v)| (format!("$SYS/broker/{t}"), v))
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_steady_rate_converges_to_its_per_minute_value() {
    let mut load = Load::new("messages/received");
    // 10 messages a second for 30 minutes, seen every 10 s.
    for tick in 1..=180 {
      load.update(tick as f64 * 100.0, Duration::from_secs(10));
    }
    for avg in load.averages {
      assert!((avg - 600.0).abs() < 600.0 * 0.15, "{avg}");
    }
    assert!((load.averages[0] - 600.0).abs() < 0.01);
  }
}
