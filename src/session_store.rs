//! Persistent sessions with `storage`: 3.1.1 `clean: false` and 5.0 Session
//! Expiry > 0 sessions (subscriptions, queued and in-flight messages, QoS 2
//! state) kept by rmqtt-session-storage's own store, in `path/sessions` (sled)
//! or under `<keyPrefix>:sessions` in Redis, and rebuilt, offline, when the
//! broker starts again. Configured in code through rmqtt's plugin config map,
//! never through files.

use rmqtt::context::ServerContext;
use rmqtt::plugin::DynPluginResult;
use rmqtt::types::HashMap;
use tokio::time::Instant;

use crate::fork;
use crate::storage::Store;

/// Name under which the session store plugin is registered.
const SESSIONS: &str = "rmqtt-session-storage";
/// The sessions' sled database, inside the store's directory.
pub const SESSIONS_DIR: &str = "sessions";

/// rmqtt's plugin config (name to TOML) that puts the sessions in `store`;
/// with `sync` (sled only), publishers' acknowledgements wait for their
/// flush (`storage_sync.rs`).
pub fn plugin_configs(store: &Store, sync: bool) -> HashMap<String, String> {
  let toml = match store {
    Store::Dir(dir) => format!(
      "sync = {sync}\n{}",
      crate::storage::sled_toml(&dir.join(SESSIONS_DIR))
    ),
    Store::Redis(redis) => redis.sessions_toml(),
  };
  let mut configs = HashMap::default();
  configs.insert(SESSIONS.to_string(), toml);
  configs
}

/// Opens the store and loads the sessions it holds; they are rebuilt when
/// the server runs (rmqtt's `BeforeStartup` hook), before it accepts.
pub async fn register(scx: &ServerContext) -> Result<(), String> {
  rmqtt_session_storage::register_named(scx, SESSIONS, true, false)
    .await
    .map_err(|e| format!("cannot open the session store: {e}"))
}

/// Closes the store for `stop()`: first every session takes what was routed
/// to it off its channel (an offline session writes each message to the
/// store as it takes it, rmqtt-session-storage 0002-tracked-writes), until
/// `deadline`; then the writes under way finish (at most 2 s more), and every
/// holder of the store but the sessions themselves, which the broker's
/// teardown drops, lets go of it.
pub async fn close(scx: &ServerContext, deadline: Instant) {
  let behind = channels_taken(scx, deadline).await;
  if behind > 0 {
    log::warn!(
      "stop: {behind} session(s) still had messages to write to the store when stop() had to go on; \
       those messages are lost"
    );
  }
  let _ = scx.plugins.stop(SESSIONS).await;
  drop(fork::take_session_mgr(scx));
  let stub = || -> DynPluginResult { Box::pin(async { Err(anyhow::anyhow!("broker stopped")) }) };
  let _ = scx.plugins.register(SESSIONS, false, false, stub).await;
}

/// Sends every session a barrier and waits until each has reached it (an
/// offline one drops it then, an online one answers), or until `deadline`.
/// Returns how many had not.
async fn channels_taken(scx: &ServerContext, deadline: Instant) -> usize {
  let mut waiting = Vec::new();
  for entry in scx.extends.shared().await.iter() {
    if let Some(passed) = entry.tx().as_ref().and_then(fork::barrier) {
      waiting.push(passed);
    }
  }
  let mut behind = 0;
  for passed in waiting {
    if tokio::time::timeout_at(deadline, passed).await.is_err() {
      behind += 1;
    }
  }
  behind
}
