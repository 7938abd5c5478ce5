//! A key planted in each sled database when the store is created, looked
//! for when the store was not closed by `stop()` (no seal to compare): sled
//! recovers a crashed database to a prefix of its writes, and the sentinel
//! is the first of them, so a database that opens without it was wiped
//! (its log overwritten or truncated from the start, or deleted), not torn.
//!
//! In a tree of its own: rmqtt-storage's trees (and their counts) never see it.

use std::path::Path;

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

/// The database, opened with rmqtt-storage's settings that sled keeps in
/// the database (its defaults), and closed when dropped.
pub(crate) fn open(dir: &Path) -> Result<sled::Db, String> {
  sled::Config::default()
    .path(dir)
    .cache_capacity(1 << 20)
    .open()
    .map_err(|e| e.to_string())
}
