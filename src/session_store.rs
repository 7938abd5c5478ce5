//! Persistent sessions on disk with `storage: { path }`: 3.1.1 `clean: false`
//! and 5.0 Session Expiry > 0 sessions (subscriptions, queued and in-flight
//! messages, QoS 2 state) kept by rmqtt-session-storage's own sled store in
//! `path/sessions`, and rebuilt, offline, when the broker starts again.
//! Configured in code through rmqtt's plugin config map, never through files.

use std::path::Path;

use rmqtt::context::ServerContext;
use rmqtt::plugin::DynPluginResult;
use rmqtt::types::HashMap;

use crate::fork;

/// Name under which the session store plugin is registered.
const SESSIONS: &str = "rmqtt-session-storage";
/// The sessions' sled database, inside the store's directory.
const SESSIONS_DIR: &str = "sessions";

/// rmqtt's plugin config (name to TOML) that puts the sessions in `dir`.
pub fn plugin_configs(dir: &Path) -> HashMap<String, String> {
  let mut configs = HashMap::default();
  configs.insert(
    SESSIONS.to_string(),
    crate::storage::sled_toml(&dir.join(SESSIONS_DIR)),
  );
  configs
}

/// Opens the store and loads the sessions it holds; they are rebuilt when
/// the server runs (rmqtt's `BeforeStartup` hook), before it accepts.
pub async fn register(scx: &ServerContext) -> Result<(), String> {
  rmqtt_session_storage::register_named(scx, SESSIONS, true, false)
    .await
    .map_err(|e| format!("cannot open the session store: {e}"))
}

/// Waits (at most 2 s) for the writes under way (rmqtt-session-storage
/// 0002-tracked-writes), then lets go of every holder of the store but the
/// sessions themselves, which the broker's teardown drops.
pub async fn close(scx: &ServerContext) {
  let _ = scx.plugins.stop(SESSIONS).await;
  drop(fork::take_session_mgr(scx));
  let stub = || -> DynPluginResult { Box::pin(async { Err(anyhow::anyhow!("broker stopped")) }) };
  let _ = scx.plugins.register(SESSIONS, false, false, stub).await;
}
