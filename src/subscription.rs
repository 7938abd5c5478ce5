//! In-process subscriptions: `server.subscribe()` and `server.messages()`.
//!
//! Each subscription is a real subscriber inside rmqtt: a session of its own
//! (no connection), in rmqtt's shared state under a client id that holds a
//! NUL character, which no network client can use (rmqtt-codec refuses
//! U+0000 in a CONNECT [MQTT-1.5.4-2]), and in the router like any client's
//! subscription. So wildcards, `$share/group/...` (one member of the group
//! among network clients), retained messages and routing all behave as for
//! a client. Its session channel is read by a task of its own, which hands
//! messages to JavaScript in batches (`subscription_queue.rs`).
//!
//! It takes part in the flow control (`backpressure.rs`): a message counts
//! as pending until its handler has returned (or the promise it returned has
//! settled), so publishers are held while JavaScript falls behind and QoS 1
//! and 2 are not dropped. QoS 0 beyond `maxQueued` pending is dropped,
//! counted (`subscription.dropped`) and reported through `onMessageDropped`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytestring::ByteString;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rmqtt::codec::v5::{Connect, RetainHandling, SubscriptionOptions as SubscriptionOptionsV5};
use rmqtt::context::ServerContext;
use rmqtt::session::Session;
use rmqtt::types::{
  ClientId, ConnectInfo, From, Id, Message, QoS, Reason, SessionSubs, SessionTx, Subscribe,
  Unsubscribe,
};

use crate::broker::BrokerHandle;
use crate::error::{failure, invalid_arg};
use crate::hook_js::Msg;
use crate::hooks::Hooks;
use crate::js_value;
use crate::subscription_queue::Delivery;

/// QoS 0 messages pending to one subscription (queued for JavaScript or in
/// a handler's promise) beyond which further ones are dropped. Above
/// `HIGH_WATER`: publishers are held before QoS 0 is dropped, so only a
/// handler that stalls loses any.
const DEFAULT_MAX_QUEUED: u32 = 16_384;
/// Pending messages of any QoS to a subscription whose handler has not
/// finished one for a second (the flow control then stops holding its
/// publishers) beyond which they are dropped and reported: memory stays
/// bounded even under a handler that never returns.
const STOPPED_BOUND: usize = 100_000;
/// Messages pending to a subscription from which its publishers are held.
/// Larger than a client's 64 (`backpressure::HIGH_WATER`): each wake-up of
/// the JS thread takes what is queued, and a small window made the batches,
/// and the throughput, small. 16 QoS 0 publishers into one subscription, on
/// a busy 2-core machine: 58,000 msgs/s at 64; at 1024 the machine was 11-16%
/// idle (publishers waiting for the JS thread), at 4096 5-7% and ~15%
/// faster; 16,384 was no faster.
const HIGH_WATER: usize = 4_096;
/// The client id of an in-process subscription, before its number: a NUL
/// makes it one no CONNECT can carry.
const INTERNAL_PREFIX: &str = "\0subscription/";
/// Longest topic filter the MQTT wire format can carry.
const MAX_FILTER_BYTES: usize = 65_535;

/// Options of `server.subscribe()` and `server.messages()`.
#[napi(object, object_to_js = false)]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct SubscribeOptions {
  /// Highest QoS delivered (as a client's subscription QoS); a message
  /// published with a higher one is delivered at this one. Default
  /// `QoS.ExactlyOnce`: every message keeps its QoS.
  #[napi(ts_type = "QoS")]
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub qos: Option<f64>,
  /// `true`: messages published by this server (`server.publish()`) are
  /// not delivered to this subscription. Default `false`.
  pub no_local: Option<bool>,
  /// MQTT 5's Retain Handling: 0 (default) and 1 send the retained
  /// messages matching the filter on subscribe (each `subscribe()` is a new
  /// subscription), 2 sends none. None are sent to a `$share/` filter.
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub retain_handling: Option<f64>,
  /// QoS 0 messages that may wait for the handler (queued, or in the
  /// promise it returned) before further ones are dropped and counted.
  /// Default 16384. Client publishers are held from ¾ of it (at most
  /// 4096); QoS 1 and 2 are never dropped this way.
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub max_queued: Option<f64>,
}

