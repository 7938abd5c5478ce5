//! `storage: { path }`: the broker's retained messages kept on disk, in
//! rmqtt-retainer's own embedded store (sled), so that they survive
//! `stop()`/`start()` and a process restart. Configured in code through
//! rmqtt's plugin config map, never through files.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use napi::Result;
use napi_derive::napi;
use rmqtt::context::{CircuitBreakerConfig, CountBasedWindowConfig, WindowConfig};
use rmqtt::types::HashMap;
use serde::Deserialize;

use crate::error::invalid_arg;
use crate::store_integrity::Opened;

/// Where the broker keeps what must survive a restart.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct StorageConfig {
  /// Directory of the store; created if missing (its parent must exist).
  /// One running broker at a time may use it: another `start()` on it is
  /// refused. Give `path` or `redis`, not both.
  pub path: Option<String>,
  /// A Redis server to keep the store in instead,
  /// `redis://[user:password@]host[:port][/db]` (the password is never
  /// shown in errors or logs).
  pub redis: Option<String>,
  /// With `redis`: what every key of this broker's store starts with
  /// (default `mqtt`). One running broker per prefix: another `start()` on
  /// it is refused while one runs; a broker started later gets its store.
  pub key_prefix: Option<String>,
  /// With `path`: `'interval'` (default) acknowledges a publisher once its
  /// message is routed, and a kill -9 may lose what was acknowledged in
  /// the last ~0.5 s; `'always'` acknowledges a QoS 1/2 PUBLISH only once
  /// the offline persistent sessions it was routed to have it on disk.
  #[napi(ts_type = "'always' | 'interval'")]
  pub sync: Option<String>,
}

/// A checked `storage` config: an existing, writable directory, or a Redis
/// server (`storage_redis.rs`).
#[derive(Clone, Debug)]
pub enum Store {
  Dir(PathBuf),
  Redis(crate::storage_redis::Redis),
}

/// The store's directory held by one running broker: dropping it lets
/// another open the store.
#[derive(Debug)]
pub struct Lock {
  _file: File,
  dir: PathBuf,
}

/// How long the seal waits for the databases to be closed by their engine.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// File in the store's directory that a running broker holds locked.
const LOCK_FILE: &str = "LOCK";
/// The retained messages' sled database, inside the store's directory.
const RETAINED_DIR: &str = "retained";
/// The databases in the store's directory, checked at `start()` and sealed
/// at `stop()` (`store_integrity.rs`).
const DATABASES: &[&str] = &[RETAINED_DIR, crate::session_store::SESSIONS_DIR];
/// sled's page cache for each database (its default is 1 GiB, more than an
/// embedded broker should take).
const CACHE: &str = "32M";

/// Checks `storage`: `path` (creating the directory if its parent exists)
/// or `redis`.
pub fn check(config: &StorageConfig) -> Result<Store> {
  let path = match (&config.path, &config.redis) {
    (Some(_), Some(_)) => {
      return Err(invalid_arg(
        "storage: give either path (a directory) or redis (a server), not both",
      ))
    }
    (None, None) => {
      return Err(invalid_arg(
        "storage: give path (a directory) or redis (a server)",
      ))
    }
    (None, Some(url)) => {
      return crate::storage_redis::check(url, config.key_prefix.as_deref()).map(Store::Redis)
    }
    (Some(_), None) if config.key_prefix.is_some() => {
      return Err(invalid_arg("storage.keyPrefix: only with storage.redis"))
    }
    (Some(path), None) => path.trim(),
  };
  if path.is_empty() {
    return Err(invalid_arg("storage.path: must not be empty"));
  }
  let dir = Path::new(path);
  if !dir.exists() {
    let parent = match dir.parent() {
      Some(p) if p.as_os_str().is_empty() => Path::new("."),
      Some(p) => p,
      None => dir,
    };
    if !parent.is_dir() {
      return Err(invalid_arg(format!(
        "storage.path: \"{path}\" does not exist, nor does its parent directory"
      )));
    }
    std::fs::create_dir(dir).map_err(|e| {
      invalid_arg(format!(
        "storage.path: cannot create the directory \"{path}\": {e}"
      ))
    })?;
  } else if !dir.is_dir() {
    return Err(invalid_arg(format!(
      "storage.path: \"{path}\" is not a directory"
    )));
  }
  let dir = dir
    .canonicalize()
    .map_err(|e| invalid_arg(format!("storage.path: cannot resolve \"{path}\": {e}")))?;
  Ok(Store::Dir(dir))
}

