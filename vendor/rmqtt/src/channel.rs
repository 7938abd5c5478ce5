//! fork patch: the unbounded channel that carries messages to a
//! session (`types::Tx` / `types::Rx`).
//!
//! futures' unbounded channel allocated a node per message and freed it on the
//! receiving thread (~9% of a fan-in profile with its atomics, plus the
//! allocator's cross-thread frees); tokio's allocates a 32-slot block up front,
//! 3.6 KiB for every idle connection. This one is a deque behind a mutex that
//! allocates nothing until a message is sent. The receiver takes everything
//! queued at once (it swaps its own, emptied deque in), so under load it locks
//! once per batch and the two deques' buffers are reused; once it finds
//! nothing queued, a buffer a burst left large is freed. A send wakes the
//! receiver only when it finds the queue empty: a non-empty queue has been
//! announced by the send that filled it, and the receiver looks again under
//! the lock after it registers, so each batch costs one wake, not one per
//! message (the waker's atomics were contended by every sending thread).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use parking_lot::Mutex;

struct Chan<T> {
    queue: Mutex<VecDeque<T>>,
    waker: AtomicWaker,
    senders: AtomicUsize,
    /// The receiver is gone: sends fail, nothing is kept. Set under the
    /// queue's lock and read under it by `send`, so no message slips in after
    /// the receiver's drop; `is_closed` (asked per routed message) reads it
    /// without the lock.
    closed: AtomicBool,
}

/// Buffers up to this many messages are kept when the receiver finds nothing
/// queued (each ~1.8 KiB for rmqtt's 112-byte `Message`); larger ones, left
/// by a burst, are freed.
const KEEP_IDLE: usize = 16;

/// Creates a channel.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        queue: Mutex::new(VecDeque::new()),
        waker: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
    });
    (Sender { chan: chan.clone() }, Receiver { chan, batch: VecDeque::new() })
}

pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the message comes back.
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(receiver is gone)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> Sender<T> {
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let was_empty = {
            let mut q = self.chan.queue.lock();
            if self.chan.closed.load(Ordering::Relaxed) {
                return Err(SendError(item));
            }
            q.push_back(item);
            q.len() == 1
        };
        if was_empty {
            self.chan.waker.wake();
        }
        Ok(())
    }

    /// Queues `item` ahead of everything queued and not yet taken by the
    /// receiver (`send` queues behind).
    pub fn send_first(&self, item: T) -> Result<(), SendError<T>> {
        let was_empty = {
            let mut q = self.chan.queue.lock();
            if self.chan.closed.load(Ordering::Relaxed) {
                return Err(SendError(item));
            }
            q.push_front(item);
            q.len() == 1
        };
        if was_empty {
            self.chan.waker.wake();
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.chan.closed.load(Ordering::Relaxed)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.waker.wake();
        }
    }
}

/// Nothing is queued (`Empty`) or nothing ever will be (`Disconnected`).
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    Disconnected,
}

pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Taken from the queue, not yet handed out.
    batch: VecDeque<T>,
}

impl<T> Receiver<T> {
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(item) = self.batch.pop_front() {
            return Ok(item);
        }
        // Read before the queue: once the last sender is gone, everything it
        // sent is in the queue (its send came before its drop), so an empty
        // queue then means the end. Read after, a send and drop in between
        // would be taken for the end with its message still queued.
        let disconnected = self.chan.senders.load(Ordering::Acquire) == 0;
        {
            let mut q = self.chan.queue.lock();
            if q.is_empty() {
                free_if_large(&mut q);
            } else {
                std::mem::swap(&mut *q, &mut self.batch);
            }
        }
        if let Some(item) = self.batch.pop_front() {
            return Ok(item);
        }
        free_if_large(&mut self.batch);
        if disconnected {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.try_recv() {
            Ok(item) => return Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        // Registered before the second look, so a send in between is seen.
        self.chan.waker.register(cx.waker());
        match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Capacity of the buffers the receiver holds (tests of their release).
    pub fn buffered_capacity(&self) -> usize {
        self.batch.capacity() + self.chan.queue.lock().capacity()
    }

    /// The next message; `None` once every sender is gone and all was taken.
    /// Cancel-safe: nothing is taken unless it is returned.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut q = self.chan.queue.lock();
            self.chan.closed.store(true, Ordering::Relaxed);
            std::mem::take(&mut *q)
        };
        // Dropped outside the lock: a message's drop may send again.
        drop(items);
    }
}

/// Frees an empty buffer that a burst left above `KEEP_IDLE`.
fn free_if_large<T>(buf: &mut VecDeque<T>) {
    if buf.capacity() > KEEP_IDLE {
        *buf = VecDeque::new();
    }
}
