//! MQTT 5 shared subscriptions (`$share/{group}/{filter}`).
//!
//! rmqtt parses shared subscriptions but, without a strategy registered, its
//! default refuses them. This one spreads messages round-robin over the
//! group's online members (any member when none is online, so the message
//! is queued for a session that will come back).

use std::sync::atomic::{AtomicUsize, Ordering};

use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
  ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
  TopicName,
};

#[derive(Default)]
pub struct RoundRobin {
  next: AtomicUsize,
}

type Candidate = (
  NodeId,
  ClientId,
  SubscriptionOptions,
  Option<Vec<SubscriptionIdentifier>>,
  Option<IsOnline>,
);

#[async_trait::async_trait]
impl SharedSubscription for RoundRobin {
  fn is_supported(&self) -> bool {
    true
  }

  async fn choice(
    &self,
    _scx: &ServerContext,
    _group: &SharedGroup,
    _publisher: &Id,
    _topic: &TopicName,
    candidates: &[Candidate],
  ) -> Option<(usize, IsOnline)> {
    if candidates.is_empty() {
      return None;
    }
    let start = self.next.fetch_add(1, Ordering::Relaxed);
    let n = candidates.len();
    (0..n)
      .map(|i| (start + i) % n)
      .find(|&i| candidates[i].4.unwrap_or(true))
      .map(|i| (i, true))
      .or(Some((start % n, false)))
  }
}
