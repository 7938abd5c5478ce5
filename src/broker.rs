//! One running rmqtt broker: its own tokio runtime, its context, its listeners.
//!
//! rmqtt has no stop API. Each broker therefore gets a dedicated runtime, and
//! stopping shuts that runtime down: every task it owns (accept loops and every
//! client connection) is dropped, which closes the sockets. Nothing is shared
//! between brokers, so many can run in one process.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::plugin::DynPluginResult;
use rmqtt::server::MqttServer as RmqttServer;
use rmqtt::types::Message;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backpressure::{self, FlowControl};
use crate::config::BrokerSpec;
use crate::conn_log;
use crate::fork;
use crate::hook_bridge::Attachment;
use crate::limits;
use crate::listener::{self, ListenerInfo};
use crate::memory;
use crate::policy::Policy;
use crate::publish::Publisher;
use crate::shared_subscription::RoundRobin;
use crate::stats::Counters;
use crate::system_error::StartError;
use crate::warning::Warning;

/// Name under which the retained-message plugin is registered.
const RETAINER: &str = "rmqtt-retainer";
/// How long `stop()` lets clients close gracefully before cutting them off.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the graceful part of `stop()` (hooks, accept loops, clients,
/// plugins) may take in all; a step still running then is stuck.
const GRACEFUL_BOUND: Duration = Duration::from_secs(3);
/// How long the runtime gets to drop its tasks once told to shut down.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);
/// Longest `stop()` takes in all, besides its drain: what has not finished by then (a broker
/// stuck in a deadlock) is abandoned and reported instead of waited for.
const STOP_BOUND: Duration = Duration::from_secs(6);

pub struct Broker {
  runtime: Runtime,
  /// The accept loops; aborting it closes the listening sockets.
  serve: JoinHandle<()>,
  scx: ServerContext,
  listeners: Vec<ListenerInfo>,
  hooks: Arc<Attachment>,
  policy: Arc<Policy>,
  publisher: Publisher,
  /// The largest `maxPacketSize` of the listeners.
  max_packet_size: u32,
  stats: Arc<Counters>,
  flow: FlowControl,
  /// The store held for this broker (`storage`), released once it is down.
  store_lock: Option<Box<crate::storage::Lock>>,
  /// Whether retained messages are stored (`storage`): written out at stop.
  stored: bool,
  /// The Redis key prefix held for this broker (`redis_lock.rs`).
  redis_lock: Option<Box<crate::redis_lock::RedisLock>>,
}

/// What a caller needs to act on a running broker without holding it.
#[derive(Clone)]
pub struct BrokerHandle {
  pub runtime: Handle,
  pub scx: ServerContext,
  pub hooks: Arc<Attachment>,
  pub policy: Arc<Policy>,
  pub publisher: Publisher,
  pub stats: Arc<Counters>,
  /// The flow control in-process subscribers take part in.
  pub flow: FlowControl,
}

impl Broker {
  /// Builds the context, binds every listener, and starts serving. Resolves
  /// once all listeners are bound, or fails (naming the listener) with
  /// nothing left running.
  pub async fn start(mut spec: BrokerSpec, hooks: Arc<Attachment>) -> Result<Broker, StartError> {
    let policy = Policy::new(
      spec.acl.take(),
      spec.acl_default,
      spec.users.take(),
      spec.jwt.take(),
      hooks.clone(),
    );
    let threads = spec.worker_threads;
    let max_packet_size = spec
      .listeners
      .iter()
      .map(listener::max_packet_size)
      .max()
      .unwrap_or(listener::DEFAULT_MAX_PACKET_SIZE);
    let sys_topics = spec.sys_topics;
    let store_lock = spec
      .storage
      .as_ref()
      .map(|s| s.lock())
      .transpose()?
      .flatten()
      .map(Box::new);
    let stored = spec.storage.is_some();
    let mut redis_lock = match &spec.storage {
      // Redis answers, and no other running broker uses the prefix.
      Some(crate::storage::Store::Redis(redis)) => {
        redis.reachable().await?;
        Some(Box::new(
          crate::redis_lock::RedisLock::acquire(redis).await?,
        ))
      }
      _ => None,
    };
    let reclaim = memory::Reclaim::default();
    let on_park = reclaim.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
      .worker_threads(threads)
      .thread_name("mqtt-broker")
      .on_thread_park(move || on_park.on_park())
      .enable_all()
      .build()
      .map_err(|e| format!("cannot create the broker runtime: {e}"))?;
    if let Some(lock) = &mut redis_lock {
      lock.keep(runtime.handle());
    }

    let (ready_tx, ready_rx) = oneshot::channel();
    let attachment = hooks.clone();
    let native = policy.clone();
    let serve = runtime.spawn(async move {
      match setup(spec, attachment, native, reclaim).await {
        Ok((server, scx, infos, stats, flow)) => {
          // The storage plugin restores persistent sessions and their routes
          // here: start() resolves after it, so a message published then
          // reaches them (the first ones were dropped when it resolved at bind).
          scx.extends.hook_mgr().before_startup().await;
          let _ = ready_tx.send(Ok((scx, infos, stats, flow)));
          if let Err(e) = fork::serve(server).await {
            log::error!("broker stopped with an error: {e}");
          }
        }
        Err(e) => {
          let _ = ready_tx.send(Err(e));
        }
      }
    });

    match ready_rx.await {
      Ok(Ok((scx, listeners, stats, flow))) => {
        let publisher = Publisher::spawn(runtime.handle(), scx.clone());
        if let Some(every) = sys_topics {
          crate::sys_topics::spawn(
            runtime.handle(),
            scx.clone(),
            stats.clone(),
            publisher.clone(),
            every,
          );
        }
        Ok(Broker {
          publisher,
          runtime,
          serve,
          scx,
          listeners,
          hooks,
          policy,
          max_packet_size,
          stats,
          flow,
          store_lock,
          stored,
          redis_lock,
        })
      }
      Ok(Err(e)) => {
        runtime.shutdown_background();
        release(redis_lock).await;
        Err(e)
      }
      Err(_) => {
        // The setup task panicked: tokio caught it, the sender was dropped.
        runtime.shutdown_background();
        release(redis_lock).await;
        Err("the broker failed to start (internal error, see the log)".into())
      }
    }
  }

