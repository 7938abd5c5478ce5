//! `storage: { redis }`: the broker's retained messages kept in a Redis
//! server, through rmqtt-retainer's own Redis backend, configured in code
//! per broker. Every key starts with `storage.keyPrefix` (default `mqtt`)
//! then the store's name (`mqtt:retained:...`), so brokers given the same
//! prefix share a store and others on the same Redis keep apart.
//!
//! The URL may hold a password: it is never shown. Messages and logs name
//! the server by host and port only (and `logging.rs` masks a password in
//! any URL a library logs).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use napi::Result;
use redis::aio::MultiplexedConnection;
use redis::IntoConnectionInfo;

use crate::error::invalid_arg;

/// `storage.keyPrefix` when not given.
const DEFAULT_PREFIX: &str = "mqtt";
const MAX_PREFIX: usize = 256;
/// How long `start()` waits for Redis to answer before refusing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a running broker checks that Redis answers.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A checked `storage.redis`.
#[derive(Clone)]
pub struct Redis {
  /// The URL as given (it may hold a password: never shown).
  url: String,
  /// What messages call the server: `redis://host:port/db`.
  shown: String,
  prefix: String,
}

impl std::fmt::Debug for Redis {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "Redis({}, prefix {:?})", self.shown, self.prefix)
  }
}

/// Checks `storage.redis` (a URL the Redis client takes) and
/// `storage.keyPrefix`.
pub fn check(url: &str, prefix: Option<&str>) -> Result<Redis> {
  let info = url.into_connection_info().map_err(|e| {
    // The client's reason without its kind ("<reason>- InvalidClientConfig");
    // a URL in it would lose its password (error.rs).
    let e = e.to_string();
    let why = e.rsplit_once("- ").map_or(e.as_str(), |(why, _)| why);
    invalid_arg(format!(
      "storage.redis: not a Redis URL (redis://[user:password@]host[:port][/db]): {why}"
    ))
  })?;
  let shown = match &info.addr {
    redis::ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
    addr => format!("redis://{addr}/{}", info.redis.db),
  };
  let prefix = match prefix {
    None => DEFAULT_PREFIX.to_string(),
    Some(p) if p.is_empty() || p.len() > MAX_PREFIX => {
      return Err(invalid_arg(format!(
        "storage.keyPrefix: must be 1 to {MAX_PREFIX} bytes long"
      )))
    }
    Some(p) => p.to_string(),
  };
  Ok(Redis {
    url: url.to_string(),
    shown,
    prefix,
  })
}

impl Redis {
  /// The rmqtt-retainer config (TOML) that keeps retained messages here.
  pub fn retainer_toml(&self) -> String {
    self.toml("retained")
  }

  /// The rmqtt-session-storage config (TOML) that keeps persistent sessions
  /// here (`session_store.rs`).
  pub fn sessions_toml(&self) -> String {
    self.toml("sessions")
  }

  /// An rmqtt-storage config (TOML, `[storage]` table) for the store `name`
  /// under the broker's key prefix.
  fn toml(&self, name: &str) -> String {
    // A JSON string is a valid TOML basic string (same escapes).
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
      "[storage]\ntype = \"redis\"\n\n[storage.redis]\nurl = {}\nprefix = {}\n",
      quote(&self.url),
      quote(&format!("{}:{name}", self.prefix))
    )
  }

  /// Whether Redis answers a PING within `CONNECT_TIMEOUT`; the error names
  /// `storage.redis` and the server (never the password).
  pub async fn reachable(&self) -> std::result::Result<(), String> {
    let answer = async { ping(&mut self.connect().await?).await };
    tokio::time::timeout(CONNECT_TIMEOUT, answer)
      .await
      .unwrap_or_else(|_| Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))
      .map_err(|why| format!("storage.redis: cannot reach Redis at {}: {why}", self.shown))
  }

  /// What every key of this broker's store starts with.
  pub fn prefix(&self) -> &str {
    &self.prefix
  }

  /// The server as messages name it: `redis://host:port/db`.
  pub fn shown(&self) -> &str {
    &self.shown
  }

  pub async fn connect(&self) -> std::result::Result<MultiplexedConnection, String> {
    let client = redis::Client::open(self.url.as_str()).map_err(reason)?;
    client
      .get_multiplexed_async_connection()
      .await
      .map_err(reason)
  }

  /// Watches Redis while the broker runs (on its runtime): each time it
  /// stops answering is logged and counted (`stats().storageOutages`), and
  /// so is its return. The retainer's own client reconnects by itself
  /// meanwhile.
  pub fn watch(&self, counters: Arc<crate::stats::Counters>) {
    let redis = self.clone();
    tokio::spawn(async move {
      let mut down_since: Option<tokio::time::Instant> = None;
      // One connection while Redis answers; a new one after a failure.
      let mut conn: Option<MultiplexedConnection> = None;
      loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let answer = tokio::time::timeout(WATCH_EVERY, async {
          let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(redis.connect().await?),
          };
          ping(c).await
        })
        .await
        .unwrap_or_else(|_| Err("no answer".into()));
        if answer.is_err() {
          conn = None;
        }
        match (answer, down_since) {
          (Err(why), None) => {
            counters.storage_outages.fetch_add(1, Ordering::Relaxed);
            down_since = Some(tokio::time::Instant::now());
            log::warn!(
              "storage.redis: Redis at {} does not answer ({why}): retained messages set now are \
               not stored, and new subscribers get none, until it is back; nor are the persistent \
               sessions' changes (subscriptions, messages queued for offline ones)",
              redis.shown
            );
          }
          (Ok(()), Some(since)) => {
            down_since = None;
            log::warn!(
              "storage.redis: Redis at {} answers again (after {:.1} s)",
              redis.shown,
              since.elapsed().as_secs_f64()
            );
          }
          _ => {}
        }
      }
    });
  }
}

async fn ping(conn: &mut MultiplexedConnection) -> std::result::Result<(), String> {
  redis::cmd("PING")
    .query_async::<String>(conn)
    .await
    .map(drop)
    .map_err(reason)
}

/// A Redis error as the client words it, without the URL.
fn reason(e: redis::RedisError) -> String {
  crate::error::redacted(e.to_string())
}
