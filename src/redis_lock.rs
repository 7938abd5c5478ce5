//! One running broker per Redis key prefix: with `storage: { redis }` a
//! broker holds the key `<keyPrefix>:lock` while it runs, as `path/LOCK`
//! does on disk. Two brokers sharing a session store would each rebuild the
//! other's live sessions as offline ones and write the same keys.
//!
//! Redis has no lock that dies with its holder, so the key has a TTL that
//! the running broker renews; `stop()` deletes it. A broker that ended
//! without `stop()` (kill -9, a crash) holds it until the TTL runs out,
//! unless the next broker can tell its holder is gone: on Linux the key
//! names the holder's boot, pid namespace and pid, and a holder from this
//! boot and namespace whose pid is not running is taken over at once.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;

use crate::storage_redis::Redis;

/// How long the key outlives its last renewal: how long a broker that
/// ended without `stop()` blocks its prefix (when not taken over).
const TTL: Duration = Duration::from_secs(10);
/// How often a running broker renews it: a broker stalled for the whole
/// TTL may lose it.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long `stop()` waits for Redis to delete the key.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// Sets the key to our token if it is missing, or renews it if it is ours.
/// Returns 1 when held (0 when another holds it).
const RENEW: &str = "local v = redis.call('get', KEYS[1]) \
  if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end \
  if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
  return 0";
/// Replaces the holder ARGV[1] (known gone) by our token ARGV[2].
const TAKE_OVER: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0";
/// Deletes the key if it is still ours.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
  return redis.call('del', KEYS[1]) end return 0";

/// The prefix held by one broker; `release()` it at `stop()`.
pub struct RedisLock {
  redis: Redis,
  key: String,
  token: String,
  renewing: Option<JoinHandle<()>>,
}

impl RedisLock {
  /// Takes the prefix for this broker, or says who holds it. Redis must
  /// answer (checked just before, with the error `start()` gives).
  pub async fn acquire(redis: &Redis) -> Result<RedisLock, String> {
    let key = format!("{}:lock", redis.prefix());
    let token = token();
    let failed = |why: String| {
      format!(
        "storage.redis: cannot lock the key prefix at {}: {why}",
        redis.shown()
      )
    };
    let mut conn = redis.connect().await.map_err(failed)?;
    let lock = RedisLock {
      redis: redis.clone(),
      key,
      token,
      renewing: None,
    };
    if lock.renew(&mut conn).await.map_err(failed)? {
      return Ok(lock);
    }
    let holder: Option<String> = redis::cmd("GET")
      .arg(&lock.key)
      .query_async(&mut conn)
      .await
      .map_err(|e| failed(reason(e)))?;
    let taken = match &holder {
      Some(holder) if gone(holder) => eval(
        &mut conn,
        TAKE_OVER,
        &lock.key,
        &[holder, &lock.token, &ttl()],
      )
      .await
      .map_err(failed)?,
      // Gone meanwhile (stopped, or expired): ours if nobody was faster.
      None => lock.renew(&mut conn).await.map_err(failed)?,
      Some(_) => false,
    };
    if taken {
      return Ok(lock);
    }
    let left: i64 = redis::cmd("PTTL")
      .arg(&lock.key)
      .query_async(&mut conn)
      .await
      .unwrap_or(-2);
    Err(format!(
      "storage.redis: the key prefix \"{}\" at {} is in use by another running broker (one \
       prefix, one broker); one that ended without stop() holds it {:.1} s more",
      redis.prefix(),
      redis.shown(),
      left.max(0) as f64 / 1000.0
    ))
  }