/// What `SubscribeOptions` comes to.
struct Settings {
  qos: QoS,
  no_local: bool,
  retained: bool,
  max_queued: usize,
}

fn settings(o: SubscribeOptions) -> std::result::Result<Settings, String> {
  let qos = match o.qos {
    Some(0.0) => QoS::AtMostOnce,
    Some(1.0) => QoS::AtLeastOnce,
    None | Some(2.0) => QoS::ExactlyOnce,
    Some(q) => {
      return Err(format!(
        "options.qos: must be 0, 1 or 2 (a QoS value), got {q}"
      ))
    }
  };
  let retained = match o.retain_handling {
    None | Some(0.0) | Some(1.0) => true,
    Some(2.0) => false,
    Some(r) => {
      return Err(format!(
        "options.retainHandling: must be 0, 1 or 2, got {r}"
      ))
    }
  };
  let max_queued = match o.max_queued {
    None => DEFAULT_MAX_QUEUED as usize,
    Some(n) if n.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&n) => n as usize,
    Some(n) => {
      return Err(format!(
        "options.maxQueued: must be an integer from 1 to 4294967295, got {n}"
      ))
    }
  };
  Ok(Settings {
    qos,
    no_local: o.no_local.unwrap_or(false),
    retained,
    max_queued,
  })
}

/// A topic filter a client could subscribe to, `$share/group/filter`
/// included; errors name the argument.
pub fn validate_filter(filter: &str) -> std::result::Result<(), String> {
  if filter.is_empty() {
    return Err("filter: must not be empty".into());
  }
  if filter.len() > MAX_FILTER_BYTES {
    return Err(format!(
      "filter: is {} bytes long, the MQTT limit is {MAX_FILTER_BYTES}",
      filter.len()
    ));
  }
  if filter.contains('\0') {
    return Err("filter: must not contain the NUL character".into());
  }
  let mut rest = filter;
  if let Some(shared) = filter.strip_prefix("$share/") {
    let (group, f) = shared.split_once('/').unwrap_or((shared, ""));
    if group.is_empty() || group.contains(['+', '#']) {
      return Err(format!(
        "filter: \"{filter}\": a $share/ filter needs a group name without wildcards: $share/group/filter"
      ));
    }
    if f.is_empty() {
      return Err(format!(
        "filter: \"{filter}\": a $share/ filter needs a filter after the group: $share/group/filter"
      ));
    }
    rest = f;
  }
  let levels: Vec<&str> = rest.split('/').collect();
  for (i, level) in levels.iter().enumerate() {
    let bad = (level.contains('#') && (*level != "#" || i + 1 != levels.len()))
      || (level.contains('+') && *level != "+");
    if bad {
      return Err(format!(
        "filter: \"{filter}\": a wildcard must be a whole level, and # the last one"
      ));
    }
  }
  Ok(())
}

/// A subscription from `server.subscribe()`. It ends with `unsubscribe()`
/// or when the server stops.
#[napi]
pub struct Subscription {
  active: Arc<Active>,
}

/// A subscription while its broker runs.
struct Active {
  filter: String,
  id: Id,
  delivery: Arc<Delivery>,
  handle: BrokerHandle,
  /// Its session channel: `unsubscribe()` closes it.
  tx: SessionTx,
  unsubscribed: AtomicBool,
}

#[napi]
impl Subscription {
  /// The topic filter, as given.
  #[napi(getter)]
  pub fn filter(&self) -> String {
    self.active.filter.clone()
  }

