//! Lossless QoS 1/2 under overload: slow publishers down instead of
//! dropping at slow subscribers (and QoS 0 too, while the subscriber drains).
//!
//! rmqtt acknowledges a client's PUBLISH as soon as it is routed and hands it
//! to each subscriber's session through an unbounded channel, then a bounded
//! queue (`maxMqueueLen`); when that queue is full it drops QoS 1/2 messages.
//! The channel's backlog is invisible, so this module counts, per
//! subscriber, the messages routed to it and not yet sent (or dropped).
//! Before a client's QoS 1/2 message is routed, the publisher's own task
//! waits while any subscriber of the topic has three quarters of its queue
//! limit pending. The publisher then stops reading its socket, TCP pushes
//! back, and memory stays bounded by the queue limits.
//!
//! A wait is capped at `MAX_WAIT` so a stalled subscriber cannot hold
//! publishers forever; past it the count is re-synchronised with the real
//! queue and the queue's drop policy applies (`onMessageDropped` reports it).
//!
//! QoS 0 is held too, but only by a subscriber that is draining: one that
//! sent nothing for `STALL` (20 ms) while congested is marked stalled, and
//! QoS 0 to it is routed as before (its queue drops what does not fit) until
//! it sends again. So a live subscriber gets every message of a flood it can
//! keep up with, and a stopped one holds its publishers for 20 ms once.
//! Without this, 16 publishers flooding one subscriber filled rmqtt's
//! unbounded session channel far faster than it drained: the broker grew to
//! 1.9 GiB and delivery fell to a third.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::types::{ClientId, From, Id, QoS, SubRelationsMap};

/// Longest a publisher is held back for one message.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How often a held publisher looks again.
const POLL: Duration = Duration::from_millis(1);
/// A congested subscriber that sends nothing for this long no longer holds
/// QoS 0 publishers (until it sends again).
const STALL: Duration = Duration::from_millis(20);
/// Runs before any other handler of the same events.
const PRIORITY: Priority = Priority::MAX;

/// Installs the flow control on a broker.
pub async fn register(scx: &ServerContext) {
  let flow = FlowControl::default();
  let r = scx.extends.hook_mgr().register();
  for typ in [
    Type::MessagePublish,
    Type::MessageDelivered,
    Type::MessageDropped,
    Type::ClientDisconnected,
  ] {
    r.add_priority(typ, PRIORITY, Box::new(flow.clone())).await;
  }
  r.start().await;
}

/// Messages routed to each subscriber and not yet sent. Holds no context
/// (the session carries it), so it adds no reference cycle to the broker.
#[derive(Clone, Default)]
struct FlowControl {
  subscribers: Arc<DashMap<ClientId, Counters>>,
}

#[derive(Default)]
struct Counters {
  /// Routed to the subscriber and not yet sent or dropped.
  pending: AtomicUsize,
  /// Sent so far: a waiting QoS 0 publisher checks that it moves.
  sent: AtomicUsize,
  /// Sent nothing while a QoS 0 publisher waited for it.
  stalled: AtomicBool,
}

#[async_trait::async_trait]
impl Handler for FlowControl {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    match param {
      Parameter::MessagePublish(s, from, p) => {
        let scx = s.map(|s| &s.scx);
        if let Some(scx) = scx {
          if let Ok(relations) = scx
            .extends
            .router()
            .await
            .matches(from.id.clone(), &p.topic)
            .await
          {
            self.wait_for_room(scx, from, p.qos, &relations).await;
            self.count_routed(from, &relations);
          }
        }
      }
      Parameter::MessageDelivered(s, ..) => self.count_gone(&s.id.client_id, true),
      Parameter::MessageDropped(Some(to), ..) => self.count_gone(&to.client_id, false),
      // Whatever was queued for a client that left is not coming out.
      Parameter::ClientDisconnected(s, _) => {
        self.subscribers.remove(&s.id.client_id);
      }
      _ => {}
    }
    (true, acc)
  }
}

