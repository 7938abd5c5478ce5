//! A store on disk that cannot be read whole is refused at `start()`, never
//! opened and silently emptied. The engines cannot tell on their own: sled
//! takes a damaged or truncated log for the torn tail of a crash and drops
//! it. So the store carries two files of ours:
//!
//! - `FORMAT`: the store's format version, written once the store is
//!   created. A newer version's store, or data without a marker, is refused.
//! - `SEAL`: written once the databases are closed by `stop()`: each of
//!   their files with its size and CRC-32. At the next `start()` every file
//!   must be there, unchanged, and no other; the seal is then removed, so a
//!   crash (kill -9) leaves none, and the engine's own recovery decides.
//!
//! Engine-neutral: a store names its databases (directories in the store),
//! so every store on disk (retained messages, sessions) uses the same check.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The store format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_HEADER: &str = "embedded-mqtt-broker store";
const SEAL_FILE: &str = "SEAL";
const SEAL_HEADER: &str = "seal 1";

/// How the store was left.
#[derive(Debug, PartialEq)]
pub enum Opened {
  /// No store yet: the caller creates its databases, then calls `created()`.
  New,
  /// Closed by `stop()`, every file as it was left.
  Sealed,
  /// Not closed by `stop()` (a crash, kill -9): nothing to compare, the
  /// engine's recovery decides.
  Unsealed,
}

/// Opens the store at `dir` (held locked by the caller) for a run: checks
/// the format marker and the seal, and removes the seal. The error names
/// `storage.path` and what is wrong.
pub fn open(dir: &Path, databases: &[&str]) -> Result<Opened, String> {
  let refuse = |what: String| {
    format!(
      "storage.path: \"{}\" {what}; the store was not opened, so nothing in it was lost",
      dir.display()
    )
  };
  match read_optional(&dir.join(FORMAT_FILE))
    .map_err(|e| refuse(format!("has an unreadable {FORMAT_FILE} file ({e})")))?
  {
    Some(text) => check_format(&text).map_err(refuse)?,
    None if databases.iter().any(|d| dir.join(d).exists()) => {
      return Err(refuse(format!(
        "holds store data but no {FORMAT_FILE} file (written by a pre-release version, or the \
         file was deleted): move the directory away to start with an empty store"
      )))
    }
    None => return Ok(Opened::New),
  }
  let seal_path = dir.join(SEAL_FILE);
  let Some(seal) = read_optional(&seal_path)
    .map_err(|e| refuse(format!("has an unreadable {SEAL_FILE} file ({e})")))?
  else {
    return Ok(Opened::Unsealed);
  };
  check_seal(dir, databases, &seal)
    .map_err(|what| refuse(format!("was damaged since it was closed: {what}")))?;
  std::fs::remove_file(&seal_path)
    .and_then(|()| sync_dir(dir))
    .map_err(|e| cannot_write(dir, e))?;
  Ok(Opened::Sealed)
}

/// Marks a new store (its databases created) with this version's format.
pub fn created(dir: &Path) -> Result<(), String> {
  let marker = format!("{FORMAT_HEADER}\nformat {FORMAT_VERSION}\n");
  write_atomic(dir, FORMAT_FILE, &marker).map_err(|e| cannot_write(dir, e))
}

fn cannot_write(dir: &Path, e: std::io::Error) -> String {
  format!("storage.path: cannot write in \"{}\": {e}", dir.display())
}

/// Records the files of the store's databases, closed by now, so that the
/// next `open()` finds them as they were left.
pub fn seal(dir: &Path, databases: &[&str]) -> std::io::Result<()> {
  let mut text = format!("{SEAL_HEADER}\n");
  for (name, entry) in scan(dir, databases)? {
    let _ = writeln!(text, "{:08x} {} {name}", entry.crc, entry.size);
  }
  write_atomic(dir, SEAL_FILE, &text)
}

fn check_format(text: &str) -> Result<(), String> {
  let mut lines = text.lines();
  let version = match (
    lines.next(),
    lines.next().and_then(|l| l.strip_prefix("format ")),
  ) {
    (Some(FORMAT_HEADER), Some(v)) => v.trim().parse::<u32>().ok(),
    _ => None,
  };
  match version {
    Some(FORMAT_VERSION) => Ok(()),
    Some(v) if v > FORMAT_VERSION => Err(format!(
      "is a store of format {v}, written by a newer version (this one reads format {FORMAT_VERSION})"
    )),
    Some(v) => Err(format!(
      "is a store of format {v}, which this version does not read (it reads format {FORMAT_VERSION})"
    )),
    None => Err(format!("has a {FORMAT_FILE} file that is not a store format marker")),
  }
}

