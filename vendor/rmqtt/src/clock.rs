//! fork patch: clock reads for the per-packet paths.
//!
//! The session loop read the monotonic clock on every event and the wall
//! clock several times per message (in-flight window timestamps and
//! timeouts, a publish's create time, its expiry check): about eight reads
//! of 30-40 ns each per QoS 1 message, 3-4% of the broker's CPU in a fan-in
//! profile. Everything they time is counted in seconds (keep-alive, resend
//! interval, message expiry), so on Linux the kernel's coarse clocks do:
//! ~5 ns a read, updated every tick (1-4 ms). Elsewhere these are the
//! precise clocks.

use crate::types::TimestampMillis;

/// Milliseconds since the Unix epoch, up to one tick behind.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub fn timestamp_millis() -> TimestampMillis {
    let ts = coarse(libc::CLOCK_REALTIME_COARSE);
    ts.tv_sec as TimestampMillis * 1000 + ts.tv_nsec as TimestampMillis / 1_000_000
}

/// Milliseconds since the Unix epoch.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub fn timestamp_millis() -> TimestampMillis {
    crate::utils::timestamp_millis()
}

/// A monotonic `Instant`, ahead of `Instant::now()` by up to three ticks
/// (12 ms at HZ=250): the coarse clock's progress since a precise reading
/// taken once, plus two ticks. Ahead, not behind, so that a deadline
/// computed from it is not already past for tokio's timer (which would
/// fire at once, again and again, until the coarse clock moved). The
/// coarse clock lags by up to a tick, a little more after an idle CPU
/// wakes (4.9 ms at 4 ms ticks, measured), hence two. A timer that fired
/// checks its deadline with `Instant::now()`, which has reached it.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub fn now() -> tokio::time::Instant {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn since_boot() -> Duration {
        let ts = coarse(libc::CLOCK_MONOTONIC_COARSE);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    // Set once, never changed: both clocks run from the same base, so one
    // pair of readings maps the coarse clock onto `Instant` for good. The
    // coarse reading's lag, at the anchor and later, stays under two ticks.
    static ANCHOR: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (instant, coarse_at) = *ANCHOR.get_or_init(|| {
        let instant = Instant::now();
        let tick = resolution(libc::CLOCK_MONOTONIC_COARSE);
        (instant + 2 * tick, since_boot())
    });
    tokio::time::Instant::from_std(instant + since_boot().saturating_sub(coarse_at))
}

/// A monotonic `Instant`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn resolution(clock: libc::clockid_t) -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as in `coarse`. 4 ms (HZ=250) if the call ever failed.
    if unsafe { libc::clock_getres(clock, &mut ts) } != 0 {
        return std::time::Duration::from_millis(4);
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
#[allow(unsafe_code)]
fn coarse(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the coarse clocks exist
    // on every Linux since 2.6.32, so this cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}
