//! The sessions a broker holds, as the application sees them:
//! `server.client(id)`, `server.clients()`, `server.subscriptions()`,
//! `server.disconnect()`. Everything is read from rmqtt's session registry
//! (`Shared`), as its http-api plugin does.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::AsyncGenerator;
use napi_derive::napi;
use rmqtt::codec::v5::{Disconnect, DisconnectReasonCode};
use rmqtt::context::ServerContext;
use rmqtt::session::Session;
use rmqtt::types::{ClientId, ConnectInfo, Id, Message, SubscriptionOptions};
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use crate::error::{failure, invalid_arg};
use crate::fork;

/// Sessions read per page of `clients()`: a page costs a walk to its place
/// in the registry plus this many lookups.
const PAGE: usize = 256;
/// Longest `disconnect()` waits for the connection to close before
/// discarding the session.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A session of the broker: a connected client, or the persistent session a
/// client left.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ClientInfo {
  pub client_id: String,
  pub username: Option<String>,
  /// `ip:port` of the client's connection.
  pub remote_addr: Option<String>,
  /// Name of the listener the client connected to.
  pub listener: String,
  /// 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0).
  pub protocol_version: u32,
  /// Whether the client is connected now (false: a persistent session).
  pub connected: bool,
  /// When the client connected, in milliseconds since the epoch.
  pub connected_at: f64,
  /// Keep alive the client asked for, in seconds.
  pub keep_alive: u32,
  /// Clean Start (MQTT 5) or Clean Session (3.1.1) of the CONNECT.
  pub clean_start: bool,
  /// How long the session outlives the connection, in seconds.
  pub session_expiry_interval: f64,
  /// Subscriptions of the session.
  pub subscriptions: u32,
  /// QoS 1/2 messages sent and not yet acknowledged.
  pub inflight: u32,
  /// Messages waiting to be sent.
  pub queued: u32,
}

/// One subscription of a session.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct SubscriptionInfo {
  pub client_id: String,
  /// The filter as subscribed (`$share/group/...` included).
  pub topic_filter: String,
  #[napi(ts_type = "QoS")]
  pub qos: u32,
  pub shared_group: Option<String>,
  pub no_local: bool,
  pub retain_as_published: bool,
  /// MQTT 5 Retain Handling, 0-2 (0 for 3.1.1).
  pub retain_handling: u32,
}

/// `disconnect()`'s options.
#[napi(object)]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct DisconnectOptions {
  /// Reason Code of the DISCONNECT an MQTT 5 client is sent: one a server
  /// may send (MQTT 5 3.14.2.1). Default 0x98 Administrative action.
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub reason_code: Option<f64>,
  /// Reason String of that DISCONNECT (MQTT 5 clients only).
  pub reason: Option<String>,
  /// Also end the session (subscriptions, queued messages) even if the
  /// client asked to keep it. Default `false`.
  pub discard_session: Option<bool>,
}