  pub fn listeners(&self) -> &[ListenerInfo] {
    &self.listeners
  }

  pub fn max_packet_size(&self) -> u32 {
    self.max_packet_size
  }

  pub fn handle(&self) -> BrokerHandle {
    BrokerHandle {
      runtime: self.runtime.handle().clone(),
      scx: self.scx.clone(),
      hooks: self.hooks.clone(),
      policy: self.policy.clone(),
      publisher: self.publisher.clone(),
      stats: self.stats.clone(),
      flow: self.flow.clone(),
    }
  }

  /// Closes every listener and client connection and frees the broker.
  /// Connected clients first get what was routed to them before the call,
  /// for at most `drain`. Takes at most `drain` + `STOP_BOUND`, plus the time
  /// the session store goes on writing past that while it moves
  /// (`session_store::close`): a step that
  /// does not finish in time (a deadlock inside rmqtt) is abandoned, with
  /// its threads and whatever they hold, and reported in the returned
  /// warning.
  pub async fn shutdown(self, drain: Duration) -> Option<Warning> {
    let Broker {
      runtime,
      serve,
      scx,
      hooks,
      store_lock,
      stored,
      redis_lock,
      ..
    } = self;
    let began = tokio::time::Instant::now();
    let graceful_end = began + drain + GRACEFUL_BOUND;
    let mut stuck = Vec::new();
    let mut step = |what: &'static str, done: bool| {
      if !done {
        stuck.push(what);
      }
    };
    // First, so no event of a broker going down reaches JavaScript and no
    // session waits on a decision hook: one waiting would hold the drain
    // (its session answers the drain's barrier only after the decision).
    let closed = tokio::time::timeout_at(graceful_end, hooks.close()).await;
    step("hook removal", closed.is_ok());
    // No new connections, then the connected clients drain; the drain's
    // own deadline bounds it.
    serve.abort();
    let aborted = tokio::time::timeout_at(graceful_end, serve).await;
    step("accept loops", aborted.is_ok());
    if !drain.is_zero() {
      let deadline = began + drain;
      let draining = runtime.spawn({
        let scx = scx.clone();
        async move { crate::drain::drain(&scx, deadline).await }
      });
      match tokio::time::timeout_at(graceful_end, draining).await {
        Ok(Ok(outcome)) if outcome.left > 0 => log::warn!(
          "stop: {} message(s) not delivered or not acknowledged within drainTimeoutMs ({} ms)",
          outcome.left,
          drain.as_millis()
        ),
        Ok(Ok(_)) => {}
        _ => step("drain", false),
      }
    }
    // Every client is closed the MQTT way (5.0 clients get DISCONNECT
    // "server shutting down") rather than reset.
    let graceful = runtime.spawn(disconnect_all(scx.clone()));
    let disconnected = tokio::time::timeout_at(graceful_end, graceful).await;
    step("client disconnects", disconnected.is_ok());
    // The retainer plugin holds the context too (and every retained
    // message): replacing its registration by a never-started stub drops it.
    let plugins = scx.clone();
    let unplug = runtime.spawn(async move {
      // Writes still queued for the store (disk or Redis) are written out first
      // (rmqtt-retainer 0001-batch-order-and-flush); the in-memory one only
      // logs that it cannot be stopped.
      if stored {
        let _ = plugins.plugins.stop(RETAINER).await;
      }
      // Its store too: one on disk is closed before the runtime shuts down,
      // which otherwise waits for the store's blocking thread.
      drop(fork::take_retain(&plugins));
      let stub =
        || -> DynPluginResult { Box::pin(async { Err(anyhow::anyhow!("broker stopped")) }) };
      let _ = plugins.plugins.register(RETAINER, false, false, stub).await;
    });
    let unplugged = tokio::time::timeout_at(graceful_end, unplug).await;
    // Sealed only when its plugin is known closed: a seal of files still
    // being written would refuse the next start().
    let mut store_closed = matches!(unplugged, Ok(Ok(())));
    step("retained store", unplugged.is_ok());
    // The store keeps the sessions too (`session_store.rs`).
    if stored {
      // Past `graceful_end` while the store is still writing (and moving).
      let closed = crate::session_store::close(runtime.handle(), &scx, graceful_end).await;
      store_closed &= closed;
      step("session store", closed);
    }
    // The teardown keeps its share of the bound after a store that wrote
    // past the graceful part.
    let teardown_end =
      (began + drain + STOP_BOUND).max(tokio::time::Instant::now() + (STOP_BOUND - GRACEFUL_BOUND));
    // A runtime must not be dropped from async code: shut it down, then
    // release the broker's state, on a thread of its own, so that one stuck
    // for good is left behind without holding a thread of Node's runtime.
    let (done_tx, done_rx) = oneshot::channel();
    let teardown = std::thread::Builder::new()
      .name("mqtt-broker-stop".into())
      .spawn(move || {
        runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
        release_sessions(&scx);
        drop(scx);
        if let (Some(lock), true) = (&store_lock, store_closed) {
          lock.seal();
        }
        // Only now: the stores are closed, another broker may open them.
        drop(store_lock);
        memory::trim();
        let _ = done_tx.send(());
      });
    let torn_down = match teardown {
      Ok(_) => matches!(
        tokio::time::timeout_at(teardown_end, done_rx).await,
        Ok(Ok(()))
      ),
      Err(e) => {
        log::warn!("cannot start the thread that frees the broker: {e}");
        false
      }
    };
    step("runtime shutdown", torn_down);
    // Only now: nothing of this broker writes to Redis any more.
    release(redis_lock).await;
    if stuck.is_empty() {
      return None;
    }
    let message = format!(
      "stop: the broker did not shut down in time (stuck: {}); it was abandoned after {:.1} s: \
       its threads and memory stay until the process exits, and its ports may stay bound",
      stuck.join(", "),
      began.elapsed().as_secs_f64()
    );
    log::warn!("{message}");
    Some(Warning::new("MQTT_SERVER_STOP_ABANDONED", message))
  }
}