  /// QoS 0 messages dropped because `maxQueued` were waiting for the handler.
  #[napi(getter)]
  pub fn dropped(&self) -> f64 {
    self.active.delivery.dropped() as f64
  }

  /// Whether messages are still delivered: false after `unsubscribe()` or
  /// once the server stopped.
  #[napi(getter)]
  pub fn active(&self) -> bool {
    !self.active.delivery.ended()
  }

  /// Resolves once the subscription has ended (`unsubscribe()` or `stop()`).
  #[napi(getter, ts_return_type = "Promise<void>")]
  pub fn closed(&self, env: Env) -> Result<AsyncBlock<()>> {
    let ended = self.active.delivery.ended_signal();
    AsyncBlockBuilder::new(async move {
      let mut ended = ended;
      let _ = ended.wait_for(|e| *e).await;
      Ok(())
    })
    .build(&env)
  }

  /// Stops delivery: no handler call starts after the promise resolves.
  /// Calling it again, or after `stop()`, does nothing.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn unsubscribe(&self, env: Env) -> Result<AsyncBlock<()>> {
    let active = self.active.clone();
    let first = !active.unsubscribed.swap(true, Ordering::SeqCst);
    // Nothing more reaches the handler from now on, even what is queued
    // (or the rest of the run under way, when the handler unsubscribes).
    active.delivery.end_on_js_thread(&env);
    let done = first.then(|| {
      let a = active.clone();
      active.handle.runtime.spawn(async move { a.remove().await })
    });
    AsyncBlockBuilder::new(async move {
      if let Some(done) = done {
        // A runtime shut down meanwhile (stop()) removed it anyway.
        let _ = done.await;
      }
      Ok(())
    })
    .build(&env)
  }
}

impl Active {
  /// Takes the subscription out of the router and its session out of the
  /// shared state; its reading task then ends.
  async fn remove(&self) {
    let scx = &self.handle.scx;
    let shared = scx.extends.shared().await;
    let entry = shared.entry(self.id.clone());
    if let Ok(u) = Unsubscribe::from(&ByteString::from(self.filter.as_str()), true, false) {
      if let Err(e) = entry.unsubscribe(&u).await {
        log::warn!("unsubscribe {}: {e}", self.filter);
      }
    }
    if let Ok(mut entry) = entry.try_lock().await {
      let _ = entry.remove_with(&self.id).await;
    }
    self.handle.flow.untrack(&self.id);
    let _ = self
      .tx
      .unbounded_send(Message::Closed(Reason::from_static("unsubscribed")));
  }
}

/// `server.subscribe()`: reads the arguments on the JS thread (throwing on
/// bad ones), then subscribes on the broker's runtime.
pub fn subscribe(
  env: &Env,
  handle: Option<BrokerHandle>,
  hooks: &Arc<Hooks>,
  number: u64,
  filter: Unknown,
  handler: Unknown,
  options: Option<Unknown>,
) -> Result<AsyncBlock<Subscription>> {
  let filter: String = match filter.get_type()? {
    ValueType::String => unsafe { filter.cast()? },
    other => {
      return Err(invalid_arg(format!(
        "filter: expected a string, got {}",
        js_value::type_name(other)
      )))
    }
  };
  validate_filter(&filter).map_err(invalid_arg)?;
  let handler: Function<(), Unknown<'static>> = match handler.get_type()? {
    ValueType::Function => unsafe { handler.cast()? },
    other => {
      return Err(invalid_arg(format!(
        "handler: expected a function, got {}",
        js_value::type_name(other)
      )))
    }
  };
  let options = match js_value::options_object(options, "options")? {
    None => SubscribeOptions::default(),
    Some(o) => {
      let fields = js_value::fields_to_json(&o, "options", |_| true)?;
      serde_path_to_error::deserialize::<_, SubscribeOptions>(serde_json::Value::Object(fields))
        .map_err(|e| invalid_arg(format!("options.{}: {}", e.path(), e.inner())))?
    }
  };
  let settings = settings(options).map_err(invalid_arg)?;
  let Some(handle) = handle else {
    return AsyncBlockBuilder::new(async {
      Err::<Subscription, _>(failure("subscribe: the server is not running"))
    })
    .build(env);
  };
  let client_id = ClientId::from(format!("{INTERNAL_PREFIX}{number}"));
  let delivery = Delivery::new(env, handler, hooks, handle.flow.clone(), client_id.clone())?;
  let start = handle.runtime.spawn(start(
    handle.clone(),
    client_id,
    filter.clone(),
    settings,
    delivery.clone(),
  ));
  AsyncBlockBuilder::new(async move {
    let (id, tx) = match start.await {
      Ok(Ok(started)) => started,
      Ok(Err(e)) => {
        delivery.end();
        return Err(failure(format!("subscribe: {e}")));
      }
      Err(_) => {
        delivery.end();
        return Err(failure("subscribe: the server stopped"));
      }
    };
    Ok(Subscription {
      active: Arc::new(Active {
        filter,
        id,
        delivery,
        handle,
        tx,
        unsubscribed: AtomicBool::new(false),
      }),
    })
  })
  .build(env)
}

