//! `server.stats()`: exact counts of one broker's traffic and state.
//!
//! Message counts are atomic counters of each broker's own, so two servers
//! in one process never share a count. The state (connections, sessions,
//! subscriptions, retained messages) is read from rmqtt when asked.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use napi_derive::napi;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::types::{Publish, QoS};

use crate::fork::{self, TrafficCounter, WireBytes};

/// Counted before the other handlers, which may stop the chain.
const PRIORITY: Priority = Priority::MAX;

/// One count per QoS level, in shards: each thread adds to its own
/// (`shard()`), so the broker's worker threads, which count every message
/// they receive and send, do not pull one cache line back and forth
/// between cores (one shared line was 2.8% of a QoS 0 ingest profile).
#[derive(Default)]
struct PerQos([Shard; SHARDS]);

const SHARDS: usize = 8;

/// A cache line (two, against the adjacent-line prefetcher) of its own.
#[derive(Default)]
#[repr(align(128))]
struct Shard([AtomicU64; 3]);

impl PerQos {
  fn add(&self, publish: &Publish) {
    self.0[shard()].0[qos_index(publish.qos)].fetch_add(1, Ordering::Relaxed);
  }

  fn get(&self) -> [f64; 3] {
    [0, 1, 2].map(|i| {
      let n: u64 = self.0.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum();
      n as f64
    })
  }
}

/// This thread's shard: its `ThreadId`'s number, which std hands out in
/// sequence, so a runtime's worker threads, made one after the other, get
/// shards of their own.
fn shard() -> usize {
  thread_local! {
    static SHARD: usize = {
      let mut number = ThreadNumber(0);
      std::thread::current().id().hash(&mut number);
      number.0 as usize % SHARDS
    };
  }
  SHARD.with(|s| *s)
}

/// Takes the number a `ThreadId` hashes (a `u64`).
struct ThreadNumber(u64);

impl Hasher for ThreadNumber {
  fn write(&mut self, bytes: &[u8]) {
    for b in bytes {
      self.0 = self.0.rotate_left(8) ^ u64::from(*b);
    }
  }

  fn write_u64(&mut self, n: u64) {
    self.0 = n;
  }

  fn finish(&self) -> u64 {
    self.0
  }
}

fn qos_index(qos: QoS) -> usize {
  match qos {
    QoS::AtMostOnce => 0,
    QoS::AtLeastOnce => 1,
    QoS::ExactlyOnce => 2,
  }
}

/// The counters one broker's hooks add to.
pub struct Counters {
  started: Instant,
  received: PerQos,
  sent: PerQos,
  dropped: PerQos,
  /// Bytes of MQTT packets, counted by every listener's connections.
  wire: Arc<WireBytes>,
  /// Times the store (Redis) stopped answering (`storage_redis.rs`).
  pub storage_outages: AtomicU64,
}

impl Counters {
  fn new() -> Self {
    Counters {
      started: Instant::now(),
      received: PerQos::default(),
      sent: PerQos::default(),
      dropped: PerQos::default(),
      wire: Arc::default(),
      storage_outages: AtomicU64::new(0),
    }
  }

  /// What the broker's listeners count their bytes in (`listener::bind`).
  pub fn wire_bytes(&self) -> &Arc<WireBytes> {
    &self.wire
  }
}

/// Starts counting a broker's traffic: messages received and sent are
/// counted where rmqtt handles them (rmqtt 0034-traffic-counter), drops
/// (rare) through the `message_dropped` hook.
pub async fn register(scx: &ServerContext) -> Arc<Counters> {
  let counters = Arc::new(Counters::new());
  if !fork::set_traffic_counter(scx, counters.clone()) {
    log::warn!("a traffic counter is already installed on this broker");
  }
  let r = scx.extends.hook_mgr().register();
  r.add_priority(
    Type::MessageDropped,
    PRIORITY,
    Box::new(Drops(counters.clone())),
  )
  .await;
  r.start().await;
  counters
}

