//! `server.retained(filter)` and `server.deleteRetained(topic)`: the
//! retained-message store, read and cleared through rmqtt's `RetainStorage`.

use bytestring::ByteString;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::context::ServerContext;
use rmqtt::types::{ClientId, From, Id, Publish, QoS, Retain, TopicFilter};

/// A retained message.
#[napi(object)]
pub struct RetainedMessage {
  pub topic: String,
  pub payload: Buffer,
  #[napi(ts_type = "QoS")]
  pub qos: u32,
}

/// A filter `retained()` can match with: not empty, wildcards only as whole
/// levels (`#` last).
pub fn validate_filter(filter: &str) -> Result<(), String> {
  if filter.is_empty() {
    return Err("filter: must not be empty".into());
  }
  let levels: Vec<&str> = filter.split('/').collect();
  for (i, level) in levels.iter().enumerate() {
    let wild = level.contains(['+', '#']);
    if wild && level.len() != 1 {
      return Err(format!(
        "filter: \"{filter}\": a wildcard (+ or #) must be a whole level"
      ));
    }
    if *level == "#" && i != levels.len() - 1 {
      return Err(format!("filter: \"{filter}\": # must be the last level"));
    }
  }
  Ok(())
}

/// The retained messages whose topics match `filter` (as for a subscriber:
/// `#` and `+` do not match `$` topics at the first level).
pub async fn matching(scx: &ServerContext, filter: String) -> Result<Vec<RetainedMessage>, String> {
  let found = scx
    .extends
    .retain()
    .await
    .get(&TopicFilter::from(filter))
    .await
    .map_err(|e| format!("retained: {e}"))?;
  Ok(
    found
      .into_iter()
      .map(|(topic, r)| RetainedMessage {
        topic: topic.to_string(),
        payload: r.publish.payload.to_vec().into(),
        qos: r.publish.qos.value().into(),
      })
      .collect(),
  )
}

/// Removes `topic`'s retained message without publishing anything; whether
/// there was one.
pub async fn delete(scx: &ServerContext, topic: String) -> Result<bool, String> {
  let retain = scx.extends.retain().await;
  let topic = ByteString::from(topic);
  let existed = !retain
    .get(&topic)
    .await
    .map_err(|e| format!("deleteRetained: {e}"))?
    .is_empty();
  if existed {
    // An empty payload clears the topic's retained message.
    let codec = CodecPublish {
      dup: false,
      retain: true,
      qos: QoS::AtMostOnce,
      topic: topic.clone(),
      packet_id: None,
      payload: bytes::Bytes::new(),
      properties: None,
    };
    let id = Id::new(
      scx.node.id(),
      0,
      None,
      None,
      ClientId::from_static("$server"),
      None,
    );
    let retain_msg = Retain {
      msg_id: None,
      from: From::from_system(id),
      publish: Publish::from(Box::new(codec)),
    };
    retain
      .set(&topic, retain_msg, None)
      .await
      .map_err(|e| format!("deleteRetained: {e}"))?;
    crate::retained_quota::cleared(scx, &topic);
  }
  Ok(existed)
}