async fn release(lock: Option<Box<crate::redis_lock::RedisLock>>) {
  if let Some(lock) = lock {
    lock.release().await;
  }
}

/// Asks every connected session to close and waits (bounded) until they
/// have, and until the handshakes under way have ended: a CONNECT whose
/// pending authentication was denied then gets its refusal CONNACK rather
/// than a reset.
async fn disconnect_all(scx: ServerContext) {
  for entry in scx.extends.shared().await.iter() {
    if let Some(tx) = entry.tx() {
      // MQTT 5 clients get a DISCONNECT with 0x8B (vendor/rmqtt patch).
      let _ = tx.unbounded_send(Message::Closed(fork::server_shutting_down()));
    }
  }
  let deadline = tokio::time::Instant::now() + DISCONNECT_TIMEOUT;
  let busy = || scx.connections.count() > 0 || scx.handshakings.count() > 0;
  while busy() && tokio::time::Instant::now() < deadline {
    tokio::time::sleep(Duration::from_millis(2)).await;
  }
}

/// rmqtt's shared state and router hold clones of the context, a cycle that
/// would keep every session (and its queued messages) alive forever. With the
/// runtime gone nothing uses them any more: swap them for empty ones so they
/// are freed. Dropping a session spawns a cleanup task, so this runs inside a
/// throwaway runtime that is discarded without running those tasks (their
/// work died with the broker).
fn release_sessions(scx: &ServerContext) {
  let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
    return;
  };
  {
    let _in_runtime = rt.enter();
    drop(fork::take_shared(scx));
    drop(fork::take_router(scx));
    drop(fork::take_retain(scx));
  }
  rt.shutdown_background();
}

type Ready = (
  RmqttServer,
  ServerContext,
  Vec<ListenerInfo>,
  Arc<Counters>,
  FlowControl,
);

