//! `maxRetainedMessages` and `maxRetainedBytes`: bounds on all retained
//! messages together, enforced through the fork's `RetainQuota` (rmqtt
//! 0045-limits). Beyond them a retained message for a new topic is
//! refused: not stored, not routed, reported through `onMessageDropped`;
//! a client's QoS 1/2 PUBLISH gets 0x97 *Quota exceeded* (MQTT 5). Clearing
//! a retained message always works, and so does replacing one, unless the
//! replacement is larger and takes the total over `maxRetainedBytes`.
//!
//! rmqtt-retainer's own `max_retained_messages` is not used: past it, it
//! drops silently, replacements and deletions included.
//!
//! The retained store is the retainer's; this keeps its own account (topic,
//! bytes, expiry) of what was admitted, seeded at start from the store (on
//! disk or in Redis). Bytes are the topic's plus the payload's. The account
//! is also what `stats()` reports (`totals`): exact at once, where the
//! storage retainer's own count is a cached `len()` of its whole database.
//! Brokers sharing a Redis store each count what they found at start plus
//! what they stored since.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmqtt::context::ServerContext;
use rmqtt::extend::RetainQuota;

/// `maxRetainedBytes` when not given: a bound on the memory clients can
/// fill with retained messages (without one, any number of topics of up to
/// `maxPacketSize` each).
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Limits {
  pub max_messages: Option<usize>,
  pub max_bytes: Option<usize>,
}

struct Quota {
  limits: Limits,
  state: Mutex<State>,
}

#[derive(Default)]
struct State {
  topics: HashMap<String, Entry>,
  /// The sum of the entries' bytes, expired ones included until purged.
  bytes: usize,
  /// The part of `bytes` that is payload.
  payload: usize,
}

struct Entry {
  bytes: usize,
  expires: Option<Instant>,
}

impl State {
  /// The live entry's bytes, if the topic has one.
  fn live(&self, topic: &str, now: Instant) -> Option<usize> {
    self
      .topics
      .get(topic)
      .filter(|e| e.expires.is_none_or(|at| at > now))
      .map(|e| e.bytes)
  }

  /// Counts `topic`'s message of `payload_len` bytes, replacing any it had.
  fn insert(&mut self, topic: &str, payload_len: usize, expiry: Option<Duration>, now: Instant) {
    self.remove(topic);
    let size = topic.len() + payload_len;
    self.bytes += size;
    self.payload += payload_len;
    // As the retainer: no interval, or 0, is no expiry.
    let expires = expiry.filter(|d| !d.is_zero()).map(|d| now + d);
    let entry = Entry {
      bytes: size,
      expires,
    };
    self.topics.insert(topic.to_string(), entry);
  }

  fn remove(&mut self, topic: &str) {
    if let Some(e) = self.topics.remove(topic) {
      self.bytes -= e.bytes;
      self.payload -= e.bytes - topic.len();
    }
  }

  fn purge_expired(&mut self, now: Instant) {
    let before = self.topics.len();
    let (mut freed, mut payload) = (0, 0);
    self.topics.retain(|topic, e| {
      let keep = e.expires.is_none_or(|at| at > now);
      if !keep {
        freed += e.bytes;
        payload += e.bytes - topic.len();
      }
      keep
    });
    self.bytes -= freed;
    self.payload -= payload;
    if self.topics.len() != before {
      log::debug!("retained quota: {} expired", before - self.topics.len());
    }
  }
}

impl Quota {
  fn fits(&self, state: &State, old: Option<usize>, size: usize) -> bool {
    let count_ok = old.is_some()
      || self
        .limits
        .max_messages
        .is_none_or(|max| state.topics.len() < max);
    let bytes_ok = self.limits.max_bytes.is_none_or(|max| {
      // A replacement that does not grow always fits.
      old.is_some_and(|old| size <= old) || state.bytes - old.unwrap_or(0) + size <= max
    });
    count_ok && bytes_ok
  }
}

impl RetainQuota for Quota {
  fn admit(&self, topic: &str, payload_len: usize, expiry: Option<Duration>) -> bool {
    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
    if payload_len == 0 {
      state.remove(topic);
      return true;
    }
    let now = Instant::now();
    let size = topic.len() + payload_len;
    let mut old = state.live(topic, now);
    if !self.fits(&state, old, size) {
      // Expired entries are only looked for when they could make room.
      state.purge_expired(now);
      old = state.live(topic, now);
      if !self.fits(&state, old, size) {
        return false;
      }
    }
    state.insert(topic, payload_len, expiry, now);
    true
  }

  fn totals(&self) -> Option<(usize, usize)> {
    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
    state.purge_expired(Instant::now());
    Some((state.topics.len(), state.payload))
  }
}

/// Installs the quota, with what the store already holds.
pub async fn register(scx: &ServerContext, limits: Limits) {
  let mut state = State::default();
  let now = Instant::now();
  match scx.extends.retain().await.inventory().await {
    Ok(all) => {
      for (topic, payload_len, expiry) in all {
        state.insert(&topic, payload_len, expiry, now);
      }
    }
    Err(e) => {
      log::warn!("retained quota: cannot read the retained store, counting from empty: {e}")
    }
  }
  let quota = Quota {
    limits,
    state: Mutex::new(state),
  };
  if scx.extends.retain_quota.set(Arc::new(quota)).is_err() {
    log::warn!("the retained quota is already installed on this broker");
  }
}

/// Tells the quota a retained message was cleared without a publish
/// (`deleteRetained()`).
pub fn cleared(scx: &ServerContext, topic: &str) {
  if let Some(quota) = scx.extends.retain_quota.get() {
    quota.admit(topic, 0, None);
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn quota(max_messages: Option<usize>, max_bytes: Option<usize>) -> Quota {
    Quota {
      limits: Limits {
        max_messages,
        max_bytes,
      },
      state: Mutex::new(State::default()),
    }
  }

  #[test]
  fn a_new_topic_beyond_the_count_is_refused_a_replacement_or_a_clear_is_not() {
    let q = quota(Some(2), None);
    assert!(q.admit("a", 1, None));
    assert!(q.admit("b", 1, None));
    assert!(!q.admit("c", 1, None));
    assert!(q.admit("a", 100, None), "replacing");
    assert!(q.admit("b", 0, None), "clearing");
    assert!(q.admit("c", 1, None), "room after the clear");
  }

  #[test]
  fn bytes_count_topic_and_payload_and_only_a_growing_replacement_can_be_refused() {
    let q = quota(None, Some(10));
    assert!(q.admit("a", 4, None)); // 5
    assert!(q.admit("b", 4, None)); // 10
    assert!(!q.admit("c", 1, None));
    assert!(!q.admit("a", 5, None), "grows past the bound");
    assert!(q.admit("a", 1, None), "shrinks");
    assert!(q.admit("c", 2, None)); // 2 + 5 + 3 = 10
  }

  #[test]
  fn expired_messages_make_room() {
    let q = quota(Some(1), None);
    assert!(q.admit("a", 1, Some(Duration::from_millis(1))));
    std::thread::sleep(Duration::from_millis(5));
    assert!(q.admit("b", 1, None));
    assert!(!q.admit("c", 1, None));
  }
}