impl Store {
  /// Locks a store on disk for this broker, or says who holds it (Redis
  /// takes no lock: brokers may share it).
  pub fn lock(&self) -> std::result::Result<Option<Lock>, String> {
    match self {
      Store::Dir(dir) => lock(dir).map(Some),
      Store::Redis(_) => Ok(None),
    }
  }

  /// rmqtt's plugin configs (name to TOML) that put the plugins' data here.
  fn retainer_storage_toml(&self) -> String {
    match self {
      Store::Dir(dir) => sled_toml(&dir.join(RETAINED_DIR)),
      Store::Redis(redis) => redis.retainer_toml(),
    }
  }
}

/// rmqtt-retainer's config, also for a broker without storage (in memory):
/// where it stores, and no payload cap of its own. Its default cap (1 MiB)
/// turned a bigger retained message into a plain one, silently, on a
/// listener whose maxPacketSize let it in; `maxPacketSize` and
/// `maxRetainedBytes` are the limits (256 MiB is above MQTT's largest packet).
pub fn retainer_plugin_config(store: Option<&Store>, retainer: &str) -> HashMap<String, String> {
  // Top-level keys come before the `[storage]` table in TOML.
  let mut toml = String::from("max_payload_size = \"256M\"\n");
  if let Some(store) = store {
    toml.push_str(&store.retainer_storage_toml());
  }
  let mut configs = HashMap::default();
  configs.insert(retainer.to_string(), toml);
  configs
}

fn lock(dir: &Path) -> std::result::Result<Lock, String> {
  let at = dir.join(LOCK_FILE);
  let file = File::options()
    .create(true)
    .truncate(false)
    .write(true)
    .open(&at)
    .map_err(|e| format!("storage.path: cannot write in \"{}\": {e}", dir.display()))?;
  match file.try_lock() {
    Ok(()) => {
      for db in DATABASES {
        crate::store_compaction::recover(&dir.join(db)).map_err(|e| {
          format!(
            "storage.path: cannot finish compacting \"{}\": {e}",
            dir.join(db).display()
          )
        })?;
      }
      check_databases(dir, crate::store_integrity::open(dir, DATABASES)?)?;
      Ok(Lock {
        _file: file,
        dir: dir.to_path_buf(),
      })
    }
    Err(TryLockError::WouldBlock) => Err(format!(
      "storage.path: \"{}\" is in use by another running broker (one store, one broker)",
      dir.display()
    )),
    Err(TryLockError::Error(e)) => Err(format!(
      "storage.path: cannot lock \"{}\": {e}",
      dir.display()
    )),
  }
}

/// A new store gets its databases, each with a sentinel, then its format
/// marker; one not closed by `stop()` must still hold its sentinels
/// (`store_sentinel.rs`).
fn check_databases(dir: &Path, opened: Opened) -> std::result::Result<(), String> {
  let refuse = |what: String| {
    format!(
      "storage.path: \"{}\" {what}; the store was not opened, so nothing in it was lost",
      dir.display()
    )
  };
  match opened {
    Opened::Sealed => Ok(()),
    Opened::New => {
      for db in DATABASES {
        let at = dir.join(db);
        crate::store_sentinel::plant(&at)
          .map_err(|e| format!("storage.path: cannot create \"{}\": {e}", at.display()))?;
      }
      crate::store_integrity::created(dir)
    }
    Opened::Unsealed => {
      for db in DATABASES {
        let at = dir.join(db);
        let lost = |how: &str| {
          refuse(format!(
            "lost its database {db}: it was not closed by stop(), and {db} {how}"
          ))
        };
        if !at.is_dir() {
          return Err(lost("is missing"));
        }
        match crate::store_sentinel::present(&at) {
          Ok(true) => {}
          Ok(false) => return Err(lost("opens empty (overwritten or truncated)")),
          Err(e) => return Err(lost(&format!("cannot be opened ({e})"))),
        }
      }
      Ok(())
    }
  }
}

