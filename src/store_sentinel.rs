//! A key planted in each sled database when the store is created, looked
//! for when the store was not closed by `stop()` (no seal to compare): sled
//! recovers a crashed database to a prefix of its writes, and the sentinel
//! is the first of them, so a database that opens without it was wiped
//! (its log overwritten or truncated from the start, or deleted), not torn.
//!
//! In a tree of its own: rmqtt-storage's trees (and their counts) never see it.

use std::fs::{File, TryLockError};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TREE: &[u8] = b"embedded-mqtt-broker";
const KEY: &[u8] = b"sentinel";

/// Whether `name` is the sentinel's tree.
pub fn is_tree(name: &[u8]) -> bool {
  name == TREE
}

/// Plants the sentinel in a new database at `dir` (created).
pub fn plant(dir: &Path) -> Result<(), String> {
  let db = open(dir)?;
  let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
  tree
    .insert(KEY, b"1".as_slice())
    .map_err(|e| e.to_string())?;
  db.flush().map_err(|e| e.to_string())?;
  Ok(())
}

/// Whether the database at `dir` still holds its sentinel.
pub fn present(dir: &Path) -> Result<bool, String> {
  let db = open(dir)?;
  let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
  tree.contains_key(KEY).map_err(|e| e.to_string())
}

/// How long an open waits for sled to let go of the database, and a close
/// for it to do so.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A database the broker opens itself, outside rmqtt-storage, with
/// rmqtt-storage's settings that sled keeps in the database (its defaults).
///
/// sled holds the database's file locked until the last of its pool threads
/// lets go of it, which may be after the handle is dropped (a write begun
/// before). The next open of that database, ours or rmqtt-storage's at
/// `start()`, then fails with "could not acquire lock" (a CI run did, right
/// after `plant`). So an open waits for the lock, and a drop waits until it
/// is free. The store itself is locked for one broker (`storage.rs`), so the
/// holder can only be this broker's own closing handle.
pub(crate) struct Database {
  db: Option<sled::Db>,
  dir: PathBuf,
}

/// Opens the database at `dir`.
pub(crate) fn open(dir: &Path) -> Result<Database, String> {
  wait_closed(dir);
  let db = sled::Config::default()
    .path(dir)
    .cache_capacity(1 << 20)
    .open()
    .map_err(|e| e.to_string())?;
  Ok(Database {
    db: Some(db),
    dir: dir.to_path_buf(),
  })
}

impl Deref for Database {
  type Target = sled::Db;
  fn deref(&self) -> &sled::Db {
    // Some until dropped.
    self.db.as_ref().unwrap_or_else(|| unreachable!())
  }
}

impl Drop for Database {
  fn drop(&mut self) {
    drop(self.db.take());
    wait_closed(&self.dir);
  }
}

/// Waits, at most `CLOSE_WAIT`, until sled lets go of the database at `dir`.
fn wait_closed(dir: &Path) {
  let began = Instant::now();
  while still_open(dir) && began.elapsed() < CLOSE_WAIT {
    std::thread::sleep(Duration::from_millis(10));
  }
}

/// Whether sled still has the database at `dir` open: it holds its `db`
/// file locked (flock) while it does.
pub(crate) fn still_open(dir: &Path) -> bool {
  File::open(dir.join("db")).is_ok_and(|f| matches!(f.try_lock(), Err(TryLockError::WouldBlock)))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_database_is_seen_open_until_its_drop_returns() {
    let dir = std::env::temp_dir().join(format!("sentinel-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for round in 0..20u32 {
      let db = open(&dir).unwrap();
      assert!(still_open(&dir));
      db.insert(round.to_be_bytes(), &[7u8; 8192][..]).unwrap();
      db.flush().unwrap();
      drop(db);
      assert!(!still_open(&dir), "round {round}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
  }
}
