//! Gives memory back to the operating system after clients leave.
//!
//! glibc keeps freed heap memory for reuse, so after a burst of connections
//! goes away the process stays at its peak size. When the connection count
//! has fallen to half of its peak (and by a meaningful amount), the broker
//! asks glibc to return its free pages (`malloc_trim`), off the async
//! workers. A stopped broker's memory is given back the same way. Elsewhere
//! (musl, macOS, Windows) this is a no-op.

use std::time::Duration;

use rmqtt::context::ServerContext;

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Connections that must have gone since the peak before a trim is worth it.
const MIN_DROP: isize = 256;

/// Runs for the broker's lifetime (its runtime's shutdown ends it).
pub async fn release_after_disconnects(scx: ServerContext) {
  let mut peak = scx.connections.count();
  let mut tick = tokio::time::interval(CHECK_EVERY);
  loop {
    tick.tick().await;
    let now = scx.connections.count();
    peak = peak.max(now);
    if peak - now >= MIN_DROP && now <= peak / 2 {
      peak = now;
      let _ = tokio::task::spawn_blocking(trim).await;
    }
  }
}

/// Returns free heap pages to the OS. Blocks for a few ms on a large heap:
/// call it off the async workers and off the JavaScript thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
  // SAFETY: malloc_trim only walks glibc's own arenas.
  unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