async fn setup(
  spec: BrokerSpec,
  hooks: Arc<Attachment>,
  policy: Arc<Policy>,
  reclaim: memory::Reclaim,
) -> Result<Ready, StartError> {
  let mut builder = ServerContext::new()
    // rmqtt's busy check refuses CONNECTs while the host's CPU load is high;
    // an embedded broker shares its machine with the application, so a busy
    // host must not lock clients out.
    .busy_check_enable(false)
    .circuit_breaker_config(crate::storage::circuit_breaker());
  if let Some(dir) = &spec.plugins_config_dir {
    builder = builder.plugins_config_dir(dir.clone());
  }
  let mut configs = crate::storage::retainer_plugin_config(spec.storage.as_ref(), RETAINER);
  if let Some(store) = &spec.storage {
    configs.extend(crate::session_store::plugin_configs(
      store,
      spec.storage_sync,
    ));
  }
  builder = builder.plugins_config_map(configs);
  let scx = builder.build().await;

  // The two stores open side by side: each reads its database (sled: on
  // blocking threads), and the retainer rebuilds its index meanwhile.
  let sessions = spec.storage.is_some().then(|| {
    let scx = scx.clone();
    tokio::spawn(async move { crate::session_store::register(&scx).await })
  });
  let retainer = rmqtt_retainer::register_named(&scx, RETAINER, true, false)
    .await
    .map_err(|e| format!("cannot start the retained-message store: {e}"));
  // Awaited even when the retainer failed: no store is left opening.
  let sessions = match sessions {
    Some(task) => task
      .await
      .unwrap_or_else(|e| Err(format!("cannot open the session store: {e}"))),
    None => Ok(()),
  };
  retainer?;
  sessions?;
  crate::retained_quota::register(&scx, spec.retained_limits).await;
  *scx.extends.shared_subscription_mut().await = Box::new(RoundRobin::default());
  let flow = backpressure::register(&scx).await;
  let stats = crate::stats::register(&scx).await;
  if let Some(crate::storage::Store::Redis(redis)) = &spec.storage {
    redis.watch(stats.clone());
  }
  conn_log::register(&scx).await;
  limits::register(&scx, &spec.listeners);
  hooks.sync(&scx, None).await;
  policy.register(&scx).await;
  tokio::spawn(memory::release_after_disconnects(scx.clone(), reclaim));

  let mut server = RmqttServer::new(scx.clone());
  let mut infos = Vec::with_capacity(spec.listeners.len());
  for (id, l) in spec.listeners.iter().enumerate() {
    let (bound, info) = listener::bind(l, stats.wire_bytes())?;
    // Keyed by position, not port: several listeners may ask for port 0.
    server = server.listener_by_id(bound, id as u16);
    infos.push(info);
  }
  Ok((server.build(), scx, infos, stats, flow))
}

#[cfg(test)]
mod tests {
  use std::time::Instant;

  use super::*;
  use crate::hooks::Hooks;

  async fn broker() -> Broker {
    let config = serde_json::json!({
      "workerThreads": 1,
      "listeners": [{ "protocol": "tcp", "port": 0, "address": "127.0.0.1" }],
    });
    let spec = crate::config::parse(config).await.expect("config");
    let hooks = Attachment::new(&Arc::new(Hooks::default()));
    Broker::start(spec, hooks).await.expect("start")
  }

  #[tokio::test]
  async fn a_broker_that_is_not_stuck_stops_without_a_warning() {
    let warning = broker().await.shutdown(Duration::ZERO).await;
    assert!(warning.is_none(), "{warning:?}");
  }

  /// What a deadlock inside rmqtt looks like from outside: the broker's only
  /// worker thread never comes back. `stop()` must still end, in bounded
  /// time, and say what it left behind.
  #[tokio::test]
  async fn a_stuck_broker_is_abandoned_within_the_bound_and_reported() {
    let broker = broker().await;
    let (blocked_tx, blocked_rx) = oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    broker.runtime.spawn(async move {
      let _ = blocked_tx.send(());
      // Blocks the worker thread itself, as a deadlocked lock would.
      let _ = release_rx.recv_timeout(Duration::from_secs(60));
    });
    blocked_rx.await.expect("the worker took the blocking task");

    let began = Instant::now();
    let warning = broker
      .shutdown(Duration::ZERO)
      .await
      .expect("a stuck broker is reported");
    let took = began.elapsed();
    let _ = release_tx.send(());

    assert!(
      took < STOP_BOUND + Duration::from_secs(4),
      "stop took {took:?}, bound {STOP_BOUND:?}"
    );
    assert_eq!(warning.code, "MQTT_SERVER_STOP_ABANDONED");
    assert!(
      warning.message.contains("client disconnects"),
      "{}",
      warning.message
    );
  }
}