/// Makes the subscriber's session, subscribes it, sends it the retained
/// messages, and starts the task that reads its channel.
async fn start(
  handle: BrokerHandle,
  client_id: ClientId,
  filter: String,
  settings: Settings,
  delivery: Arc<Delivery>,
) -> std::result::Result<(Id, SessionTx), String> {
  let scx = handle.scx.clone();
  let id = Id::new(scx.node.id(), 0, None, None, client_id.clone(), None);
  let opts = SubscriptionOptionsV5 {
    qos: settings.qos,
    no_local: false,
    // As for a client: `retain` is set only on retained messages sent on
    // subscribe.
    retain_as_published: false,
    retain_handling: RetainHandling::NoAtSubscribe,
  };
  let sub = Subscribe::from_v5(&ByteString::from(filter.as_str()), &opts, true, false, None)
    .map_err(|e| format!("filter: {e}"))?;
  let session = session(&scx, &id).await.map_err(|e| e.to_string())?;
  let (tx, rx) = rmqtt::channel::unbounded();
  let tx = SessionTx::new(tx);
  // Held at ¾ of maxQueued at most: QoS 0 is dropped only past it.
  let high = HIGH_WATER.min(settings.max_queued.saturating_mul(3).div_ceil(4));
  handle.flow.track(&id, STOPPED_BOUND, high);
  let shared = scx.extends.shared().await;
  let mut entry = shared
    .entry(id.clone())
    .try_lock()
    .await
    .map_err(|e| e.to_string())?;
  entry
    .set(session, tx.clone())
    .await
    .map_err(|e| e.to_string())?;
  drop(entry);
  let subscribed = shared.entry(id.clone()).subscribe(&sub).await;
  if let Err(e) = subscribed.as_ref().map(|r| r.success()) {
    handle.flow.untrack(&id);
    if let Ok(mut entry) = shared.entry(id.clone()).try_lock().await {
      let _ = entry.remove_with(&id).await;
    }
    return Err(e.to_string());
  }
  // MQTT sends no retained messages to a shared subscription [MQTT-4.8.2-?].
  let is_shared = sub.opts.shared_group().is_some();
  if settings.retained && !is_shared {
    let retained = scx.extends.retain().await.get(&sub.topic_filter).await;
    // Ahead of what was routed here while the store was read (the reading
    // task starts below): a message published after the read would
    // otherwise come before the older retained one [MQTT-4.6.0-6]. Put
    // first in reverse, so they keep their order.
    for (topic, mut r) in retained.unwrap_or_default().into_iter().rev() {
      r.publish.retain = true;
      r.publish.dup = false;
      r.publish.qos = r.publish.qos.less_value(settings.qos);
      r.publish.topic = topic;
      handle.flow.count_in(&id.client_id, r.publish.qos);
      crate::fork::send_first(&tx, Message::Forward(r.from, r.publish));
    }
  }
  // Made here, not in the task: a task dropped before it first ran (stop()
  // right after subscribe()) still ends the subscription.
  let end = End(delivery);
  handle
    .runtime
    .spawn(read(scx, rx, id.clone(), settings, end));
  Ok((id, tx))
}

