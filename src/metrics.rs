//! `server.metrics()`: the stats in Prometheus' text exposition format
//! (version 0.0.4), with the usual naming: `_total` counters, base units
//! (`_bytes`, `_seconds`), one `qos` label on the message counts.

use std::fmt::Write;

use crate::stats::{QosCounts, ServerStats};

/// The stats as a Prometheus scrape body.
pub fn render(s: &ServerStats) -> String {
  let mut out = String::with_capacity(2048);
  let gauges = [
    ("mqtt_connections", "Clients connected now.", s.connections),
    (
      "mqtt_connections_peak",
      "Most clients connected at once since the broker started.",
      s.connections_peak,
    ),
    (
      "mqtt_sessions",
      "Sessions held, of connected clients and of disconnected persistent ones.",
      s.sessions,
    ),
    (
      "mqtt_subscriptions",
      "Subscriptions of all sessions.",
      s.subscriptions,
    ),
    (
      "mqtt_retained_messages",
      "Retained messages stored.",
      s.retained_messages,
    ),
    (
      "mqtt_retained_bytes",
      "Payload bytes of the retained messages.",
      s.retained_bytes,
    ),
    (
      "mqtt_uptime_seconds",
      "Seconds since the broker started.",
      s.uptime_seconds,
    ),
  ];
  for (name, help, value) in gauges {
    metric(&mut out, name, help, "gauge", &[("", value)]);
  }
  let per_qos = [
    (
      "mqtt_messages_received_total",
      "PUBLISH packets received from clients, wills included.",
      &s.messages_received,
    ),
    (
      "mqtt_messages_sent_total",
      "Messages sent to subscribers, one per subscriber.",
      &s.messages_sent,
    ),
    (
      "mqtt_messages_dropped_total",
      "Messages dropped: queue full, expired or refused.",
      &s.messages_dropped,
    ),
  ];
  for (name, help, counts) in per_qos {
    let labelled = labelled(counts);
    let samples: Vec<(&str, f64)> = labelled.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(&mut out, name, help, "counter", &samples);
  }
  let bytes = [
    (
      "mqtt_received_bytes_total",
      "Bytes of the MQTT packets read from clients, headers included.",
      s.bytes_received,
    ),
    (
      "mqtt_sent_bytes_total",
      "Bytes of the MQTT packets written to clients, headers included.",
      s.bytes_sent,
    ),
  ];
  for (name, help, value) in bytes {
    metric(&mut out, name, help, "counter", &[("", value)]);
  }
  out
}

fn labelled(counts: &QosCounts) -> Vec<(String, f64)> {
  counts
    .each()
    .iter()
    .map(|(qos, v)| (format!("{{qos=\"{qos}\"}}"), *v))
    .collect()
}

/// One metric family: HELP, TYPE and its samples (`labels` is `{...}` or empty).
fn metric(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(&str, f64)]) {
  let _ = writeln!(out, "# HELP {name} {help}");
  let _ = writeln!(out, "# TYPE {name} {kind}");
  for (labels, value) in samples {
    let _ = writeln!(out, "{name}{labels} {value}");
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn every_family_has_help_type_and_integral_samples() {
    let s = ServerStats {
      messages_received: [1.0, 2.0, 3.0].into(),
      connections: 4.0,
      ..Default::default()
    };
    let text = render(&s);
    assert!(
      text.contains("mqtt_messages_received_total{qos=\"1\"} 2\n"),
      "{text}"
    );
    assert!(text.contains("mqtt_connections 4\n"), "{text}");
    let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
    assert_eq!(families, helps);
    assert_eq!(families, 12);
  }
}
