//! Lossless QoS 1/2 under overload: slow publishers down instead of
//! dropping at slow subscribers.
//!
//! rmqtt acknowledges a client's PUBLISH as soon as it is routed and queues
//! it per subscriber (`maxMqueueLen`); when a subscriber's queue is full it
//! drops QoS 1/2 messages. Here, before a client's QoS 1/2 message is routed,
//! the publisher's own task waits while any connected subscriber of the
//! topic has its queue more than three quarters full. The publisher then
//! stops reading its socket, TCP pushes back, and memory stays bounded by the
//! queue limits. A wait is capped at `MAX_WAIT` so a stalled subscriber
//! cannot hold publishers forever (past it, the queue's normal drop policy
//! applies and `onMessageDropped` reports each drop).

use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::types::{From, Id, QoS, TopicName};

/// Longest a publisher is held back for one message.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How often a held publisher looks again.
const POLL: Duration = Duration::from_millis(1);
/// Runs before any other `message_publish` handler.
const PRIORITY: Priority = Priority::MAX;

/// Installs the flow control on a broker.
pub async fn register(scx: &ServerContext) {
  let r = scx.extends.hook_mgr().register();
  r.add_priority(Type::MessagePublish, PRIORITY, Box::new(FlowControl))
    .await;
  r.start().await;
}

/// Holds no state (and no context: the session carries it), so it adds no
/// reference cycle to the broker.
struct FlowControl;

#[async_trait::async_trait]
impl Handler for FlowControl {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    if let Parameter::MessagePublish(Some(s), from, p) = param {
      if p.qos != QoS::AtMostOnce {
        wait_for_room(&s.scx, from, &p.topic).await;
      }
    }
    (true, acc)
  }
}

async fn wait_for_room(scx: &ServerContext, from: &From, topic: &TopicName) {
  let deadline = tokio::time::Instant::now() + MAX_WAIT;
  while congested(scx, from, topic).await {
    if tokio::time::Instant::now() >= deadline {
      log::warn!(
        "{from:?}: subscribers of {topic} stayed congested for {MAX_WAIT:?}; publishing anyway"
      );
      return;
    }
    tokio::time::sleep(POLL).await;
  }
}

/// Whether a connected subscriber of `topic` (other than the publisher, who
/// cannot drain while it waits) has a nearly full queue.
async fn congested(scx: &ServerContext, from: &From, topic: &TopicName) -> bool {
  let Ok(relations) = scx
    .extends
    .router()
    .await
    .matches(from.id.clone(), topic)
    .await
  else {
    return false;
  };
  let shared = scx.extends.shared().await;
  for (node, subscribers) in relations {
    for (_, client_id, ..) in subscribers {
      if client_id == from.id.client_id {
        continue;
      }
      let Some(session) = shared.entry(Id::from(node, client_id)).session() else {
        continue;
      };
      let queue = session.deliver_queue();
      if queue.len() * 4 >= queue.capacity() * 3 && session.connected().await.unwrap_or(false) {
        return true;
      }
    }
  }
  false
}
