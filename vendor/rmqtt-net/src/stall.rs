//! fork patch: a packet that has started must keep arriving.
//!
//! Keep-alive only counts whole packets, and keep-alive 0 disables it, so a
//! client could announce a 1,000,000-byte PUBLISH, send 900,000 bytes of it
//! and hold them in the broker's memory for ever. [`Stall`] closes such a
//! connection: each `window` (the listener's handshake timeout) while a
//! packet is incomplete, at least one packet must have been completed or
//! [`MIN_RATE`] bytes per second of the window must have arrived. A slow
//! but live client (a 1 MiB packet at 8 kbit/s, with the broker not reading
//! for a while) is never cut; a stalled one is closed within two windows.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Bytes per second a started packet must keep arriving at (8 kbit/s).
pub(crate) const MIN_RATE: u64 = 1024;

/// The connection's progress and its timer, made on first need (most
/// connections' packets arrive whole: they never pay for the timer).
#[derive(Default)]
pub(crate) struct Stall {
    /// Packets decoded so far (wrapping): completing one is progress.
    decoded: u32,
    timer: Option<Box<Timer>>,
}

struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// Whether a packet is incomplete now. A stale timer left armed only
    /// wakes the task once; resetting it each time a packet starts would
    /// take the timer wheel's lock per read.
    armed: bool,
    /// The start of the current window, and the progress counters then.
    since: Instant,
    buffered: usize,
    decoded: u32,
}

impl Stall {
    /// A packet was decoded.
    #[inline]
    pub(crate) fn decoded(&mut self) {
        self.decoded = self.decoded.wrapping_add(1);
    }

    /// Called when the socket had no more bytes and no whole packet is
    /// buffered. `started`: part of a packet has arrived; `buffered`: the bytes
    /// of it held. True once the packet stalled: the connection must close.
    #[inline]
    pub(crate) fn stalled(
        &mut self,
        started: bool,
        buffered: usize,
        window: Duration,
        cx: &mut Context<'_>,
    ) -> bool {
        if !started {
            if let Some(t) = &mut self.timer {
                t.armed = false;
            }
            return false;
        }
        self.poll_started(buffered, window, cx)
    }

    fn poll_started(&mut self, buffered: usize, window: Duration, cx: &mut Context<'_>) -> bool {
        let decoded = self.decoded;
        let t = self.timer.get_or_insert_with(|| {
            let now = Instant::now();
            Box::new(Timer {
                sleep: Box::pin(tokio::time::sleep_until(now + window)),
                armed: false,
                since: now,
                buffered,
                decoded,
            })
        });
        if !t.armed {
            t.armed = true;
            t.since = Instant::now();
            t.buffered = buffered;
            t.decoded = decoded;
            if t.sleep.is_elapsed() {
                t.sleep.as_mut().reset(t.since + window);
            }
        }
        let min_progress = (MIN_RATE * window.as_millis() as u64 / 1000).max(1) as usize;
        while t.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            // A timer left from an earlier packet fires early: wait out this window.
            let due = t.since + window;
            if now < due {
                t.sleep.as_mut().reset(due);
                continue;
            }
            if t.decoded == decoded && buffered < t.buffered.saturating_add(min_progress) {
                return true;
            }
            t.since = now;
            t.buffered = buffered;
            t.decoded = decoded;
            t.sleep.as_mut().reset(now + window);
        }
        false
    }
}
