//! A publisher: floods (many PUBLISH packets per write, as fast as TCP takes
//! them) or publishes at a fixed rate, until its deadline. At QoS 1 it keeps
//! at most `window` messages unacknowledged, as a real client would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};

use crate::codec::{self, Reader};
use crate::payload::{self, Header};
use crate::shared::{now_ns, Shared};

/// Bytes of PUBLISH packets gathered into one write while flooding.
const FLOOD_BATCH: usize = 32 * 1024;

pub struct Plan {
  pub id: u32,
  pub topic: String,
  pub qos: u8,
  pub size: usize,
  pub deadline: Instant,
  /// Time between two messages; `None` floods.
  pub interval: Option<Duration>,
  /// At an even pace, one message per notification (see `pacer`), instead
  /// of sleeping `interval` on tokio's timer.
  pub tick: Option<Arc<Notify>>,
  pub window: usize,
}

#[derive(Default)]
pub struct PubStats {
  pub acked: u64,
  pub error: Option<String>,
}

pub async fn run(
  stream: TcpStream,
  reader: Reader,
  plan: Plan,
  shared: Arc<Shared>,
  stop: watch::Receiver<bool>,
) -> PubStats {
  let (rd, mut wr) = stream.into_split();
  let window = Semaphore::new(plan.window);
  let sent = AtomicU64::new(0);
  let done = AtomicBool::new(false);

  let mut tmpl = Vec::new();
  let payload_at = codec::publish(&mut tmpl, &plan.topic, plan.qos, 0, &vec![0; plan.size]);
  let per_batch = match plan.interval {
    Some(_) => 1,
    None => (FLOOD_BATCH / tmpl.len()).max(1),
  };

  let writer = async {
    let mut stop = stop.clone();
    let mut buf = Vec::with_capacity(per_batch * tmpl.len());
    let (mut seq, mut pid) = (0u32, 0u16);
    let mut next = Instant::now();
    let result = loop {
      if Instant::now() >= plan.deadline || *stop.borrow() {
        break Ok(());
      }
      if let Some(tick) = &plan.tick {
        tick.notified().await;
        if Instant::now() >= plan.deadline {
          break Ok(());
        }
      } else if let Some(iv) = plan.interval {
        sleep_until(next).await;
        next += iv;
      }
      let mut k = per_batch;
      if plan.qos > 0 {
        // Wait for one free slot, then take as many more as are free.
        tokio::select! {
          p = window.acquire() => p.expect("never closed").forget(),
          _ = stop.changed() => break Ok(()),
        }
        k = 1 + window.available_permits().min(k - 1);
        if k > 1 {
          window
            .try_acquire_many(k as u32 - 1)
            .expect("permits just counted")
            .forget();
        }
      }
      buf.clear();
      let ts = now_ns();
      for _ in 0..k {
        let base = buf.len();
        buf.extend_from_slice(&tmpl);
        seq += 1;
        if plan.qos > 0 {
          pid = pid.checked_add(1).unwrap_or(1);
          buf[base + payload_at - 2..base + payload_at].copy_from_slice(&pid.to_be_bytes());
        }
        let h = Header {
          sent_ns: ts,
          publisher: plan.id,
          seq,
        };
        payload::write(&mut buf[base + payload_at..], &h);
      }
      tokio::select! {
        r = wr.write_all(&buf) => if let Err(e) = r { break Err(e.to_string()) },
        _ = stop.changed() => break Ok(()),
      }
      sent.fetch_add(k as u64, Relaxed);
      shared.sent.fetch_add(k as u64, Relaxed);
    };
    done.store(true, Relaxed);
    result
  };

  let acker = async {
    if plan.qos == 0 {
      return Ok(0);
    }
    acks(rd, reader, &window, &sent, &done, stop.clone()).await
  };

  let (w, a) = tokio::join!(writer, acker);
  let mut st = PubStats::default();
  match a {
    Ok(n) => st.acked = n,
    Err(e) => st.error = Some(e),
  }
  if let Err(e) = w {
    st.error = Some(e);
  }
  let mut bye = Vec::new();
  codec::disconnect(&mut bye);
  let _ = wr.write_all(&bye).await;
  st
}

/// Counts PUBACKs and frees window slots, until the writer is done and
/// every message it sent is acknowledged (or the run is stopped).
async fn acks(
  mut rd: OwnedReadHalf,
  mut reader: Reader,
  window: &Semaphore,
  sent: &AtomicU64,
  done: &AtomicBool,
  mut stop: watch::Receiver<bool>,
) -> Result<u64, String> {
  let mut acked = 0u64;
  loop {
    let mut n = 0;
    while let Some(p) = reader.next_packet().map_err(|e| e.to_string())? {
      if p.kind == codec::PUBACK {
        n += 1;
      }
    }
    acked += n as u64;
    window.add_permits(n);
    if done.load(Relaxed) && acked >= sent.load(Relaxed) {
      return Ok(acked);
    }
    tokio::select! {
      r = reader.fill(&mut rd) => { r.map_err(|e| e.to_string())?; }
      _ = stop.changed() => return Ok(acked),
      // The writer may finish while this waits for acks that already came.
      _ = sleep(Duration::from_millis(20)) => {}
    }
  }
}