/// What differs between the seal and the files: the first few differences.
fn check_seal(dir: &Path, databases: &[&str], seal: &str) -> Result<(), String> {
  let mut lines = seal.lines();
  let mut sealed = std::collections::BTreeMap::new();
  let damaged_seal = || format!("its {SEAL_FILE} file is damaged");
  if lines.next() != Some(SEAL_HEADER) {
    return Err(damaged_seal());
  }
  for line in lines {
    let mut parts = line.splitn(3, ' ');
    let parsed = match (parts.next(), parts.next(), parts.next()) {
      (Some(crc), Some(size), Some(name)) => u32::from_str_radix(crc, 16)
        .ok()
        .zip(size.parse::<u64>().ok())
        .map(|(crc, size)| (name.to_string(), Entry { crc, size })),
      _ => None,
    };
    let (name, entry) = parsed.ok_or_else(damaged_seal)?;
    sealed.insert(name, entry);
  }
  let found = scan(dir, databases).map_err(|e| format!("cannot read its files ({e})"))?;
  let mut problems = Vec::new();
  for (name, was) in &sealed {
    match found.get(name) {
      None => problems.push(format!("{name} is missing")),
      Some(now) if now.size < was.size => problems.push(format!(
        "{name} is truncated ({} of {} bytes)",
        now.size, was.size
      )),
      Some(now) if now.size != was.size => problems.push(format!(
        "{name} changed size ({} bytes, was {})",
        now.size, was.size
      )),
      Some(now) if now.crc != was.crc => {
        problems.push(format!("{name} is corrupted (its checksum changed)"))
      }
      Some(_) => {}
    }
  }
  for name in found.keys().filter(|n| !sealed.contains_key(*n)) {
    problems.push(format!("{name} appeared"));
  }
  if problems.is_empty() {
    return Ok(());
  }
  let more = problems.len().saturating_sub(3);
  problems.truncate(3);
  let mut what = problems.join(", ");
  if more > 0 {
    let _ = write!(what, " and {more} more");
  }
  Err(what)
}

#[derive(Debug, PartialEq)]
struct Entry {
  crc: u32,
  size: u64,
}

/// Every file under the databases' directories, by path relative to `dir`
/// (with `/`), sorted.
fn scan(
  dir: &Path,
  databases: &[&str],
) -> std::io::Result<std::collections::BTreeMap<String, Entry>> {
  let mut files = std::collections::BTreeMap::new();
  let mut pending: Vec<PathBuf> = databases
    .iter()
    .map(|d| dir.join(d))
    .filter(|p| p.exists())
    .collect();
  while let Some(path) = pending.pop() {
    if path.is_dir() {
      for entry in std::fs::read_dir(&path)? {
        pending.push(entry?.path());
      }
      continue;
    }
    let name = path
      .strip_prefix(dir)
      .unwrap_or(&path)
      .components()
      .map(|c| c.as_os_str().to_string_lossy())
      .collect::<Vec<_>>()
      .join("/");
    files.insert(name, checksum(&path)?);
  }
  Ok(files)
}

/// Bytes of a file checksummed per task: a file larger than this is read by
/// several threads at once (`checksum`).
const CHUNK: u64 = 32 << 20;

/// The file's CRC-32 and size. A large file is read in chunks by up to
/// four threads and their CRCs combined: issue 33's 2 GiB store spent
/// 0.25-0.3 s of each `start()` and `stop()` here on one thread, mostly
/// copying from the page cache (perf: `_copy_to_iter`, 13% of a `start()`).
fn checksum(path: &Path) -> std::io::Result<Entry> {
  checksum_in_chunks(path, CHUNK)
}

fn checksum_in_chunks(path: &Path, chunk: u64) -> std::io::Result<Entry> {
  let file = File::open(path)?;
  let chunks = file.metadata()?.len().div_ceil(chunk).max(1);
  let threads = std::thread::available_parallelism()
    .map_or(1, |n| n.get())
    .min(4)
    .min(chunks as usize);
  let next = std::sync::atomic::AtomicU64::new(0);
  // Each thread returns the chunks it took, by index; combined in order.
  let mut parts = std::thread::scope(|scope| {
    let workers: Vec<_> = (0..threads)
      .map(|_| {
        scope.spawn(|| -> std::io::Result<Vec<_>> {
          let mut taken = Vec::new();
          loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= chunks {
              return Ok(taken);
            }
            taken.push((i, checksum_range(&file, i * chunk, chunk)?));
          }
        })
      })
      .collect();
    workers.into_iter().try_fold(Vec::new(), |mut all, w| {
      let taken = w
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("checksum thread panicked")))?;
      all.extend(taken);
      Ok::<_, std::io::Error>(all)
    })
  })?;
  parts.sort_unstable_by_key(|(i, _)| *i);
  let mut hasher = crc32fast::Hasher::new();
  let mut size = 0u64;
  for (_, (part, n)) in parts {
    hasher.combine(&part);
    size += n;
  }
  Ok(Entry {
    crc: hasher.finalize(),
    size,
  })
}

