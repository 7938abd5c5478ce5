//! A subscriber: reads deliveries as fast as the socket gives them, records
//! their end-to-end latency, acknowledges QoS 1 ones, and checks each
//! publisher's sequence numbers for gaps and duplicates.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::codec::{self, Reader};
use crate::payload;
use crate::shared::{now_ns, Shared};

#[derive(Default)]
pub struct SubStats {
  pub received: u64,
  /// Deliveries whose sequence number was not above the last one seen from
  /// that publisher: duplicates, or reordered ones.
  pub duplicates: u64,
  pub error: Option<String>,
}

pub async fn run(
  stream: TcpStream,
  mut reader: Reader,
  publishers: usize,
  shared: Arc<Shared>,
  mut stop: watch::Receiver<bool>,
) -> SubStats {
  let (mut rd, mut wr) = stream.into_split();
  let mut st = SubStats::default();
  let mut last_seq = vec![0u32; publishers];
  let mut acks = Vec::with_capacity(4096);
  loop {
    // Packets may already sit in the buffer (read along with the SUBACK).
    let now = now_ns();
    let mut n = 0u64;
    loop {
      let p = match reader.next_packet() {
        Ok(Some(p)) => p,
        Ok(None) => break,
        Err(e) => {
          st.error = Some(e.to_string());
          return st;
        }
      };
      if p.kind != codec::PUBLISH {
        continue;
      }
      let Some(m) = p.publish() else {
        st.error = Some("malformed PUBLISH".into());
        return st;
      };
      if m.qos == 1 {
        codec::puback(&mut acks, m.pid);
      }
      n += 1;
      if let Some(h) = payload::read(m.payload) {
        shared
          .latency_us
          .record(now.saturating_sub(h.sent_ns) / 1000);
        if let Some(last) = last_seq.get_mut(h.publisher as usize) {
          if h.seq <= *last {
            st.duplicates += 1;
          } else {
            *last = h.seq;
          }
        }
      }
    }
    if n > 0 {
      st.received += n;
      shared.delivered(n, now);
    }
    if !acks.is_empty() {
      if let Err(e) = wr.write_all(&acks).await {
        st.error = Some(e.to_string());
        return st;
      }
      acks.clear();
    }
    tokio::select! {
      biased;
      _ = stop.changed() => break,
      r = reader.fill(&mut rd) => if let Err(e) = r {
        st.error = Some(e.to_string());
        return st;
      },
    }
  }
  let mut bye = Vec::new();
  codec::disconnect(&mut bye);
  let _ = wr.write_all(&bye).await;
  st
}