/// An rmqtt-storage plugin config (TOML) that keeps its data in a sled
/// database at `at`.
pub fn sled_toml(at: &Path) -> String {
  // A JSON string is a valid TOML basic string (same escapes).
  let path = serde_json::to_string(&at.to_string_lossy()).unwrap_or_default();
  format!(
    "[storage]\ntype = \"sled\"\n\n[storage.sled]\npath = {path}\ncache_capacity = \"{CACHE}\"\n"
  )
}

impl Lock {
  /// Records the store's files for the next `start()` to check; only once
  /// its databases are closed, and only while it is still locked.
  pub fn seal(&self) {
    // The engine's own thread may still finish a command taken before the
    // broker went down (a long read or removal); it closes the database
    // right after.
    let began = std::time::Instant::now();
    let open = || {
      DATABASES
        .iter()
        .find(|db| crate::store_sentinel::still_open(&self.dir.join(db)))
    };
    while open().is_some() && began.elapsed() < CLOSE_WAIT {
      std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let why = match open() {
      // A task that outlived stop() still holds it: it may change after a
      // seal, which the next start() would take for damage.
      Some(db) => format!("its database {db} is still open"),
      None => match checkpoint(&self.dir)
        .and_then(|()| crate::store_integrity::seal(&self.dir, DATABASES))
      {
        Ok(()) => return,
        Err(e) => e.to_string(),
      },
    };
    log::warn!(
      "stop: cannot seal the store \"{}\" ({why}); the next start() checks only its sentinels",
      self.dir.display()
    );
  }
}

/// Opens each closed database once more, which makes sled write its
/// snapshot: sled 0.34 writes it only when it opens a database, and replays
/// at the next open every log segment written since (issue 33's store, 2
/// GiB written in one run: 1.4-2.0 s of `start()`; 50-80 ms once reopened).
/// So the replay moves from the next `start()` to `stop()`, which has the
/// files hot in the page cache. After a crash the replay stays at `start()`
/// (`store_sentinel::present` opens the database first). A database left
/// large and almost empty is compacted then (`store_compaction.rs`).
fn checkpoint(dir: &Path) -> std::io::Result<()> {
  for db in DATABASES {
    let began = std::time::Instant::now();
    match crate::store_compaction::compact_if_sparse(&dir.join(db))? {
      Some(c) => log::info!(
        "stop: {db} compacted from {:.1} to {:.1} MiB in {:?}",
        c.before as f64 / 1048576.0,
        c.after as f64 / 1048576.0,
        began.elapsed()
      ),
      None => log::debug!(
        "stop: {db} reopened for its snapshot in {:?}",
        began.elapsed()
      ),
    }
  }
  Ok(())
}

/// The store's circuit breaker (it stops calling a store that keeps
/// failing): rmqtt's, over the last 20 calls rather than its default of the
/// last 45 s. That default walks every call of the window on each call: with
/// 100,000 retained messages read at `start()`, 40% of the time went there.
pub fn circuit_breaker() -> CircuitBreakerConfig {
  CircuitBreakerConfig {
    window: WindowConfig::CountBased(CountBasedWindowConfig::default()),
    ..CircuitBreakerConfig::default()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// The log position of a database's newest snapshot (`snap.<lsn>`), 0
  /// when it has none (sled writes none when it creates a database).
  fn snapshot_lsn(db: &Path) -> u64 {
    std::fs::read_dir(db)
      .unwrap()
      .filter_map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
      })
      .max()
      .unwrap_or(0)
  }

  #[test]
  fn a_checkpoint_moves_each_snapshot_past_the_writes() {
    let dir = std::env::temp_dir().join(format!("storage-checkpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut written = Vec::new();
    for name in DATABASES {
      let db = sled::open(dir.join(name)).unwrap();
      for i in 0..10_000u32 {
        db.insert(i.to_be_bytes(), &[0u8; 64][..]).unwrap();
      }
      db.flush().unwrap();
      drop(db);
      written.push(snapshot_lsn(&dir.join(name)));
    }
    checkpoint(&dir).unwrap();
    for (name, before) in DATABASES.iter().zip(written) {
      let after = snapshot_lsn(&dir.join(name));
      // 10,000 inserts of 64 B: far more than a megabyte of log.
      assert!(
        after > before + 640_000,
        "{name}: snapshot at {after}, was {before}"
      );
    }
    std::fs::remove_dir_all(&dir).unwrap();
  }
}
