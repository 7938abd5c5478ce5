//! The broker's allocator, and giving memory back after clients leave.
//!
//! Rust code in the addon allocates through mimalloc (its v2 line, with the
//! TLS model a `dlopen`ed library needs). Messages are allocated by the
//! publisher's worker thread and freed by the subscriber's; glibc malloc
//! serialised those cross-thread frees on its arena locks (~7% of a fan-in
//! profile in lock waits and wakes alone), mimalloc hands them back without
//! a lock. Node itself keeps glibc.
//!
//! Freed memory is kept for reuse, so after a burst of connections goes
//! away the process would stay at its peak size. When the connection count
//! has fallen to half of its peak (and by a meaningful amount), the broker
//! asks both allocators to return free pages. mimalloc keeps each thread's
//! free pages with that thread, and blocks freed by another thread wait on
//! their page until its owner looks: so each worker collects its own heap
//! the next time it goes idle ([`Reclaim::on_park`]), and a blocking thread
//! trims the rest ([`trim`]). A stopped broker's memory is trimmed the same
//! way once its workers have exited.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Connections that must have gone since the peak before a trim is worth it.
const MIN_DROP: isize = 256;
/// Subscriptions likewise (~2 KB each): one client can hold 100,000 of them.
const MIN_SUBSCRIPTIONS_DROP: isize = 10_000;

thread_local! {
  /// The last [`Reclaim`] request this worker thread has collected for.
  static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// One broker's requests to its worker threads to collect their heaps.
#[derive(Clone, Default)]
pub struct Reclaim(Arc<AtomicU64>);

impl Reclaim {
  /// Every worker collects its heap once, when it next has nothing to do.
  fn request(&self) {
    self.0.fetch_add(1, Ordering::Relaxed);
  }

  /// The runtime's park hook: one atomic load unless a collect is due.
  pub fn on_park(&self) {
    let wanted = self.0.load(Ordering::Relaxed);
    if COLLECTED.get() != wanted {
      COLLECTED.set(wanted);
      // SAFETY: collects the calling thread's own mimalloc heap.
      unsafe { libmimalloc_sys::mi_collect(true) };
    }
  }
}

/// Runs for the broker's lifetime (its runtime's shutdown ends it).
///
/// The peak is the connection counter's own high-water mark, which every
/// connect raises: a crowd that comes and goes between two looks is still
/// seen. The mark is lowered to the current count after each release, so it
/// means "highest since the last release" (rmqtt reads it only for its
/// `$SYS` stats, which this broker does not publish).
///
/// Subscriptions are watched the same way, so that one client with many of
/// them leaving is seen too. The router hands out a copy of its counter, so
/// their peak is kept here: the counter's high-water mark when it rises past
/// what was seen, else the highest count seen at a look.
///
/// A release can come while clients are still leaving (100,000 subscriptions
/// take seconds to remove on a busy machine), and a session's own memory is
/// freed after its subscriptions are counted out: what is freed after a
/// release would stay until the next one, which a small remainder never
/// triggers. So once the counts hold still for a look after a release, one
/// more takes the rest.
pub async fn release_after_disconnects(scx: ServerContext, reclaim: Reclaim) {
  let mut tick = tokio::time::interval(CHECK_EVERY);
  let (mut subs_peak, mut subs_mark) = (0, 0);
  // Connections and subscriptions at the last look; whether a release waits
  // for them to hold still.
  let mut last = (0, 0);
  let mut settling = false;
  loop {
    tick.tick().await;
    let now = scx.connections.count();
    let peak = scx.connections.max();
    let subs = scx.extends.router().await.routes();
    if subs.max() > subs_mark {
      subs_mark = subs.max();
      subs_peak = subs_peak.max(subs_mark);
    }
    let subs_now = subs.count();
    subs_peak = subs_peak.max(subs_now);
    let connections_left = peak - now >= MIN_DROP && now <= peak / 2;
    let subscriptions_left =
      subs_peak - subs_now >= MIN_SUBSCRIPTIONS_DROP && subs_now <= subs_peak / 2;
    let counts = (now, subs_now);
    let stable = counts == last;
    last = counts;
    let tail = settling && stable;
    if connections_left || subscriptions_left || tail {
      scx.connections.max_min(now);
      subs_peak = subs_now;
      settling = !tail;
      reclaim.request();
      wake_workers();
      let _ = tokio::task::spawn_blocking(trim).await;
    }
  }
}

/// Gives every worker something to do, so that each parks again soon and
/// collects ([`Reclaim::on_park`]): an idle worker would otherwise sleep
/// through the request, its heap uncollected, while the one woken by this
/// task's timer collects alone (one client leaving with 100,000
/// subscriptions kept 93 of 132 MiB for 20 s, once in a full test run).
fn wake_workers() {
  let workers = tokio::runtime::Handle::current().metrics().num_workers();
  for _ in 0..workers * 2 {
    tokio::spawn(tokio::task::yield_now());
  }
}

/// Returns free pages to the OS: the calling thread's mimalloc heap, the
/// heaps of threads that have exited, and glibc's arenas. Blocks for a few
/// ms on a large heap: call it off the async workers and off the JavaScript
/// thread.
pub fn trim() {
  // SAFETY: collects the calling thread's heap and abandoned ones.
  unsafe { libmimalloc_sys::mi_collect(true) };
  glibc_trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_trim() {
  // SAFETY: malloc_trim only walks glibc's own arenas.
  unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() {}