/// The CRC state of `len` bytes of `file` from `offset` (fewer at its end),
/// and how many there were.
fn checksum_range(file: &File, offset: u64, len: u64) -> std::io::Result<(crc32fast::Hasher, u64)> {
  let mut hasher = crc32fast::Hasher::new();
  let mut buf = vec![0u8; 1 << 16];
  let mut done = 0u64;
  while done < len {
    let want = buf.len().min((len - done) as usize);
    let n = read_at(file, &mut buf[..want], offset + done)?;
    if n == 0 {
      break;
    }
    hasher.update(&buf[..n]);
    done += n as u64;
  }
  Ok((hasher, done))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
  std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
  std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
  match std::fs::read_to_string(path) {
    Ok(text) => Ok(Some(text)),
    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
    Err(e) => Err(e),
  }
}

/// Writes `name` in `dir` whole or not at all (a crash leaves the old file
/// or the new one, never half of one).
fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
  let tmp = dir.join(format!("{name}.tmp"));
  let mut file = File::create(&tmp)?;
  file.write_all(text.as_bytes())?;
  file.sync_all()?;
  std::fs::rename(&tmp, dir.join(name))?;
  sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
  #[cfg(unix)]
  File::open(dir)?.sync_all()?;
  #[cfg(not(unix))]
  let _ = dir;
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  fn store() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
      "store-integrity-{}-{:?}",
      std::process::id(),
      std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db/sub")).unwrap();
    std::fs::write(dir.join("db/a"), b"hello").unwrap();
    std::fs::write(dir.join("db/sub/b"), vec![7u8; 100_000]).unwrap();
    dir
  }

  #[test]
  fn a_file_checksummed_in_chunks_has_the_crc_of_its_whole() {
    let dir = store();
    let path = dir.join("db/chunked");
    let data: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    for chunk in [1_000, 10_007, 1 << 20] {
      let entry = checksum_in_chunks(&path, chunk).unwrap();
      assert_eq!(
        (entry.crc, entry.size),
        (crc32fast::hash(&data), 10_007),
        "chunk {chunk}"
      );
    }
    std::fs::write(&path, b"").unwrap();
    let empty = checksum_in_chunks(&path, 1_000).unwrap();
    assert_eq!((empty.crc, empty.size), (crc32fast::hash(b""), 0));
    std::fs::remove_dir_all(&dir).unwrap();
  }

  #[test]
  fn a_sealed_store_reopens_and_a_changed_one_is_refused() {
    let dir = store();
    // Data without a marker is refused; an empty directory gets one.
    let err = open(&dir, &["db"]).unwrap_err();
    assert!(err.contains("no FORMAT file"), "{err}");
    assert_eq!(open(&dir, &["other"]), Ok(Opened::New));
    created(&dir).unwrap();
    seal(&dir, &["db"]).unwrap();
    assert_eq!(open(&dir, &["db"]), Ok(Opened::Sealed));
    assert!(!dir.join(SEAL_FILE).exists());
    // Unsealed (a crash): opens as it is.
    assert_eq!(open(&dir, &["db"]), Ok(Opened::Unsealed));

    seal(&dir, &["db"]).unwrap();
    std::fs::write(dir.join("db/sub/b"), vec![7u8; 10]).unwrap();
    std::fs::write(dir.join("db/c"), b"new").unwrap();
    let err = open(&dir, &["db"]).unwrap_err();
    assert!(
      err.contains("db/sub/b is truncated (10 of 100000 bytes), db/c appeared"),
      "{err}"
    );
    // Refused, so the seal stays: the next try is refused too.
    assert!(open(&dir, &["db"]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
  }

  #[test]
  fn format_markers() {
    assert!(check_format("embedded-mqtt-broker store\nformat 1\n").is_ok());
    let newer = check_format("embedded-mqtt-broker store\nformat 2\n").unwrap_err();
    assert!(newer.contains("newer version"), "{newer}");
    let junk = check_format("hello").unwrap_err();
    assert!(junk.contains("not a store format marker"), "{junk}");
  }
}
