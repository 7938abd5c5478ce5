//! Lossless QoS 1/2 under overload: slow publishers down instead of
//! dropping at slow subscribers (and QoS 0 too, while the subscriber drains).
//!
//! rmqtt acknowledges a client's PUBLISH as soon as it is routed and hands it
//! to each subscriber's session through an unbounded channel, then a bounded
//! queue (`maxMqueueLen`); when that queue is full it drops QoS 1/2 messages.
//! The channel's backlog is invisible, so this module counts, per
//! subscriber, the messages routed to it and not yet sent (or dropped).
//!
//! It sits in rmqtt's routing itself (the vendored `ForwardGate`): after the
//! ACL check and the trie walk, where a client's message is handed to its
//! subscribers, a publisher with a subscriber that has three quarters of its
//! queue limit pending (at most `HIGH_WATER`) is held: its session handles
//! only acks and pings from it (other packets wait, at most 64 KiB, then it
//! stops reading) until there is room, while it goes on delivering to it;
//! each message that leaves lets one held publisher go. TCP pushes back, and
//! memory stays bounded well below the queue limits. Counting where rmqtt
//! hands the message over sees exactly what it routes: denied messages are
//! not counted, the member a shared group picked is, and nothing walks the
//! topic trie a second time. Because a held session keeps delivering and
//! reading acks, clients that publish to each other's subscriptions (or to
//! their own) never wait for each other.
//!
//! No subscriber can hold publishers for long, and none holds anyone while it
//! does not move:
//! - one that sent nothing for `STALL_ANY` (1 s) while a publisher waited for
//!   it is marked stalled and holds nobody from then on, until it sends
//!   again: its queue fills and what does not fit is dropped and reported
//!   (`onMessageDropped`), at routing once its backlog fills the queue;
//! - a wait is capped at `MAX_WAIT` in any case; past it the count is
//!   re-synchronised with the real queue and the queue's drop policy applies.
//!
//! QoS 0 is held too, but only by a subscriber that is draining: one that
//! sent nothing for `STALL` (100 ms) while congested is marked stalled, and
//! QoS 0 to it is routed as before (its queue drops what does not fit) until
//! it sends again. Once a stalled subscriber's backlog fills its queue,
//! further QoS 0 to it is dropped (and reported) at routing, instead of
//! waiting in rmqtt's unbounded channel for a socket that does not move. So
//! a live subscriber gets every message of a flood it can keep up with, and
//! a stopped one holds its publishers for 100 ms once. (At 20 ms, a
//! JavaScript subscriber whose socket was full was taken for stalled during
//! its own pauses once publishers were woken promptly.) Without QoS 0 flow
//! control, 16 publishers flooding one subscriber filled rmqtt's unbounded
//! session channel far faster than it drained: the broker grew to 1.9 GiB
//! and delivery fell to a third.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::types::{
  ClientId, DashMap, From, Id, MessageQueue, MessageQueueType, Publish, QoS, SubRelation,
};
use tokio::sync::Notify;

use crate::fork::{self, ForwardGate};

/// What `ForwardGate::hold` returns (futures' `BoxFuture`).
type Hold = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Longest a publisher is held back for one message.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How often a held publisher looks again, if not woken before.
const POLL: Duration = Duration::from_millis(1);
/// Most messages pending to one subscriber before its publishers are held,
/// whatever its queue limit: enough to keep a fast subscriber busy until
/// its publishers are woken, few enough that a flood does not wait in the
/// broker. Point-to-point QoS 1 4 KiB held at 750 (¾ of the default queue)
/// ran at 57,000 msgs/s, p50 0.5 s, 600 MB; at 64, 68,000-95,000 msgs/s,
/// p50 54-77 ms, 268-293 MB (32 and 128 measured within noise of 64).
const HIGH_WATER: usize = 64;
/// A congested subscriber that sends nothing for this long no longer holds
/// QoS 0 publishers (until it sends again).
const STALL: Duration = Duration::from_millis(100);
/// ... nor any publisher after this long. Long enough for a live subscriber
/// behind a slow link to acknowledge (its in-flight window is full until it
/// does), short enough that a subscriber that stopped costs others one pause.
const STALL_ANY: Duration = Duration::from_secs(1);
/// Runs before any other handler of the same events.
const PRIORITY: Priority = Priority::MAX;