  /// Renews the key every `RENEW_EVERY` on the broker's runtime until
  /// `release()`. A renewal that fails because Redis is away is tried again
  /// (the outage is logged by the watcher); one that finds another holder
  /// is logged once.
  pub fn keep(&mut self, runtime: &tokio::runtime::Handle) {
    let redis = self.redis.clone();
    let key = self.key.clone();
    let token = self.token.clone();
    self.renewing = Some(runtime.spawn(async move {
      let mut conn: Option<MultiplexedConnection> = None;
      let mut lost = false;
      loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let renewed = tokio::time::timeout(RENEW_EVERY, async {
          let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(redis.connect().await?),
          };
          eval(c, RENEW, &key, &[&token, &ttl()]).await
        })
        .await
        .unwrap_or_else(|_| Err("no answer".into()));
        match renewed {
          Err(_) => conn = None,
          Ok(false) if !lost => {
            lost = true;
            log::warn!(
              "storage.redis: the key prefix \"{}\" at {} was taken by another broker (this one \
               did not renew its lock within {} s): both now write the same sessions",
              redis.prefix(),
              redis.shown(),
              TTL.as_secs()
            );
          }
          Ok(held) => lost = !held,
        }
      }
    }));
  }

  /// Lets another broker take the prefix (deletes the key if still ours).
  pub async fn release(mut self) {
    if let Some(renewing) = self.renewing.take() {
      renewing.abort();
    }
    let released = tokio::time::timeout(RELEASE_TIMEOUT, async {
      let mut conn = self.redis.connect().await?;
      eval(&mut conn, RELEASE, &self.key, &[&self.token]).await
    })
    .await
    .unwrap_or_else(|_| Err("no answer".into()));
    if let Err(why) = released {
      log::warn!(
        "stop: cannot release the key prefix \"{}\" at {} ({why}): another broker can use it in {} s",
        self.redis.prefix(),
        self.redis.shown(),
        TTL.as_secs()
      );
    }
  }

  async fn renew(&self, conn: &mut MultiplexedConnection) -> Result<bool, String> {
    eval(conn, RENEW, &self.key, &[&self.token, &ttl()]).await
  }
}

impl Drop for RedisLock {
  fn drop(&mut self) {
    if let Some(renewing) = self.renewing.take() {
      renewing.abort();
    }
  }
}

fn ttl() -> String {
  TTL.as_millis().to_string()
}

async fn eval(
  conn: &mut MultiplexedConnection,
  script: &str,
  key: &str,
  args: &[&str],
) -> Result<bool, String> {
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(script).arg(1).arg(key);
  for a in args {
    cmd.arg(*a);
  }
  cmd
    .query_async::<i64>(conn)
    .await
    .map(|n| n > 0)
    .map_err(reason)
}

fn reason(e: redis::RedisError) -> String {
  crate::error::redacted(e.to_string())
}

/// This broker's lock value: where it runs (`host()`), its pid, and a
/// random part that tells two brokers of one process apart.
fn token() -> String {
  let random = std::collections::hash_map::RandomState::new()
    .build_hasher()
    .finish();
  format!("{}/{}/{random:016x}", host(), std::process::id())
}

/// What tells whether a pid in a lock value can be checked here: the boot
/// and the pid namespace (Linux); empty where it cannot be told.
fn host() -> String {
  #[cfg(target_os = "linux")]
  {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    let (boot, ns) = (boot.trim(), ns.to_string_lossy());
    if !boot.is_empty() && !ns.is_empty() {
      return format!("{boot}:{ns}");
    }
  }
  String::new()
}

/// Whether the holder `value` is a process of this boot and pid namespace
/// that no longer runs (so its lock was left by a kill -9 or a crash).
fn gone(value: &str) -> bool {
  let mut parts = value.split('/');
  let (Some(host_of), Some(pid)) = (parts.next(), parts.next()) else {
    return false;
  };
  let here = host();
  if here.is_empty() || host_of != here {
    return false;
  }
  match pid.parse::<u32>() {
    Ok(pid) if pid != std::process::id() => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    _ => false,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_holder_is_gone_only_if_its_pid_is_checkable_here_and_not_running() {
    let me = token();
    // Ourselves (another broker of this process): running.
    assert!(!gone(&me));
    // Another host, or an unknown one: cannot tell.
    assert!(!gone("elsewhere/1/00"));
    assert!(!gone("garbage"));
    if cfg!(target_os = "linux") {
      // This boot and namespace, a pid that does not run.
      assert!(gone(&format!("{}/{}/00", host(), u32::MAX - 1)));
      // pid 1 runs.
      assert!(!gone(&format!("{}/1/00", host())));
    }
  }
}
