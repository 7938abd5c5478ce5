//! Gives a store's disk space back once what it held is gone. sled 0.34
//! never shrinks its file: 1,000,000 messages through offline sessions left
//! the sessions' database at ~750 MiB after they were all consumed (its peak,
//! reused, but never returned). At `stop()`, a closed database that is
//! large and almost empty is copied into a new one, which then takes its
//! place; copying a few megabytes of live data takes milliseconds.
//!
//! The swap is two renames, `<db>` to `<db>.old` then `<db>.compact` to
//! `<db>`; `recover` at the next `start()` finishes or undoes one that a crash
//! interrupted: the old database stays the store until the new one is
//! complete and in its place.

use std::io;
use std::path::{Path, PathBuf};

use crate::store_sentinel;

/// Smallest database file worth compacting.
const MIN_FILE: u64 = 64 << 20;
/// Compacted only when the file is at least this many times its live data.
const SPARSENESS: u64 = 8;
/// Live data beyond which a database is not compacted at `stop()` (the
/// copy would make `stop()` slow): it is counted up to this much, then
/// given up.
const MAX_LIVE: u64 = 32 << 20;
const MAX_ENTRIES: usize = 100_000;

/// What a compaction did: the database's file size before and after.
#[derive(Debug, PartialEq)]
pub struct Compacted {
  pub before: u64,
  pub after: u64,
}

/// Compacts the closed database at `db` when its file is large and
/// mostly free space.
pub fn compact_if_sparse(db: &Path) -> io::Result<Option<Compacted>> {
  let before = {
    let old = store_sentinel::open(db).map_err(io::Error::other)?;
    let before = old.size_on_disk().map_err(io::Error::other)?;
    if before < MIN_FILE || !sparse(&old, before)? {
      return Ok(None);
    }
    let compact = side(db, "compact");
    remove_dir(&compact)?;
    let new = store_sentinel::open(&compact).map_err(io::Error::other)?;
    copy(&old, &new).map_err(io::Error::other)?;
    new.flush().map_err(io::Error::other)?;
    before
  };
  // Both closed (dropped): swap.
  let old = side(db, "old");
  remove_dir(&old)?;
  std::fs::rename(db, &old)?;
  std::fs::rename(side(db, "compact"), db)?;
  remove_dir(&old)?;
  // Not only for the size: opening and closing the swapped-in database is
  // also what writes its snapshot, as `checkpoint` does for the others.
  let after = store_sentinel::open(db)
    .and_then(|d| d.size_on_disk().map_err(|e| e.to_string()))
    .map_err(io::Error::other)?;
  Ok(Some(Compacted { before, after }))
}

/// Finishes or undoes a compaction of `db` that a crash interrupted: with
/// `<db>` in place, the leftovers go; without it, the old database comes
/// back (the new one may be incomplete).
pub fn recover(db: &Path) -> io::Result<()> {
  let old = side(db, "old");
  if !db.exists() && old.exists() {
    std::fs::rename(&old, db)?;
  }
  remove_dir(&old)?;
  remove_dir(&side(db, "compact"))
}

/// Whether `db`'s live data (keys and values) is under its file's size
/// divided by `SPARSENESS`, and small enough to copy at `stop()`.
fn sparse(db: &sled::Db, file: u64) -> io::Result<bool> {
  let limit = MAX_LIVE.min(file / SPARSENESS);
  let (mut live, mut entries) = (0u64, 0usize);
  for name in db.tree_names() {
    let tree = db.open_tree(name).map_err(io::Error::other)?;
    for kv in tree.iter() {
      let (k, v) = kv.map_err(io::Error::other)?;
      live += (k.len() + v.len()) as u64;
      entries += 1;
      if live > limit || entries > MAX_ENTRIES {
        return Ok(false);
      }
    }
  }
  Ok(true)
}

/// Copies every tree of `from` into `to`, the sentinel's first: a database
/// recovered after a crash holds a prefix of its writes (`store_sentinel`).
fn copy(from: &sled::Db, to: &sled::Db) -> sled::Result<()> {
  let mut names = from.tree_names();
  names.sort_by_key(|n| !store_sentinel::is_tree(n));
  for name in names {
    let (source, target) = (from.open_tree(&name)?, to.open_tree(&name)?);
    for kv in source.iter() {
      let (k, v) = kv?;
      target.insert(k, v)?;
    }
  }
  Ok(())
}

fn side(db: &Path, what: &str) -> PathBuf {
  let mut name = db.file_name().unwrap_or_default().to_os_string();
  name.push(format!(".{what}"));
  db.with_file_name(name)
}

fn remove_dir(dir: &Path) -> io::Result<()> {
  match std::fs::remove_dir_all(dir) {
    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
    _ => Ok(()),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("compaction-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db")
  }

  /// A database with its sentinel, `n` values of 8 KiB written in a tree,
  /// all but `keep` of them then removed.
  fn emptied(db: &Path, n: u32, keep: u32) {
    store_sentinel::plant(db).unwrap();
    let d = store_sentinel::open(db).unwrap();
    let t = d.open_tree("t").unwrap();
    for i in 0..n {
      t.insert(i.to_be_bytes(), &[7u8; 8192][..]).unwrap();
    }
    for i in keep..n {
      t.remove(i.to_be_bytes()).unwrap();
    }
    d.flush().unwrap();
  }

  #[test]
  fn an_emptied_database_is_compacted_and_keeps_what_is_left() {
    let db = temp("emptied");
    emptied(&db, 10_000, 10);
    let done = compact_if_sparse(&db).unwrap().expect("compacted");
    assert!(done.before >= MIN_FILE, "{done:?}");
    assert!(done.after < done.before / 10, "{done:?}");
    assert!(store_sentinel::present(&db).unwrap());
    let d = store_sentinel::open(&db).unwrap();
    let t = d.open_tree("t").unwrap();
    assert_eq!(t.len(), 10);
    assert_eq!(t.get(9u32.to_be_bytes()).unwrap().unwrap().len(), 8192);
    assert!(!side(&db, "old").exists() && !side(&db, "compact").exists());
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
  }

  #[test]
  fn a_full_or_small_database_is_left_alone() {
    let full = temp("full");
    emptied(&full, 10_000, 10_000);
    assert_eq!(compact_if_sparse(&full).unwrap(), None);
    assert_eq!(
      store_sentinel::open(&full)
        .unwrap()
        .open_tree("t")
        .unwrap()
        .len(),
      10_000
    );
    let small = temp("small");
    emptied(&small, 1_000, 0);
    assert_eq!(compact_if_sparse(&small).unwrap(), None);
    for db in [full, small] {
      std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    }
  }

  #[test]
  fn recover_undoes_a_swap_cut_short_and_clears_leftovers() {
    // Cut between the two renames: only `<db>.old` and an incomplete new one.
    let db = temp("cut");
    emptied(&db, 10, 10);
    std::fs::rename(&db, side(&db, "old")).unwrap();
    std::fs::create_dir_all(side(&db, "compact")).unwrap();
    recover(&db).unwrap();
    assert!(store_sentinel::present(&db).unwrap());
    assert!(!side(&db, "old").exists() && !side(&db, "compact").exists());
    // Cut after them: the new database is in place, the old one left over.
    std::fs::create_dir_all(side(&db, "old")).unwrap();
    recover(&db).unwrap();
    assert!(store_sentinel::present(&db).unwrap());
    assert!(!side(&db, "old").exists());
    std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
  }
}