/// Installs the flow control on a broker; the handle lets in-process
/// subscribers (`subscription.rs`) take part in it.
pub async fn register(scx: &ServerContext) -> FlowControl {
  let flow = FlowControl::default();
  if !fork::set_forward_gate(scx, Arc::new(flow.clone())) {
    log::warn!("flow control is already installed on this broker");
    return flow;
  }
  let r = scx.extends.hook_mgr().register();
  for typ in [
    Type::ClientConnected,
    Type::MessageDropped,
    Type::ClientDisconnected,
  ] {
    r.add_priority(typ, PRIORITY, Box::new(flow.clone())).await;
  }
  r.start().await;
  flow
}

/// Messages routed to each connected subscriber and not yet sent. Holds no
/// context or session (only the session's queue), so it adds no reference
/// cycle to the broker.
#[derive(Clone, Default)]
pub struct FlowControl {
  /// Keyed with rmqtt's hasher (ahash): each delivery looks its subscriber
  /// up two or three times, and SipHash showed in a fan-out profile.
  subscribers: Arc<DashMap<ClientId, Counters>>,
  /// How many subscribers have their high-water mark pending. While none
  /// does, `hold` need not look each matched subscriber up (a fan-out
  /// to 1,000 looked up 1,000 per message).
  congested: Arc<AtomicUsize>,
}

struct Counters {
  /// The connection these counts belong to: after a takeover, the old
  /// connection's disconnect must not remove the new one's.
  connection: Id,
  /// The subscriber's deliver queue (its capacity is the drop limit).
  queue: MessageQueueType,
  /// Publishers are held from this many pending messages (¾ of the queue
  /// limit, at most `HIGH_WATER`).
  high: usize,
  /// Wakes held publishers, one per message gone below `high`.
  room: Arc<Notify>,
  /// Routed to the subscriber and not yet sent or dropped.
  pending: AtomicUsize,
  /// Sent so far: a waiting QoS 0 publisher checks that it moves.
  sent: AtomicUsize,
  /// Sent nothing for `STALL` while a publisher waited for it.
  stalled: AtomicBool,
  /// Sent nothing for `STALL_ANY` while a publisher waited for it.
  stopped: AtomicBool,
}

impl Counters {
  fn new(connection: Id, queue: MessageQueueType) -> Self {
    let high = queue
      .capacity()
      .saturating_mul(3)
      .div_ceil(4)
      .clamp(1, HIGH_WATER);
    Counters {
      connection,
      queue,
      high,
      room: Arc::new(Notify::new()),
      pending: AtomicUsize::new(0),
      sent: AtomicUsize::new(0),
      stalled: AtomicBool::new(false),
      stopped: AtomicBool::new(false),
    }
  }

  fn congested(&self, qos0: bool) -> bool {
    self.pending.load(Ordering::Relaxed) >= self.high
      && !(qos0 && self.stalled.load(Ordering::Relaxed))
      && !self.stopped.load(Ordering::Relaxed)
  }
}

#[async_trait::async_trait]
impl Handler for FlowControl {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    match param {
      Parameter::ClientConnected(s) => {
        let counters = Counters::new(s.id.clone(), s.deliver_queue().clone());
        if let Some(old) = self.subscribers.insert(s.id.client_id.clone(), counters) {
          self.forget(&old);
        }
      }
      Parameter::MessageDropped(Some(to), ..) => self.count_gone(&to.client_id, 1, false),
      // Whatever was queued for a client that left is not coming out.
      Parameter::ClientDisconnected(s, _) => {
        if let Some((_, old)) = self
          .subscribers
          .remove_if(&s.id.client_id, |_, c| c.connection == s.id)
        {
          self.forget(&old);
        }
      }
      _ => {}
    }
    (true, acc)
  }
}

