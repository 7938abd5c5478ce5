//! Decisions a hook allowed the broker to reuse (`cacheMs`), per client
//! connection, action and topic, so a repeated question does not cross into
//! JavaScript.
//!
//! Bounded: at most `limit` entries per hook set (`maxCachedDecisions`).
//! A full cache first drops what has expired and then, if still full,
//! arbitrary entries down to 90% of the limit: eviction only costs a later
//! JavaScript call, and it runs once per tenth of the limit of inserts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use rmqtt::types::Id;

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
  state: Mutex<State<V>>,
}

struct State<V> {
  clients: HashMap<ByteString, Client<V>>,
  /// Entries over all clients.
  len: usize,
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
      state: Mutex::new(State {
        clients: HashMap::new(),
        len: 0,
      }),
    }
  }

  /// The decision stored for this question, if it has not expired.
  pub fn get(&self, id: &Id, action: Action, topic: &ByteString) -> Option<V> {
    if self.limit == 0 {
      return None;
    }
    let mut st = self.state.lock().ok()?;
    if st.len == 0 {
      return None;
    }
    let client = st.clients.get_mut(&id.client_id)?;
    if client.connection != connection(id) {
      return None;
    }
    let key = (action, topic.clone());
    let (until, value) = client.entries.get(&key)?;
    if *until > Instant::now() {
      return Some(value.clone());
    }
    client.entries.remove(&key);
    st.len -= 1;
    None
  }

  pub fn put(&self, id: &Id, action: Action, topic: ByteString, ttl: Duration, value: V) {
    if self.limit == 0 || ttl.is_zero() {
      return;
    }
    let Ok(mut st) = self.state.lock() else {
      return;
    };
    if st.len >= self.limit {
      st.evict(self.limit - self.limit / 10);
    }
    let st = &mut *st;
    let client = st
      .clients
      .entry(id.client_id.clone())
      .or_insert_with(|| Client {
        connection: connection(id),
        entries: HashMap::new(),
      });
    if client.connection != connection(id) {
      st.len -= client.entries.len();
      client.entries.clear();
      client.connection = connection(id);
    }
    if client
      .entries
      .insert((action, topic), (Instant::now() + ttl, value))
      .is_none()
    {
      st.len += 1;
    }
  }

  /// Forgets a client's decisions (it disconnected).
  pub fn forget(&self, client_id: &str) {
    if let Ok(mut st) = self.state.lock() {
      if let Some(c) = st.clients.remove(client_id) {
        st.len -= c.entries.len();
      }
    }
  }

  pub fn clear(&self) {
    if let Ok(mut st) = self.state.lock() {
      st.clients.clear();
      st.len = 0;
    }
  }

  pub fn len(&self) -> usize {
    self.state.lock().map(|s| s.len).unwrap_or(0)
  }
}

impl<V> State<V> {
  /// Drops expired entries, then arbitrary ones, until at most `keep` remain.
  fn evict(&mut self, keep: usize) {
    let now = Instant::now();
    let mut len = 0;
    for c in self.clients.values_mut() {
      c.entries.retain(|_, (until, _)| *until > now);
      len += c.entries.len();
    }
    let mut excess = len.saturating_sub(keep);
    for c in self.clients.values_mut() {
      if excess == 0 {
        break;
      }
      let drop: Vec<_> = c.entries.keys().take(excess).cloned().collect();
      for k in drop {
        c.entries.remove(&k);
        excess -= 1;
        len -= 1;
      }
    }
    self.clients.retain(|_, c| !c.entries.is_empty());
    self.len = len;
  }
}
