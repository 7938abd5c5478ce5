//! fork patch: the writes this plugin started in the background and that
//! have not finished, so that `stop()` can wait for them before the broker's
//! runtime (and with it every unfinished write) is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub(crate) struct Pending(Arc<Inner>);

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    /// Writes ended since the plugin started: an embedder waiting at stop
    /// can tell a store that is slow (it moves) from one that is stuck.
    ended: AtomicU64,
    idle: Notify,
}

/// One write under way; dropped when it ends or is cancelled.
struct Guard(Pending);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0 .0.ended.fetch_add(1, Ordering::AcqRel);
        if self.0 .0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .0.idle.notify_waiters();
        }
    }
}

impl Pending {
    /// `f`, counted from now until it ends or is dropped.
    pub(crate) fn track<F: Future<Output = ()>>(&self, f: F) -> impl Future<Output = ()> {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        let guard = Guard(self.clone());
        async move {
            let _guard = guard;
            f.await
        }
    }

    /// `tokio::spawn`, counted.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        tokio::spawn(self.track(f));
    }

    /// Writes under way, and writes ended so far.
    pub(crate) fn progress(&self) -> (usize, u64) {
        (self.0.count.load(Ordering::Acquire), self.0.ended.load(Ordering::Acquire))
    }

    /// Resolves once no write is under way.
    pub(crate) async fn idle(&self) {
        loop {
            // Created before the check: a `notify_waiters` in between still wakes it.
            let idle = self.0.idle.notified();
            if self.0.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}