impl TrafficCounter for Counters {
  fn received(&self, p: &Publish) {
    self.received.add(p);
  }

  fn sent(&self, p: &Publish) {
    self.sent.add(p);
  }
}

struct Drops(Arc<Counters>);

#[async_trait::async_trait]
impl Handler for Drops {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    if let Parameter::MessageDropped(_, _, p, _) = param {
      self.0.dropped.add(p);
    }
    (true, acc)
  }
}

/// Messages per QoS level.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct QosCounts {
  pub qos0: f64,
  pub qos1: f64,
  pub qos2: f64,
}

impl From<[f64; 3]> for QosCounts {
  fn from([qos0, qos1, qos2]: [f64; 3]) -> Self {
    QosCounts { qos0, qos1, qos2 }
  }
}

impl QosCounts {
  pub fn total(&self) -> f64 {
    self.qos0 + self.qos1 + self.qos2
  }

  pub fn each(&self) -> [(u8, f64); 3] {
    [(0, self.qos0), (1, self.qos1), (2, self.qos2)]
  }
}

/// What `server.stats()` returns: counts since `start()`, exact.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
  /// Clients connected now.
  pub connections: f64,
  /// Most clients connected at once since `start()`.
  pub connections_peak: f64,
  /// Sessions held: connected clients and persistent sessions of
  /// disconnected ones.
  pub sessions: f64,
  /// Subscriptions of all sessions (a filter subscribed by two clients
  /// counts twice).
  pub subscriptions: f64,
  /// Retained messages stored.
  pub retained_messages: f64,
  /// Payload bytes of the retained messages.
  pub retained_bytes: f64,
  /// PUBLISH packets received from clients, and wills, by QoS (a PUBLISH
  /// to a `$` topic, refused at once, counts in `messagesDropped` only).
  pub messages_received: QosCounts,
  /// Messages sent to subscribers (each subscriber counts), by QoS.
  pub messages_sent: QosCounts,
  /// Messages dropped (queue full, expired, refused), by QoS.
  pub messages_dropped: QosCounts,
  /// Bytes of the MQTT packets read from clients, every packet whole
  /// (CONNECT, PINGREQ and acks included); TLS and WebSocket framing not
  /// counted.
  pub bytes_received: f64,
  /// Bytes of the MQTT packets written to clients, counted the same way.
  pub bytes_sent: f64,
  /// Seconds since `start()`.
  pub uptime_seconds: f64,
  /// Times the store in Redis (`storage.redis`) stopped answering since
  /// `start()`; each outage counts once, however long.
  pub storage_outages: f64,
}

/// Reads the counts and the broker's state: counter reads, and the retained
/// messages' account (`retained_quota.rs`).
pub async fn snapshot(scx: &ServerContext, c: &Counters) -> ServerStats {
  // Installed at start, before anything can ask for stats.
  let (retained_messages, retained_bytes) = scx
    .extends
    .retain_quota
    .get()
    .and_then(|account| account.totals())
    .unwrap_or_default();
  let (retained_messages, retained_bytes) = (retained_messages as f64, retained_bytes as f64);
  let routes = scx.extends.router().await.routes().count();
  ServerStats {
    connections: scx.connections.count().max(0) as f64,
    connections_peak: scx.connections.max().max(0) as f64,
    sessions: scx.sessions.count().max(0) as f64,
    subscriptions: routes.max(0) as f64,
    retained_messages,
    retained_bytes,
    messages_received: c.received.get().into(),
    messages_sent: c.sent.get().into(),
    messages_dropped: c.dropped.get().into(),
    bytes_received: c.wire.received() as f64,
    bytes_sent: c.wire.sent() as f64,
    uptime_seconds: c.started.elapsed().as_secs_f64().floor(),
    storage_outages: c.storage_outages.load(Ordering::Relaxed) as f64,
  }
}
