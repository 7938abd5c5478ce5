//! Decisions a hook allowed the broker to reuse (`cacheMs`), per client
//! connection, action and topic, so a repeated question does not cross into
//! JavaScript.
//!
//! Sharded by client (rmqtt's `DashMap`): publishes of different clients
//! from the broker's threads do not wait for one another.
//!
//! Bounded: at most `limit` entries per hook set (`maxCachedDecisions`).
//! A full cache first drops what has expired and then, if still full,
//! arbitrary entries down to 90% of the limit: eviction only costs a later
//! JavaScript call, and it runs once per tenth of the limit of inserts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use rmqtt::types::{DashMap, Id};

/// What was decided: the key's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
  Subscribe,
  Publish,
}

/// What tells two connections of one client id apart: when each was made
/// (ms) and from where.
type Connection = (i64, Option<std::net::SocketAddr>);

fn connection(id: &Id) -> Connection {
  (id.create_time, id.remote_addr)
}

pub struct DecisionCache<V> {
  limit: usize,
  clients: DashMap<ByteString, Client<V>>,
  /// Entries over all clients.
  len: AtomicUsize,
  /// Held while evicting, so only one thread sweeps.
  evicting: Mutex<()>,
}

struct Client<V> {
  /// The connection the entries belong to: a client that reconnected asks
  /// again, even before its disconnect was seen.
  connection: Connection,
  entries: HashMap<(Action, ByteString), (Instant, V)>,
}

impl<V: Clone> DecisionCache<V> {
  pub fn new(limit: usize) -> Self {
    DecisionCache {
      limit,
      clients: DashMap::default(),
      len: AtomicUsize::new(0),
      evicting: Mutex::new(()),
    }
  }

  /// The decision stored for this question, if it has not expired.
  pub fn get(&self, id: &Id, action: Action, topic: &ByteString) -> Option<V> {
    if self.len.load(Ordering::Relaxed) == 0 {
      return None;
    }
    let mut client = self.clients.get_mut(&id.client_id)?;
    if client.connection != connection(id) {
      return None;
    }
    let key = (action, topic.clone());
    let (until, value) = client.entries.get(&key)?;
    if *until > Instant::now() {
      return Some(value.clone());
    }
    client.entries.remove(&key);
    self.len.fetch_sub(1, Ordering::Relaxed);
    None
  }

  pub fn put(&self, id: &Id, action: Action, topic: &str, ttl: Duration, value: V) {
    if self.limit == 0 || ttl.is_zero() {
      return;
    }
    if self.len.load(Ordering::Relaxed) >= self.limit {
      self.evict(self.limit - self.limit / 10);
    }
    let mut client = self
      .clients
      .entry(id.client_id.clone())
      .or_insert_with(|| Client {
        connection: connection(id),
        entries: HashMap::new(),
      });
    if client.connection != connection(id) {
      self.len.fetch_sub(client.entries.len(), Ordering::Relaxed);
      client.entries.clear();
      client.connection = connection(id);
    }
    // A copy: the topic may be a slice of the packet's read buffer, which
    // a clone would keep alive as long as the entry.
    let topic = ByteString::from(topic);
    if client
      .entries
      .insert((action, topic), (Instant::now() + ttl, value))
      .is_none()
    {
      self.len.fetch_add(1, Ordering::Relaxed);
    }
  }

  /// Forgets a client's decisions (it disconnected).
  pub fn forget(&self, client_id: &str) {
    if self.len.load(Ordering::Relaxed) == 0 {
      return;
    }
    if let Some((_, c)) = self.clients.remove(client_id) {
      self.len.fetch_sub(c.entries.len(), Ordering::Relaxed);
    }
  }

  pub fn clear(&self) {
    self.clients.clear();
    self.len.store(0, Ordering::Relaxed);
  }

  pub fn len(&self) -> usize {
    self.len.load(Ordering::Relaxed)
  }

  /// Drops expired entries, then arbitrary ones, until at most `keep` remain.
  fn evict(&self, keep: usize) {
    let Ok(_one) = self.evicting.try_lock() else {
      return; // another thread is at it
    };
    let now = Instant::now();
    let mut excess = self.len.load(Ordering::Relaxed).saturating_sub(keep);
    self.clients.retain(|_, c| {
      let before = c.entries.len();
      c.entries.retain(|_, (until, _)| *until > now);
      let mut dropped = before - c.entries.len();
      if dropped < excess {
        let extra: Vec<_> = c.entries.keys().take(excess - dropped).cloned().collect();
        for k in extra {
          c.entries.remove(&k);
          dropped += 1;
        }
      }
      excess = excess.saturating_sub(dropped);
      !c.entries.is_empty()
    });
    // Recounted: also corrects what a `clear()` racing a `put()` left.
    let len = self.clients.iter().map(|c| c.entries.len()).sum();
    self.len.store(len, Ordering::Relaxed);
  }
}