impl ForwardGate for FlowControl {
  fn hold(&self, from: &From, publish: &Publish, relations: &[SubRelation]) -> Option<Hold> {
    // Only clients are held: a message from the host (`publish()`), a will
    // or the system is not read from a socket that could push back.
    if !from.is_custom() {
      return None;
    }
    let qos0 = publish.qos == QoS::AtMostOnce;
    let publisher = &from.id.client_id;
    let subscribers = relations.iter().map(|(_, client_id, ..)| client_id);
    self.congested(qos0, subscribers)?;
    // Rare (a subscriber is congested): the wait owns what it looks at.
    let flow = self.clone();
    let publisher = publisher.clone();
    let subscribers: Vec<ClientId> = relations.iter().map(|(_, c, ..)| c.clone()).collect();
    Some(Box::pin(async move {
      flow.wait_for_room(&publisher, qos0, &subscribers).await
    }))
  }

  fn admit(&self, client_id: &ClientId, qos: QoS) -> bool {
    // Only connected subscribers are counted; an offline session's queue
    // is not drained until it comes back.
    let Some(c) = self.subscribers.get(client_id) else {
      return true;
    };
    // Counted either way: refused, it is reported as dropped at once.
    let pending = c.pending.fetch_add(1, Ordering::Relaxed);
    if pending + 1 == c.high {
      self.congested.fetch_add(1, Ordering::Relaxed);
    }
    // A message to a stalled subscriber whose backlog already fills its
    // queue would wait in rmqtt's unbounded channel until the socket moves
    // (or send_timeout closes it) and then be dropped by the queue: drop it
    // now. QoS 0 once it stalled, any QoS once it stopped.
    let stalled = if qos == QoS::AtMostOnce {
      &c.stalled
    } else {
      &c.stopped
    };
    !(stalled.load(Ordering::Relaxed) && pending >= c.queue.capacity())
  }

  fn delivered(&self, client_id: &ClientId) {
    self.count_gone(client_id, 1, true);
  }
}

impl FlowControl {
  /// Counts an in-process subscriber like a connected client (it has no
  /// connection, so no ClientConnected event). `capacity` plays its queue
  /// limit: what a subscriber that stopped may have pending before its
  /// messages are refused; `high` its high-water mark.
  pub fn track(&self, id: &Id, capacity: usize, high: usize) {
    let queue = Arc::new(MessageQueue::new(capacity));
    let mut counters = Counters::new(id.clone(), queue);
    counters.high = high.clamp(1, capacity);
    if let Some(old) = self.subscribers.insert(id.client_id.clone(), counters) {
      self.forget(&old);
    }
  }

  /// The in-process subscriber `id` is gone.
  pub fn untrack(&self, id: &Id) {
    if let Some((_, old)) = self
      .subscribers
      .remove_if(&id.client_id, |_, c| c.connection == *id)
    {
      self.forget(&old);
    }
  }

  /// One message to `client_id` is counted in (`ForwardGate::admit` for a
  /// message that did not come through routing, e.g. a retained one).
  pub fn count_in(&self, client_id: &ClientId, qos: QoS) {
    ForwardGate::admit(self, client_id, qos);
  }

  /// One message to `client_id` has been handled.
  pub fn count_out(&self, client_id: &ClientId) {
    self.count_gone(client_id, 1, true);
  }

  /// `n` messages to `client_id` have been handled: an in-process
  /// subscriber counts a batch at once (one map look-up, not one per
  /// message, on the JS thread).
  pub fn count_out_n(&self, client_id: &ClientId, n: usize) {
    if n > 0 {
      self.count_gone(client_id, n, true);
    }
  }