impl FlowControl {
  fn count_routed(&self, from: &From, relations: &SubRelationsMap) {
    for (_, client_id, opts, _, group) in relations.values().flatten() {
      // A shared group delivers to one member, chosen later: not counted.
      // No Local skips the publisher itself.
      if group.is_some() || (opts.no_local() == Some(true) && *client_id == from.id.client_id) {
        continue;
      }
      self
        .subscribers
        .entry(client_id.clone())
        .or_default()
        .pending
        .fetch_add(1, Ordering::Relaxed);
    }
  }

  fn count_gone(&self, client_id: &ClientId, sent: bool) {
    if let Some(c) = self.subscribers.get(client_id) {
      // Saturating: retained and offline messages are sent without having
      // been counted on the way in.
      let _ = c
        .pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
      if sent {
        c.sent.fetch_add(1, Ordering::Relaxed);
        if c.stalled.load(Ordering::Relaxed) {
          c.stalled.store(false, Ordering::Relaxed);
        }
      }
    }
  }

  fn sent(&self, client_id: &ClientId) -> usize {
    self
      .subscribers
      .get(client_id)
      .map_or(0, |c| c.sent.load(Ordering::Relaxed))
  }

  async fn wait_for_room(
    &self,
    scx: &ServerContext,
    from: &From,
    qos: QoS,
    relations: &SubRelationsMap,
  ) {
    let qos0 = qos == QoS::AtMostOnce;
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    // The subscriber a QoS 0 message waits for, its sent count, and since when
    // that count has not moved.
    let mut progress: Option<(ClientId, usize, tokio::time::Instant)> = None;
    loop {
      let Some(client_id) = self.congested(scx, from, qos0, relations).await else {
        return;
      };
      if tokio::time::Instant::now() >= deadline {
        if !qos0 {
          log::warn!(
            "{from:?}: subscriber {client_id} stayed congested for {MAX_WAIT:?}; publishing anyway"
          );
          self.resync(scx, &client_id).await;
        }
        return;
      }
      if qos0 {
        // QoS 0 waits only for a subscriber that drains; one that sent
        // nothing for `STALL` sheds from now on.
        let sent = self.sent(&client_id);
        let now = tokio::time::Instant::now();
        match &progress {
          Some((id, n, _)) if *id == client_id && *n != sent => {
            progress = Some((client_id, sent, now))
          }
          Some((id, _, since)) if *id == client_id => {
            if now.duration_since(*since) >= STALL {
              if let Some(c) = self.subscribers.get(&client_id) {
                c.stalled.store(true, Ordering::Relaxed);
              }
              continue;
            }
          }
          _ => progress = Some((client_id, sent, now)),
        }
      }
      tokio::time::sleep(POLL).await;
    }
  }

  /// A connected subscriber (not the publisher, who cannot drain while it
  /// waits) with three quarters of its queue limit pending; for a QoS 0
  /// message, one that is not stalled.
  async fn congested(
    &self,
    scx: &ServerContext,
    from: &From,
    qos0: bool,
    relations: &SubRelationsMap,
  ) -> Option<ClientId> {
    let shared = scx.extends.shared().await;
    for (node, subscribers) in relations {
      for (_, client_id, ..) in subscribers {
        if *client_id == from.id.client_id {
          continue;
        }
        let Some(pending) = self.subscribers.get(client_id).and_then(|c| {
          let stalled = qos0 && c.stalled.load(Ordering::Relaxed);
          let n = c.pending.load(Ordering::Relaxed);
          (n > 0 && !stalled).then_some(n)
        }) else {
          continue;
        };
        let Some(session) = shared.entry(Id::from(*node, client_id.clone())).session() else {
          continue;
        };
        let limit = session.deliver_queue().capacity();
        if pending * 4 >= limit * 3 && session.connected().await.unwrap_or(false) {
          return Some(client_id.clone());
        }
      }
    }
    None
  }

  /// After a long stall, trust the queue's real length again (a count can
  /// drift if rmqtt discards messages without reporting them).
  async fn resync(&self, scx: &ServerContext, client_id: &ClientId) {
    let shared = scx.extends.shared().await;
    let real = shared
      .entry(Id::from(scx.node.id(), client_id.clone()))
      .session()
      .map_or(0, |s| s.deliver_queue().len());
    if let Some(c) = self.subscribers.get(client_id) {
      c.pending.store(real, Ordering::Relaxed);
    }
  }
}
