//! Persistent sessions with `storage`: 3.1.1 `clean: false` and 5.0 Session
//! Expiry > 0 sessions (subscriptions, queued and in-flight messages, QoS 2
//! state) kept by rmqtt-session-storage's own store, in `path/sessions` (sled)
//! or under `<keyPrefix>:sessions` in Redis, and rebuilt, offline, when the
//! broker starts again. Configured in code through rmqtt's plugin config map,
//! never through files.

use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::plugin::DynPluginResult;
use rmqtt::types::HashMap;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
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

/// How long the store may go without moving (a session reaching its
/// barrier, a background write ending) before `stop()` gives up on what it
/// still has to write. It is waited for as long as it moves, not for a fixed
/// time: an offline session writes each message routed to it (~14,000/s),
/// one going offline writes its whole queue, and a resumed one's stored
/// queue is removed in one write (sled: ~70,000 removals/s, a 200,000-deep
/// queue ~3 s, more on a busy machine). A store closed under its writes stays
/// locked until they end (the next `start()` refused) and loses them with
/// the process.
const WRITES_STALL: Duration = Duration::from_secs(10);
/// What the plugin's own `stop()` may take once the writes are done (it
/// waits for them up to 2 s itself, then removes its hooks).
const PLUGIN_STOP: Duration = Duration::from_secs(3);
/// How often the writes are looked at.
const POLL: Duration = Duration::from_millis(20);

/// Closes the store for `stop()` (see `close_store`), on `runtime`: bounded
/// by `deadline`, or later while the store moves. Whether it closed in time.
pub async fn close(runtime: &Handle, scx: &ServerContext, deadline: Instant) -> bool {
  let (moved_tx, mut moved) = watch::channel(None);
  let mut closing = runtime.spawn({
    let scx = scx.clone();
    async move { close_store(&scx, deadline, moved_tx).await }
  });
  loop {
    let until = match *moved.borrow_and_update() {
      Some(moved) => deadline.max(moved + WRITES_STALL + PLUGIN_STOP),
      None => deadline,
    };
    tokio::select! {
      closed = &mut closing => return closed.is_ok(),
      changed = moved.changed() => {
        if changed.is_err() {
          // The task is ending: its result says how.
          return tokio::time::timeout_at(until, closing).await.is_ok_and(|c| c.is_ok());
        }
      }
      () = tokio::time::sleep_until(until) => return false,
    }
  }
}

/// First every session takes what was routed to it off its channel (an
/// offline session writes each message to the store as it takes it,
/// rmqtt-session-storage 0002-tracked-writes; one going offline writes its
/// queue first, 0010-queue-kept-offline), until `deadline`; past it, and
/// until the writes under way have ended, for as long as the store moves.
/// Then every holder of the store but the sessions themselves, which the
/// broker's teardown drops, lets go of it. `moved`: when the store was last
/// seen to move.
async fn close_store(
  scx: &ServerContext,
  deadline: Instant,
  moved: watch::Sender<Option<Instant>>,
) {
  // Alive: the caller's bound is now the store's progress (and `deadline`).
  moved.send_replace(Some(Instant::now()));
  let mut behind = channels_taken(scx, deadline).await;
  if let Some((sessions, writes)) = writes_ended(scx, &mut behind, &moved).await {
    log::warn!(
      "stop: the session store made no progress for {} s, with {sessions} session(s) still to write \
       what was routed to them and {writes} write(s) under way; stop() goes on without them, those \
       messages are lost",
      WRITES_STALL.as_secs()
    );
  }
  let _ = scx.plugins.stop(SESSIONS).await;
  drop(fork::take_session_mgr(scx));
  let stub = || -> DynPluginResult { Box::pin(async { Err(anyhow::anyhow!("broker stopped")) }) };
  let _ = scx.plugins.register(SESSIONS, false, false, stub).await;
}

/// Sends every session a barrier and waits until each has reached it (an
/// offline one drops it then, an online one answers), or until `deadline`.
/// Returns the barriers not reached by then.
async fn channels_taken(scx: &ServerContext, deadline: Instant) -> Vec<oneshot::Receiver<()>> {
  let mut waiting = Vec::new();
  for entry in scx.extends.shared().await.iter() {
    if let Some(passed) = entry.tx().as_ref().and_then(fork::barrier) {
      waiting.push(passed);
    }
  }
  let mut behind = Vec::new();
  for mut passed in waiting {
    if tokio::time::timeout_at(deadline, &mut passed)
      .await
      .is_err()
    {
      behind.push(passed);
    }
  }
  behind
}

/// Waits until every barrier of `behind` is reached and the plugin's
/// background writes have ended, as long as the store moves: a barrier
/// reached or a write ended at least every `WRITES_STALL`
/// (rmqtt-session-storage 0009-write-progress answers how many writes are
/// under way and have ended). `None` once all is done; otherwise the
/// sessions and the writes left when the store stalled.
async fn writes_ended(
  scx: &ServerContext,
  behind: &mut Vec<oneshot::Receiver<()>>,
  moved: &watch::Sender<Option<Instant>>,
) -> Option<(usize, u64)> {
  // The first look counts as a move: the window starts there.
  let mut last = None;
  let mut since = Instant::now();
  loop {
    behind.retain_mut(|b| matches!(b.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
    // Not the fork's plugin, or not running: no writes to wait for.
    let (pending, ended) = match scx
      .plugins
      .send(SESSIONS, serde_json::json!("writes"))
      .await
    {
      Ok(answer) => (
        answer["pending"].as_u64().unwrap_or(0),
        answer["ended"].as_u64(),
      ),
      Err(_) => (0, None),
    };
    if pending == 0 && behind.is_empty() {
      return None;
    }
    let now = (behind.len(), ended);
    if Some(now) != last {
      last = Some(now);
      since = Instant::now();
      moved.send_replace(Some(since));
    } else if since.elapsed() >= WRITES_STALL {
      return Some((behind.len(), pending));
    }
    tokio::time::sleep(POLL).await;
  }
}