/// Reason codes a server may send in DISCONNECT (MQTT 5 table 3-10).
const SERVER_DISCONNECT_CODES: [u8; 29] = [
  0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
  0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// Longest reason string accepted (it must fit a DISCONNECT packet).
const MAX_REASON: usize = 65_535;

/// `options` of `disconnect()`, checked: the DISCONNECT to send and whether
/// to discard the session.
pub fn disconnect_request(o: Option<DisconnectOptions>) -> napi::Result<(Disconnect, bool)> {
  let o = o.unwrap_or_default();
  let code = match o.reason_code {
    None => 0x98,
    Some(c)
      if (0.0..=255.0).contains(&c)
        && c.fract() == 0.0
        && SERVER_DISCONNECT_CODES.contains(&(c as u8)) =>
    {
      c as u8
    }
    Some(c) => {
      return Err(invalid_arg(format!(
        "options.reasonCode: {c} is not a reason code a server may send in DISCONNECT \
         (0x00, 0x80-0x83, 0x87, 0x89, 0x8B-0x90, 0x93-0xA2)"
      )))
    }
  };
  let reason_code = DisconnectReasonCode::try_from(code)
    .map_err(|_| invalid_arg(format!("options.reasonCode: {code} is not supported")))?;
  if let Some(r) = &o.reason {
    if r.len() > MAX_REASON {
      return Err(invalid_arg(format!(
        "options.reason: is {} bytes long, at most {MAX_REASON} fit",
        r.len()
      )));
    }
  }
  let disconnect = Disconnect {
    reason_code,
    reason_string: o.reason.map(Into::into),
    ..Default::default()
  };
  Ok((disconnect, o.discard_session.unwrap_or(false)))
}

/// The session of `client_id`, connected or not.
pub fn find(scx: &ServerContext, client_id: &str) -> Option<Session> {
  let id = Id::from(scx.node.id(), ClientId::from(client_id));
  scx
    .extends
    .shared
    .get()
    .entry(id)
    .session()
    .filter(|s| !crate::subscription::is_internal(&s.id.client_id))
}

/// A network client's session; not an in-process subscription's.
fn client(s: Option<Session>) -> Option<Session> {
  s.filter(|s| !crate::subscription::is_internal(&s.id.client_id))
}

/// What `client()` and `clients()` report of a session.
pub async fn info(s: &Session, listeners: &[String]) -> ClientInfo {
  let connect = s.connect_info().await.ok();
  let (keep_alive, clean_start) = match connect.as_deref() {
    Some(ConnectInfo::V3(_, c)) => (c.keep_alive, c.clean_session),
    Some(ConnectInfo::V5(_, c)) => (c.keep_alive, c.clean_start),
    None => (0, true),
  };
  let subscriptions = match s.subscriptions().await {
    Ok(subs) => subs.len().await,
    Err(_) => 0,
  };
  ClientInfo {
    client_id: s.id.client_id.to_string(),
    username: s.id.username.as_ref().map(|u| u.to_string()),
    remote_addr: s.id.remote_addr.map(|a| a.to_string()),
    listener: listeners
      .get(s.id.lid as usize)
      .cloned()
      .unwrap_or_default(),
    protocol_version: s.protocol().await.unwrap_or_default() as u32,
    connected: s.connected().await.unwrap_or_default(),
    connected_at: s.connected_at().await.unwrap_or_default() as f64,
    keep_alive: keep_alive.into(),
    clean_start,
    session_expiry_interval: s.fitter.session_expiry_interval(None).as_secs() as f64,
    subscriptions: subscriptions as u32,
    inflight: s.out_inflight().lock().len() as u32,
    queued: s.deliver_queue().len() as u32,
  }
}

/// The subscriptions of one session, or of all when `client_id` is `None`.
pub async fn subscriptions(
  scx: &ServerContext,
  client_id: Option<String>,
) -> Vec<SubscriptionInfo> {
  let sessions: Vec<Session> = match client_id {
    Some(id) => find(scx, &id).into_iter().collect(),
    None => {
      let shared = scx.extends.shared.get();
      shared.iter().filter_map(|e| client(e.session())).collect()
    }
  };
  let mut out = Vec::new();
  for s in sessions {
    let Ok(subs) = s.subscriptions().await else {
      continue;
    };
    for (filter, opts) in subs.read().await.iter() {
      out.push(subscription(&s, filter, opts));
    }
  }
  out
}

fn subscription(s: &Session, filter: &str, opts: &SubscriptionOptions) -> SubscriptionInfo {
  SubscriptionInfo {
    client_id: s.id.client_id.to_string(),
    topic_filter: match opts.shared_group() {
      Some(group) => format!("$share/{group}/{filter}"),
      None => filter.to_string(),
    },
    qos: opts.qos_value().into(),
    shared_group: opts.shared_group().map(|g| g.to_string()),
    no_local: opts.no_local().unwrap_or(false),
    retain_as_published: opts.retain_as_published().unwrap_or(false),
    retain_handling: opts.retain_handling().map_or(0, |h| h as u32),
  }
}

/// Closes a client's connection (an MQTT 5 client is sent `disconnect`) and,
/// with `discard`, ends its session. False when there is no such session.
pub async fn disconnect(
  scx: ServerContext,
  client_id: String,
  disconnect: Disconnect,
  discard: bool,
) -> bool {
  let Some(s) = find(&scx, &client_id) else {
    return false;
  };
  let shared = scx.extends.shared.get();
  if s.connected().await.unwrap_or_default() {
    if let Some(tx) = shared.entry(s.id.clone()).tx() {
      let _ = tx.unbounded_send(Message::Closed(fork::admin_disconnect(disconnect)));
    }
    // The session changes hands (ends, or goes offline) once the
    // connection has closed; discarding it before would race that.
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    while s.connected().await.unwrap_or_default() && tokio::time::Instant::now() < deadline {
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
  }
  if discard {
    let entry = shared.entry(s.id.clone());
    if let Ok(mut locked) = entry.try_lock().await {
      if locked.session().is_some_and(|now| now.id == s.id) {
        let _ = locked.kick(true, true, true).await;
      }
    }
  }
  true
}

/// `server.clients()`: every session, a page at a time, read on the broker
/// as iteration reaches it. Sessions that come or go meanwhile may or may
/// not be seen; none is yielded twice.
#[napi(async_iterator)]
pub struct ClientIterator {
  state: Arc<Mutex<Pages>>,
}

struct Pages {
  scx: ServerContext,
  runtime: Handle,
  listeners: Arc<Vec<String>>,
  offset: usize,
  buffer: VecDeque<ClientInfo>,
  seen: HashSet<String>,
  done: bool,
}

impl ClientIterator {
  pub fn new(scx: ServerContext, runtime: Handle, listeners: Vec<String>) -> Self {
    ClientIterator {
      state: Arc::new(Mutex::new(Pages {
        scx,
        runtime,
        listeners: Arc::new(listeners),
        offset: 0,
        buffer: VecDeque::new(),
        seen: HashSet::new(),
        done: false,
      })),
    }
  }
}

/// The sessions at `offset..offset + PAGE` of the registry, and how many
/// places were read (fewer than `PAGE` at the end).
async fn page(
  scx: ServerContext,
  offset: usize,
  listeners: Arc<Vec<String>>,
) -> (Vec<ClientInfo>, usize) {
  let (sessions, read): (Vec<Session>, usize) = {
    let shared = scx.extends.shared.get();
    let page: Vec<_> = shared.iter().skip(offset).take(PAGE).collect();
    (
      page.iter().filter_map(|e| client(e.session())).collect(),
      page.len(),
    )
  };
  let mut out = Vec::with_capacity(sessions.len());
  for s in &sessions {
    out.push(info(s, &listeners).await);
  }
  (out, read)
}

#[napi]
impl AsyncGenerator for ClientIterator {
  type Yield = ClientInfo;
  type Next = ();
  type Return = ();

  fn next(
    &mut self,
    _value: Option<()>,
  ) -> impl Future<Output = napi::Result<Option<ClientInfo>>> + Send + 'static {
    let state = self.state.clone();
    async move {
      let mut p = state.lock().await;
      loop {
        if let Some(c) = p.buffer.pop_front() {
          return Ok(Some(c));
        }
        if p.done {
          return Ok(None);
        }
        let fetch = page(p.scx.clone(), p.offset, p.listeners.clone());
        let (clients, read) = p
          .runtime
          .spawn(fetch)
          .await
          .map_err(|_| failure("clients: the server stopped during the iteration"))?;
        p.offset += read;
        p.done = read < PAGE;
        for c in clients {
          if p.seen.insert(c.client_id.clone()) {
            p.buffer.push_back(c);
          }
        }
      }
    }
  }
}
