//! fork patch: a publisher's PUBACK (QoS 1) / PUBREC (QoS 2) held until the
//! persistent sessions its message was routed to have stored it on disk.
//!
//! While a client's PUBLISH is routed, every offline session sent a QoS 1/2
//! copy is also sent `Message::Stored`: it answers once it has handed every
//! earlier message to its `offline_message` hook (where a session store
//! writes it, awaited); one that went online meanwhile drops it. A
//! publisher whose message reaches no offline session is acknowledged at
//! once, as without a store. The
//! acknowledgement then waits for those answers and one `DurableAck::sync`
//! (a store's flush, shared by every acknowledgement waiting meanwhile), in
//! a task of its own, and is sent by the publisher's session loop, in the
//! order of its PUBLISHes. Without a `DurableAck` installed nothing of this
//! runs.

use std::cell::RefCell;
use std::future::Future;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

use crate::types::{Message, Tx};

/// The store's side: installed in `ServerExtends::durable_ack`.
pub trait DurableAck: Send + Sync {
    /// Resolves once everything stored so far is on disk.
    fn sync(&self) -> BoxFuture<'static, ()>;
}

/// One session's answer to `Message::Stored`.
pub type Stored = oneshot::Receiver<()>;

tokio::task_local! {
    static STORED: RefCell<Vec<Stored>>;
}

/// Runs `routing` (one publish's), collecting the answers to wait for.
///
/// fork patch (0054-smaller-publish-futures): a `map` in the scope, not
/// `async` code, whose states kept `routing` two and three times: a QoS 1
/// publish's future was 3,416 bytes, copied into a box per packet.
pub(crate) fn collect<F: Future>(routing: F) -> impl Future<Output = (F::Output, Vec<Stored>)> {
    STORED.scope(RefCell::new(Vec::new()), routing.map(|out| (out, STORED.with(|s| s.take()))))
}

/// Whether a publish's routing is collecting answers (inside `collect`).
pub(crate) fn collecting() -> bool {
    STORED.try_with(|_| ()).is_ok()
}

/// Called by routing once a QoS 1/2 copy is sent on `tx` to a session in its
/// offline loop: inside `collect`, asks it to say when it has stored it.
pub(crate) fn ask_stored(tx: &Tx) {
    let _ = STORED.try_with(|s| {
        let (done, stored) = oneshot::channel();
        if tx.unbounded_send(Message::Stored(done)).is_ok() {
            s.borrow_mut().push(stored);
        }
    });
}