  fn count_gone(&self, client_id: &ClientId, n: usize, sent: bool) {
    if let Some(c) = self.subscribers.get(client_id) {
      // Saturating: retained and offline messages are sent without having
      // been counted on the way in.
      let Ok(before) = c
        .pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
          (v > 0).then(|| v.saturating_sub(n))
        })
      else {
        return count_sent(&c, n, sent);
      };
      let after = before.saturating_sub(n);
      // One out, one in: wake one held publisher per message that leaves
      // below the mark. Waking all at once let each of them in together,
      // past a small queue.
      if before >= c.high && after < c.high {
        self.congested.fetch_sub(1, Ordering::Relaxed);
      }
      for _ in after..before.min(c.high) {
        c.room.notify_one();
      }
      count_sent(&c, n, sent);
    }
  }

  async fn wait_for_room(&self, publisher: &ClientId, qos0: bool, subscribers: &[ClientId]) {
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    // The subscriber the message waits for, its sent count, and since when
    // that count has not moved.
    let mut progress: Option<(ClientId, usize, tokio::time::Instant)> = None;
    loop {
      let Some(client_id) = self.congested(qos0, subscribers.iter()) else {
        return;
      };
      if tokio::time::Instant::now() >= deadline {
        if !qos0 {
          log::warn!(
            "{publisher}: subscriber {client_id} stayed congested for {MAX_WAIT:?}; publishing anyway"
          );
          self.resync(&client_id);
        }
        return;
      }
      // One look at the subscriber's counters; the guard is dropped before
      // the wait below.
      let room = {
        let Some(c) = self.subscribers.get(&client_id) else {
          continue;
        };
        // A publisher waits only for a subscriber that drains; one that
        // sent nothing for `STALL` (QoS 0) or `STALL_ANY` sheds from now on.
        let sent = c.sent.load(Ordering::Relaxed);
        let now = tokio::time::Instant::now();
        match &progress {
          Some((id, n, _)) if *id == client_id && *n != sent => {
            progress = Some((client_id, sent, now))
          }
          Some((id, _, since)) if *id == client_id => {
            let still = now.duration_since(*since);
            if qos0 && still >= STALL {
              c.stalled.store(true, Ordering::Relaxed);
              continue;
            }
            if still >= STALL_ANY {
              log::info!("{publisher}: subscriber {client_id} sent nothing for {STALL_ANY:?}; no longer waiting for it");
              c.stalled.store(true, Ordering::Relaxed);
              c.stopped.store(true, Ordering::Relaxed);
              continue;
            }
          }
          _ => progress = Some((client_id, sent, now)),
        }
        c.room.clone()
      };
      // Registered before the second look, so a wake-up in between is kept.
      let woken = room.notified();
      tokio::pin!(woken);
      woken.as_mut().enable();
      if self.congested(qos0, subscribers.iter()).is_some() {
        let _ = tokio::time::timeout(POLL, woken).await;
      }
    }
  }

  /// A connected subscriber with its high-water mark pending that has not
  /// stopped; for a QoS 0 message, one that is not stalled.
  fn congested<'s>(
    &self,
    qos0: bool,
    mut subscribers: impl Iterator<Item = &'s ClientId>,
  ) -> Option<ClientId> {
    if self.congested.load(Ordering::Relaxed) == 0 {
      return None;
    }
    subscribers
      .find(|client_id| {
        self
          .subscribers
          .get(*client_id)
          .is_some_and(|c| c.congested(qos0))
      })
      .cloned()
  }

  /// After a long stall, trust the queue's real length again (a count can
  /// drift if rmqtt discards messages without reporting them).
  fn resync(&self, client_id: &ClientId) {
    if let Some(c) = self.subscribers.get(client_id) {
      let len = c.queue.len();
      let was = c.pending.swap(len, Ordering::Relaxed) >= c.high;
      match (was, len >= c.high) {
        (true, false) => self.congested.fetch_sub(1, Ordering::Relaxed),
        (false, true) => self.congested.fetch_add(1, Ordering::Relaxed),
        _ => 0,
      };
    }
  }

  /// A subscriber's counters leave the map: it no longer counts as
  /// congested. (Entries change only under the map's shard lock, so no
  /// count moves on them meanwhile.)
  fn forget(&self, old: &Counters) {
    if old.pending.load(Ordering::Relaxed) >= old.high {
      self.congested.fetch_sub(1, Ordering::Relaxed);
    }
  }
}

/// `n` messages left a subscriber; `sent`: to it (not dropped), which shows
/// it moves again.
fn count_sent(c: &Counters, n: usize, sent: bool) {
  if sent {
    c.sent.fetch_add(n, Ordering::Relaxed);
    for flag in [&c.stalled, &c.stopped] {
      if flag.load(Ordering::Relaxed) {
        flag.store(false, Ordering::Relaxed);
      }
    }
  }
}
