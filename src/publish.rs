//! Publishing from the server itself (not from a client).
//!
//! Follows the path rmqtt's own plugins use for system messages: build a
//! `Publish`, run the `message_publish` hook, then hand the message to the
//! router with `SessionState::forwards`, which also updates the retained store.

use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use napi_derive::napi;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, From, Id, Publish, QoS as RQoS};
use tokio::sync::{mpsc, oneshot};

/// MQTT Quality of Service levels.
#[napi]
#[allow(clippy::enum_variant_names)] // the names the spec and MQTT use
pub enum QoS {
  /// At most once: fire and forget.
  AtMostOnce = 0,
  /// At least once: acknowledged, may be duplicated.
  AtLeastOnce = 1,
  /// Exactly once: four-way handshake.
  ExactlyOnce = 2,
}

/// Options for `MqttServer.publish()`.
#[napi(object)]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct PublishOptions {
  /// Delivery guarantee towards subscribers. Default `QoS.AtMostOnce`.
  #[napi(ts_type = "QoS")]
  #[serde(default, deserialize_with = "crate::config::opt_number")]
  pub qos: Option<f64>,
  /// Keep the message as the topic's retained message. An empty payload with
  /// `retain: true` clears it. Default `false`.
  pub retain: Option<bool>,
  /// MQTT 5 properties, e.g. the response to a request:
  /// `{ correlationData, userProperties: [['k', 'v']] }` (sent to
  /// `responseTopic` of the request).
  #[napi(ts_type = "PublishProperties")]
  // Declared for index.d.ts and serde's list of fields; `read_options`
  // reads it with `message_properties::read`, serde never does.
  #[serde(default)]
  pub properties: Option<()>,
}

/// Client id reported as the origin of server-side publishes.
pub const SERVER_CLIENT_ID: &str = "$server";
/// Longest topic the MQTT wire format can carry.
const MAX_TOPIC_BYTES: usize = 65_535;

/// A checked server publish, ready to route.
#[derive(Debug)]
pub struct Message {
  pub topic: String,
  pub payload: Bytes,
  pub qos: RQoS,
  pub retain: bool,
  /// `None` when `options.properties` is absent.
  pub properties: Option<PublishProperties>,
}

impl Message {
  /// Validates topic and options; errors name the bad argument.
  pub fn new(
    topic: String,
    payload: Bytes,
    opts: Option<PublishOptions>,
    properties: Option<PublishProperties>,
  ) -> Result<Self, String> {
    validate_topic(&topic)?;
    let opts = opts.unwrap_or_default();
    let qos = match opts.qos {
      None | Some(0.0) => RQoS::AtMostOnce,
      Some(1.0) => RQoS::AtLeastOnce,
      Some(2.0) => RQoS::ExactlyOnce,
      Some(q) => {
        return Err(format!(
          "options.qos: must be 0, 1 or 2 (a QoS value), got {q}"
        ))
      }
    };
    Ok(Message {
      topic,
      payload,
      qos,
      retain: opts.retain.unwrap_or(false),
      properties,
    })
  }
}

/// A topic name a client could publish to: not empty, no wildcards, no NUL,
/// within the protocol's length limit.
pub fn validate_topic(topic: &str) -> Result<(), String> {
  if topic.is_empty() {
    return Err("topic: must not be empty".into());
  }
  if topic.len() > MAX_TOPIC_BYTES {
    return Err(format!(
      "topic: is {} bytes long, the MQTT limit is {MAX_TOPIC_BYTES}",
      topic.len()
    ));
  }
  if topic.contains(['+', '#']) {
    return Err(format!(
      "topic: \"{topic}\" contains a wildcard (+ or #); wildcards are only valid in subscriptions"
    ));
  }
  if topic.contains('\0') {
    return Err("topic: must not contain the NUL character".into());
  }
  Ok(())
}

/// Bytes of a PUBLISH besides its topic and payload, as `check_size`
/// counts them: the topic's length prefix and a packet identifier.
const PUBLISH_OVERHEAD: usize = 4;

/// A server publish obeys the limit clients do: its PUBLISH (counted as
/// rmqtt counts a client's, without the fixed header) must fit in
/// `max_packet_size`, the largest `maxPacketSize` of the listeners.
/// `properties` is the size of the MQTT 5 properties
/// (`message_properties::encoded_size`).
pub fn check_size(
  topic: &str,
  properties: usize,
  payload_len: usize,
  max_packet_size: u32,
) -> Result<(), String> {
  let max = max_packet_size as usize;
  let overhead = PUBLISH_OVERHEAD + topic.len() + properties;
  let size = overhead + payload_len;
  if size <= max {
    return Ok(());
  }
  let room = max.saturating_sub(overhead);
  let with = if properties > 0 {
    " and properties"
  } else {
    ""
  };
  Err(format!(
    "payload: is {payload_len} bytes; with this topic{with} the message would be a {size}-byte PUBLISH, \
     larger than the largest maxPacketSize of the listeners ({max} bytes), so at most {room} bytes fit"
  ))
}

/// The server's own publishing queue. MQTT keeps the order of one
/// publisher's messages, and the server is one publisher: calls are routed
/// one after another, in call order, by a single task on the broker runtime.
#[derive(Clone)]
pub struct Publisher {
  tx: mpsc::UnboundedSender<(Message, oneshot::Sender<Result<(), String>>)>,
}

impl Publisher {
  /// Starts the routing task; it ends when the last `Publisher` is dropped
  /// or the broker's runtime shuts down.
  pub fn spawn(runtime: &tokio::runtime::Handle, scx: ServerContext) -> Self {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Message, oneshot::Sender<Result<(), String>>)>();
    runtime.spawn(async move {
      while let Some((msg, done)) = rx.recv().await {
        let _ = done.send(publish(&scx, msg).await);
      }
    });
    Publisher { tx }
  }

  /// Queues the message (synchronously, so call order is queue order) and
  /// returns a future that resolves once it has been routed.
  pub fn publish(&self, msg: Message) -> impl std::future::Future<Output = Result<(), String>> {
    let (done, routed) = oneshot::channel();
    let queued = self.tx.send((msg, done)).is_ok();
    async move {
      let stopped = || "publish: the server stopped before the message was routed".to_string();
      if !queued {
        return Err(stopped());
      }
      routed.await.map_err(|_| stopped())?
    }
  }
}

/// Routes the message to subscribers (and the retained store). Resolves once
/// rmqtt has handed it to every matching session.
async fn publish(scx: &ServerContext, msg: Message) -> Result<(), String> {
  // A retained message with an expiry interval leaves the store with it.
  let expiry = msg
    .properties
    .as_ref()
    .and_then(|p| p.message_expiry_interval)
    .map(|i| Duration::from_secs(i.get().into()));
  let codec = CodecPublish {
    dup: false,
    retain: msg.retain,
    qos: msg.qos,
    topic: ByteString::from(msg.topic),
    packet_id: None,
    payload: msg.payload,
    properties: Some(msg.properties.unwrap_or_default()),
  };
  let p = Publish::from(Box::new(codec)).create_time(crate::fork::timestamp_millis());
  let id = Id::new(
    scx.node.id(),
    0,
    None,
    None,
    ClientId::from_static(SERVER_CLIENT_ID),
    None,
  );
  let from = From::from_system(id);
  let p = scx
    .extends
    .hook_mgr()
    .message_publish(None, from.clone(), &p)
    .await
    .unwrap_or(p);
  // Without an expiry a retained server message stays until replaced or cleared.
  SessionState::forwards(scx, from, p, false, expiry)
    .await
    .map_err(|e| format!("publish failed: {e}"))
}