/// A session with no connection behind it: what rmqtt's shared state and
/// router need of a subscriber.
async fn session(scx: &ServerContext, id: &Id) -> rmqtt::Result<Session> {
  let listen_cfg = Arc::new(rmqtt::net::Builder::default());
  let connect = Connect {
    clean_start: true,
    keep_alive: 0,
    session_expiry_interval_secs: 0,
    auth_method: None,
    auth_data: None,
    request_problem_info: false,
    request_response_info: false,
    receive_max: None,
    topic_alias_max: 0,
    user_properties: Vec::new(),
    max_packet_size: None,
    last_will: None,
    client_id: id.client_id.clone(),
    username: None,
    password: None,
    cert: None,
  };
  let conn_info = Arc::new(ConnectInfo::V5(id.clone(), Box::new(connect)));
  let fitter =
    scx
      .extends
      .fitter_mgr()
      .await
      .create(conn_info.clone(), id.clone(), listen_cfg.clone());
  let now = crate::fork::timestamp_millis();
  Session::new(
    id.clone(),
    scx.clone(),
    fitter.max_mqueue_len(),
    listen_cfg,
    fitter.clone(),
    None,
    fitter.max_inflight(),
    now,
    conn_info,
    false,
    false,
    true,
    now,
    SessionSubs::new(),
    None,
    None,
  )
  .await
}

/// Messages the reading task hands to the JS queue at once, at most: what
/// the channel holds is taken under one lock of the queue, not one per
/// message.
const READ_BATCH: usize = 1024;

/// Reads the subscriber's session channel until it closes (unsubscribe,
/// stop) and queues each message for JavaScript, in order.
async fn read(scx: ServerContext, mut rx: rmqtt::types::Rx, id: Id, settings: Settings, end: End) {
  let delivery = &end.0;
  let mut batch = Vec::new();
  'read: while let Some(mut message) = rx.recv().await {
    loop {
      match message {
        Message::Forward(from, p) => {
          if settings.no_local && is_server(&from) {
            delivery.flow().count_out(&id.client_id);
          } else if p.qos == QoS::AtMostOnce
            && delivery.pending() + batch.len() >= settings.max_queued
          {
            delivery.count_drop();
            let reason =
              Reason::from_static("the in-process subscriber has maxQueued messages waiting");
            // Also what takes it off the flow control's count.
            scx
              .extends
              .hook_mgr()
              .message_dropped(Some(id.clone()), from, p, reason)
              .await;
          } else {
            batch.push(Msg::of(&p));
          }
        }
        Message::Closed(_) | Message::Kick(..) => break 'read,
        _ => {}
      }
      if batch.len() >= READ_BATCH {
        break;
      }
      match rx.try_recv() {
        Ok(next) => message = next,
        Err(_) => break,
      }
    }
    delivery.push_all(&mut batch);
  }
  delivery.push_all(&mut batch);
}

/// Whether a session is an in-process subscription's (`clients()` and
/// `subscriptions()` list network clients only).
pub fn is_internal(client_id: &str) -> bool {
  client_id.starts_with(INTERNAL_PREFIX)
}

/// Ends the subscription when dropped: with the reading task, also when
/// `stop()` shuts the runtime down.
struct End(Arc<Delivery>);

impl Drop for End {
  fn drop(&mut self) {
    self.0.end();
  }
}

fn is_server(from: &From) -> bool {
  from.is_system() && &*from.client_id == crate::publish::SERVER_CLIENT_ID
}
