//! The writer must put every packet on the wire whole and in order, however
//! the socket splits its writes: part way through a header kept in the tail
//! buffer, a run of small packets, or a payload written from its own buffer.

use std::io;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::{v3, v5, MqttCodec, MqttPacket};
use rmqtt_net::Writer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::{Decoder, Framed};

/// A socket that takes at most the next of `limits` bytes per write, and
/// now and then is not ready at all (waking the writer at once).
struct Trickle {
  out: Vec<u8>,
  limits: Vec<usize>,
  calls: usize,
  vectored: bool,
}

impl Trickle {
  fn new(limits: &[usize], vectored: bool) -> Self {
    Trickle {
      out: Vec::new(),
      limits: limits.to_vec(),
      calls: 0,
      vectored,
    }
  }

  /// How much the next write may take, or `None` for "not ready".
  fn next_limit(&mut self, cx: &mut Context<'_>) -> Option<usize> {
    self.calls += 1;
    if self.calls.is_multiple_of(5) {
      cx.waker().wake_by_ref();
      return None;
    }
    Some(self.limits[self.calls % self.limits.len()])
  }
}

impl AsyncWrite for Trickle {
  fn poll_write(
    mut self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    buf: &[u8],
  ) -> Poll<io::Result<usize>> {
    let Some(limit) = self.next_limit(cx) else {
      return Poll::Pending;
    };
    let n = buf.len().min(limit);
    self.out.extend_from_slice(&buf[..n]);
    Poll::Ready(Ok(n))
  }

  fn poll_write_vectored(
    mut self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
  ) -> Poll<io::Result<usize>> {
    let Some(mut room) = self.next_limit(cx) else {
      return Poll::Pending;
    };
    let mut n = 0;
    for b in bufs {
      let take = b.len().min(room);
      self.out.extend_from_slice(&b[..take]);
      n += take;
      room -= take;
      if room == 0 {
        break;
      }
    }
    Poll::Ready(Ok(n))
  }

  fn is_write_vectored(&self) -> bool {
    self.vectored
  }

  fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
    Poll::Ready(Ok(()))
  }

  fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
    Poll::Ready(Ok(()))
  }
}

impl AsyncRead for Trickle {
  fn poll_read(
    self: Pin<&mut Self>,
    _: &mut Context<'_>,
    _: &mut ReadBuf<'_>,
  ) -> Poll<io::Result<()>> {
    Poll::Pending
  }
}

#[derive(Clone, Copy, Debug)]
enum Version {
  V3,
  V5,
}

fn codec(version: Version) -> MqttCodec {
  match version {
    Version::V3 => MqttCodec::V3(v3::Codec::new(0)),
    Version::V5 => MqttCodec::V5(v5::Codec::new(0, 0)),
  }
}

/// A payload of `len` bytes that differs for every message.
fn payload(i: usize, len: usize) -> Bytes {
  (0..len)
    .map(|j| (i * 31 + j * 7 + j / 251) as u8)
    .collect::<Vec<_>>()
    .into()
}

fn publish(version: Version, i: usize, len: usize) -> (MqttPacket, Publish) {
  let qos = if i.is_multiple_of(2) {
    QoS::AtLeastOnce
  } else {
    QoS::AtMostOnce
  };
  let p = Publish {
    dup: false,
    retain: false,
    qos,
    topic: ByteString::from(format!("t/{i}")),
    packet_id: (qos == QoS::AtLeastOnce).then(|| NonZeroU16::new(i as u16 % 60_000 + 1).unwrap()),
    payload: payload(i, len),
    properties: match version {
      Version::V3 => None,
      Version::V5 => Some(v5::PublishProperties::default()),
    },
  };
  let packet = match version {
    Version::V3 => MqttPacket::V3(v3::Packet::Publish(Box::new(p.clone()))),
    Version::V5 => MqttPacket::V5(v5::Packet::Publish(Box::new(p.clone()))),
  };
  (packet, p)
}

/// Decodes everything written, checking it is exactly `sent`.
fn check(version: Version, written: &[u8], sent: &[Publish]) {
  let mut buf = BytesMut::from(written);
  let mut got = Vec::new();
  match version {
    Version::V3 => {
      let mut c = v3::Codec::new(0);
      while let Some((p, _)) = c.decode(&mut buf).expect("decodes") {
        match p {
          v3::Packet::Publish(p) => got.push(*p),
          other => panic!("unexpected packet {other:?}"),
        }
      }
    }
    Version::V5 => {
      let mut c = v5::Codec::new(0, 0);
      while let Some((p, _)) = c.decode(&mut buf).expect("decodes") {
        match p {
          v5::Packet::Publish(p) => got.push(*p),
          other => panic!("unexpected packet {other:?}"),
        }
      }
    }
  }
  assert!(buf.is_empty(), "{} bytes left over", buf.len());
  assert_eq!(got.len(), sent.len());
  for (i, (g, s)) in got.iter().zip(sent).enumerate() {
    assert_eq!(g.topic, s.topic, "message {i}");
    assert_eq!(g.packet_id, s.packet_id, "message {i}");
    assert_eq!(g.qos, s.qos, "message {i}");
    assert!(
      g.payload == s.payload,
      "message {i}: payload of {} bytes differs",
      s.payload.len()
    );
  }
}

/// Feeds every message (flushing after each `flush_every`), flushes, and
/// checks the bytes on the "wire".
async fn run(
  version: Version,
  sizes: &[usize],
  limits: &[usize],
  vectored: bool,
  flush_every: usize,
) {
  let mut io = Framed::new(Trickle::new(limits, vectored), codec(version));
  let mut w = Writer::default();
  let batches = Arc::new(AtomicUsize::new(0));
  let mut sent = Vec::new();
  for (i, &len) in sizes.iter().enumerate() {
    let (packet, p) = publish(version, i, len);
    w.feed(&mut io, packet, &batches, Duration::ZERO)
      .await
      .expect("feed");
    sent.push(p);
    if (i + 1) % flush_every == 0 {
      w.flush(&mut io, Duration::ZERO).await.expect("flush");
    }
  }
  w.flush(&mut io, Duration::ZERO).await.expect("flush");
  assert!(!w.has_pending());
  check(version, &io.get_ref().out, &sent);
}

/// Small packets (copied into the tail) between payloads of 1 KiB and more
/// (written from their own buffers), and remaining lengths of 1 to 3 bytes.
fn mixed() -> Vec<usize> {
  let pattern = [
    0, 1, 1023, 1024, 10, 900, 1500, 127, 128, 4096, 16_383, 16_384, 70_000, 5, 2000,
  ];
  (0..600)
    .map(|i| pattern[(i * 7 + i / 15) % pattern.len()])
    .collect()
}

#[tokio::test]
async fn whole_and_in_order_however_writes_are_split() {
  // 1-3 bytes split headers; the odd sizes fall anywhere; 64 KiB takes
  // whole batches.
  let limits = [1, 2, 3, 7, 100, 1000, 1500, 4095, 65_536, 13];
  for version in [Version::V3, Version::V5] {
    for vectored in [true, false] {
      for flush_every in [1, 3, 1000] {
        run(version, &mixed(), &limits, vectored, flush_every).await;
      }
    }
  }
}

#[tokio::test]
async fn more_payloads_queued_than_one_writev_takes() {
  // 1 KiB payloads: 64 KiB of them is 128 slices, past one writev's 64.
  let sizes = vec![1024; 500];
  for version in [Version::V3, Version::V5] {
    run(version, &sizes, &[1 << 20], true, 500).await;
    run(version, &sizes, &[1 << 20, 5000, 1], true, 500).await;
  }
}
