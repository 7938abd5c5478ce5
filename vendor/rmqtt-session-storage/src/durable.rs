//! fork patch: `sync = true` holds a publisher's PUBACK/PUBREC until the
//! offline sessions its message was routed to have it on disk (rmqtt's
//! `durable`). Each session writes its messages in its own loop (0002);
//! this makes them durable with one flush shared by every acknowledgement
//! that waits meanwhile (group commit), not one per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rmqtt::durable::DurableAck;

use crate::StorageDb;

pub(crate) struct GroupCommit {
    /// Taken at `stop()`, so that the broker's context does not hold the
    /// store open.
    db: Mutex<Option<StorageDb>>,
    /// Syncs asked for, and the number the last flush covered.
    asked: AtomicU64,
    done: AtomicU64,
    /// Flushes run, for the log line at `stop()`.
    flushes: AtomicU64,
    flushing: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    pub(crate) fn new(db: StorageDb) -> Arc<Self> {
        Arc::new(Self {
            db: Mutex::new(Some(db)),
            asked: AtomicU64::new(0),
            done: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn close(&self) {
        if self.db.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
            log::info!(
                "session store: {} acknowledgements waited for {} flushes",
                self.asked.load(Ordering::Acquire),
                self.flushes.load(Ordering::Acquire)
            );
        }
    }

    async fn sync_once(self: Arc<Self>) {
        // Everything written before this call is in a flush that starts
        // after it: the next one, unless one started since covers it.
        let mine = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let _flushing = self.flushing.lock().await;
        if self.done.load(Ordering::Acquire) >= mine {
            return;
        }
        let upto = self.asked.load(Ordering::Acquire);
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(db) = db {
            self.flushes.fetch_add(1, Ordering::AcqRel);
            if let Err(e) = db.flush().await {
                log::error!("session store flush failed, acknowledging without it: {e}");
            }
        }
        self.done.fetch_max(upto, Ordering::AcqRel);
    }
}

/// What rmqtt holds: the shared group commit.
pub(crate) struct Sync(pub(crate) Arc<GroupCommit>);

impl DurableAck for Sync {
    fn sync(&self) -> BoxFuture<'static, ()> {
        Box::pin(self.0.clone().sync_once())
    }
}
