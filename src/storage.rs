//! `storage: { path }`: the broker's retained messages kept on disk, in
//! rmqtt-retainer's own embedded store (sled), so that they survive
//! `stop()`/`start()` and a process restart. Configured in code through
//! rmqtt's plugin config map, never through files.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use napi::Result;
use napi_derive::napi;
use rmqtt::types::HashMap;
use serde::Deserialize;

use crate::error::invalid_arg;

/// Where the broker keeps what must survive a restart.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct StorageConfig {
  /// Directory of the store; created if missing (its parent must exist).
  /// One running broker at a time may use it: another `start()` on it is
  /// refused.
  pub path: String,
}

/// A checked `storage` config: an existing, writable directory.
#[derive(Clone, Debug)]
pub struct Store {
  dir: PathBuf,
}

/// The store's directory held by one running broker: dropping it lets
/// another open the store.
#[derive(Debug)]
pub struct Lock {
  _file: File,
}

/// File in the store's directory that a running broker holds locked.
const LOCK_FILE: &str = "LOCK";
/// The retained messages' sled database, inside the store's directory.
const RETAINED_DIR: &str = "retained";
/// sled's page cache for each store (its default is 1 GiB, more than an
/// embedded broker should take).
const CACHE: &str = "32M";

/// Checks `storage.path`, creating the directory if its parent exists.
pub fn check(config: &StorageConfig) -> Result<Store> {
  let path = config.path.trim();
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
  Ok(Store { dir })
}

impl Store {
  /// Locks the store for this broker, or says who holds it.
  pub fn lock(&self) -> std::result::Result<Lock, String> {
    let at = self.dir.join(LOCK_FILE);
    let file = File::options()
      .create(true)
      .truncate(false)
      .write(true)
      .open(&at)
      .map_err(|e| {
        format!(
          "storage.path: cannot write in \"{}\": {e}",
          self.dir.display()
        )
      })?;
    match file.try_lock() {
      Ok(()) => Ok(Lock { _file: file }),
      Err(TryLockError::WouldBlock) => Err(format!(
        "storage.path: \"{}\" is in use by another running broker (one store, one broker)",
        self.dir.display()
      )),
      Err(TryLockError::Error(e)) => Err(format!(
        "storage.path: cannot lock \"{}\": {e}",
        self.dir.display()
      )),
    }
  }

  /// The store's directory.
  pub fn dir(&self) -> &Path {
    &self.dir
  }

  /// rmqtt's plugin configs (name to TOML) that put the plugins' data here.
  pub fn plugin_configs(&self, retainer: &str) -> HashMap<String, String> {
    let mut configs = HashMap::default();
    configs.insert(
      retainer.to_string(),
      sled_toml(&self.dir.join(RETAINED_DIR)),
    );
    configs
  }
}

/// An rmqtt-storage plugin config (TOML) that keeps its data in a sled
/// database at `dir`.
pub fn sled_toml(dir: &Path) -> String {
  // A JSON string is a valid TOML basic string (same escapes).
  let path = serde_json::to_string(&dir.to_string_lossy()).unwrap_or_default();
  format!(
    "[storage]\ntype = \"sled\"\n\n[storage.sled]\npath = {path}\ncache_capacity = \"{CACHE}\"\n"
  )
}
