//! fork patch: the write side of a connection.
//!
//! tokio-util's `Framed` copies every packet it sends into one write buffer,
//! so a delivered payload was copied there and then again by the kernel. The
//! `Writer` keeps a large publish payload as the `Bytes` it arrived in (a
//! slice of the publisher's read buffer) and hands it to `writev` next to
//! its header: one copy fewer per delivery. Everything else is encoded into
//! a small tail buffer, as before. `Framed` is still used for reading.
//!
//! Packets are queued (`feed`) and written once `WRITE_BATCH` bytes wait, or
//! on `flush`; rmqtt's session loop (patched too) flushes whenever it has no
//! more work ready, so under load one syscall carries many packets.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::poll_fn;
use tokio::io::AsyncWrite;
use tokio_util::bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Encoder, Framed};

use rmqtt_codec::error::{EncodeError, SendPacketError};
use rmqtt_codec::types::Publish;
use rmqtt_codec::{v3, v5, MqttCodec, MqttPacket};

use crate::error::MqttError;
use crate::{Result, WireBytes};

/// Initial size of the tail buffer (and of the read buffer, see `stream`).
pub(crate) const INITIAL_BUFFER: usize = 512;
/// Queued packets are written out once this many bytes wait.
const WRITE_BATCH: usize = 16 * 1024;
/// ... or this many, for a connection that streams and holds one of its
/// listener's `LARGE_WRITE_BATCHES`. Each write costs the kernel a pass
/// through TCP and, on loopback, through the receiver's whole input path, so
/// fewer, larger writes carry a flood further. At 48 KiB the tail buffer
/// (which doubles as it grows) mostly stays within 64 KiB.
const LARGE_WRITE_BATCH: usize = 48 * 1024;
/// Connections per listener writing in large batches at once: 1,000
/// subscribers of a fan-out would otherwise hold 64 KiB each.
pub(crate) const LARGE_WRITE_BATCHES: usize = 64;
/// Light flushes in a row after which a burst is taken to be over: the
/// connection gives back its large batch and any grown tail buffer.
const QUIET_FLUSHES: u8 = 8;
/// Queued bytes after which packets are written out whatever the batch, for
/// a connection whose payloads wait in their own buffers (which the writer
/// does not copy, so a batch of them costs no memory of its own). Each write
/// to loopback also runs the receiver's input path and wakes it: a fan-out
/// QoS 1 4 KiB profile spent most of the broker's kernel time per write.
/// A 4 KiB fan-in delivered 16% more at 256 KiB than at 64 (1 MiB: the same).
const CHUNKED_BATCH: usize = 256 * 1024;
/// Payloads from this size on are written from their own buffer rather than
/// copied. Below it a copy costs less than the extra `Bytes` handle.
const ZERO_COPY_MIN: usize = 1024;
/// iovecs per `writev` (the kernel allows 1,024). A payload takes two, its
/// header's and its own: at 64, 4 KiB payloads ended a batch at 128 KiB.
const MAX_SLICES: usize = 256;
/// The largest remaining length MQTT can express, which rmqtt-codec also
/// takes as the limit when a v5 peer set none.
const MAX_PACKET_SIZE: u32 = 0x0FFF_FFFF;

/// Queued output of one connection: `chunks` go out first, then what is
/// left of `tail`.
#[derive(Debug)]
pub struct Writer {
    chunks: VecDeque<Chunk>,
    /// Payload bytes in `chunks`.
    chunked: usize,
    /// Front bytes of `tail` that `Chunk::Tail`s stand for.
    claimed: usize,
    tail: BytesMut,
    batch: WriteBatch,
    /// Where written bytes are counted (`Builder::wire_bytes`).
    wire_bytes: Option<Arc<WireBytes>>,
}

/// A piece of the queued output. Headers stay in the tail buffer (a chunk
/// only says how many of its bytes come next): splitting them off cost two
/// allocations per payload, the split and a new tail.
#[derive(Debug)]
enum Chunk {
    /// The next this many bytes of the tail.
    Tail(usize),
    /// A payload written from its own buffer.
    Payload(Bytes),
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            chunks: VecDeque::new(),
            chunked: 0,
            claimed: 0,
            tail: BytesMut::with_capacity(INITIAL_BUFFER),
            batch: WriteBatch::default(),
            wire_bytes: None,
        }
    }
}

impl Writer {
    /// A writer that counts what it writes in `wire_bytes`.
    pub fn counting(wire_bytes: Option<Arc<WireBytes>>) -> Self {
        Writer { wire_bytes, ..Writer::default() }
    }

    /// Whether queued packets wait to be written.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.chunked > 0 || !self.tail.is_empty()
    }

    #[inline]
    fn pending(&self) -> usize {
        self.chunked + self.tail.len()
    }

    /// Whether queued packets fill a batch: the tail its batch size, or all
    /// of it `CHUNKED_BATCH` (or one `writev`'s slices).
    #[inline]
    fn full(&self) -> bool {
        self.tail.len() >= self.batch.size()
            || self.pending() >= CHUNKED_BATCH
            || self.chunks.len() >= MAX_SLICES - 1
    }

    /// Queues `packet`, first writing out what waits if a batch is full.
    pub async fn feed<Io>(
        &mut self,
        io: &mut Framed<Io, MqttCodec>,
        packet: MqttPacket,
        large_batches: &Arc<AtomicUsize>,
        send_timeout: Duration,
    ) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        if self.needs_room(large_batches) {
            self.make_room(io, send_timeout).await?;
        }
        self.queue(io, packet)
    }

    /// Whether a full batch must be written out before the next packet is
    /// queued. `feed` is this, `make_room` when it says so, and `queue`;
    /// callers on the delivery path take the three apart so that the common
    /// case, room, needs no future: the write out's (a timer among it) made
    /// every caller's future ~1,000 bytes larger, past glibc's thread cache.
    #[inline]
    pub fn needs_room(&mut self, large_batches: &Arc<AtomicUsize>) -> bool {
        if !self.full() {
            return false;
        }
        self.batch.streaming(large_batches);
        self.full()
    }

    /// Writes out what waits. Only here can queueing wait, so only here is
    /// it timed.
    pub async fn make_room<Io>(
        &mut self,
        io: &mut Framed<Io, MqttCodec>,
        send_timeout: Duration,
    ) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        with_timeout(send_timeout, self.write_out(io), MqttError::WriteTimeout).await
    }

    /// Queues `packet` in the buffer, without writing.
    #[inline]
    pub fn queue<Io>(&mut self, io: &mut Framed<Io, MqttCodec>, packet: MqttPacket) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        let vectored = io.get_ref().is_write_vectored();
        self.encode(io.codec_mut(), packet, vectored)
            .map_err(|e| MqttError::SendPacket(SendPacketError::Encode(e)))?;
        Ok(())
    }

    /// Queues and writes out `packet` with everything before it.
    pub async fn send<Io>(
        &mut self,
        io: &mut Framed<Io, MqttCodec>,
        packet: MqttPacket,
        large_batches: &Arc<AtomicUsize>,
        send_timeout: Duration,
    ) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        self.feed(io, packet, large_batches, send_timeout).await?;
        self.flush(io, send_timeout).await
    }

    /// Writes out everything queued.
    pub async fn flush<Io>(&mut self, io: &mut Framed<Io, MqttCodec>, send_timeout: Duration) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        let queued = self.pending();
        with_timeout(send_timeout, self.write_out(io), MqttError::FlushTimeout).await?;
        self.batch.after_flush(&mut self.tail, queued);
        Ok(())
    }

    /// Writes out everything queued and shuts the connection's write side.
    pub async fn close<Io>(&mut self, io: &mut Framed<Io, MqttCodec>, send_timeout: Duration) -> Result<()>
    where
        Io: AsyncWrite + Unpin,
    {
        let close = async {
            self.write_out(io).await?;
            poll_fn(|cx| Pin::new(io.get_mut()).poll_shutdown(cx)).await.map_err(EncodeError::from)
        };
        match send_timeout.is_zero() {
            true => Ok(close.await.map_err(MqttError::Encode)?),
            false => match tokio::time::timeout(send_timeout, close).await {
                Ok(r) => Ok(r.map_err(MqttError::Encode)?),
                Err(_) => Err(MqttError::CloseTimeout.into()),
            },
        }
    }

    async fn write_out<Io>(&mut self, io: &mut Framed<Io, MqttCodec>) -> std::result::Result<(), EncodeError>
    where
        Io: AsyncWrite + Unpin,
    {
        poll_fn(|cx| self.poll_write_out(io.get_mut(), cx)).await.map_err(EncodeError::from)
    }

    fn poll_write_out<Io>(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<()>>
    where
        Io: AsyncWrite + Unpin,
    {
        while self.has_pending() {
            let written = if self.chunks.is_empty() {
                futures::ready!(Pin::new(&mut *io).poll_write(cx, &self.tail))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                let mut offset = 0;
                for chunk in self.chunks.iter().take(MAX_SLICES - 1) {
                    slices[n] = match chunk {
                        Chunk::Tail(len) => {
                            offset += len;
                            IoSlice::new(&self.tail[offset - len..offset])
                        }
                        Chunk::Payload(payload) => IoSlice::new(payload),
                    };
                    n += 1;
                }
                if n < MAX_SLICES - 1 && self.tail.len() > offset {
                    slices[n] = IoSlice::new(&self.tail[offset..]);
                    n += 1;
                }
                futures::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some(w) = &self.wire_bytes {
                w.wrote(written);
            }
            self.advance(written);
        }
        Pin::new(io).poll_flush(cx)
    }

    fn advance(&mut self, mut written: usize) {
        while let Some(front) = self.chunks.front_mut() {
            match front {
                Chunk::Tail(len) if written < *len => {
                    *len -= written;
                    self.claimed -= written;
                    self.tail.advance(written);
                    return;
                }
                Chunk::Tail(len) => {
                    written -= *len;
                    self.claimed -= *len;
                    self.tail.advance(*len);
                }
                Chunk::Payload(payload) if written < payload.len() => {
                    payload.advance(written);
                    self.chunked -= written;
                    return;
                }
                Chunk::Payload(payload) => {
                    written -= payload.len();
                    self.chunked -= payload.len();
                }
            }
            self.chunks.pop_front();
        }
        self.tail.advance(written);
    }

    /// Encodes `packet` into the tail, or, for a large publish payload on an
    /// `Io` that takes vectored writes, its header into the tail and the
    /// payload as a chunk of its own.
    fn encode(
        &mut self,
        codec: &mut MqttCodec,
        packet: MqttPacket,
        vectored: bool,
    ) -> std::result::Result<(), EncodeError> {
        let (packet, payload) = match packet {
            MqttPacket::V3(v3::Packet::Publish(p)) if vectored && p.payload.len() >= ZERO_COPY_MIN => {
                let (p, payload) = take_payload(p);
                (MqttPacket::V3(v3::Packet::Publish(p)), payload)
            }
            MqttPacket::V5(v5::Packet::Publish(p)) if vectored && p.payload.len() >= ZERO_COPY_MIN => {
                let (p, payload) = take_payload(p);
                (MqttPacket::V5(v5::Packet::Publish(p)), payload)
            }
            packet => return codec.encode(packet, &mut self.tail),
        };
        let start = self.tail.len();
        codec.encode(packet, &mut self.tail)?;
        let (length, _) = read_remaining_length(&self.tail[start..]).ok_or(EncodeError::InvalidLength)?;
        let size = length + payload.len();
        // The limit rmqtt-codec checks, on the whole packet: a v5 peer's
        // maximum packet size, or what MQTT can express at all.
        let max = match codec {
            MqttCodec::V5(c) if c.max_outbound_size() != 0 => c.max_outbound_size(),
            _ => MAX_PACKET_SIZE,
        };
        if size > max as usize {
            self.tail.truncate(start);
            return Err(EncodeError::OverMaxPacketSize { size: size.min(u32::MAX as usize) as u32, max });
        }
        set_remaining_length(&mut self.tail, start, size);
        self.chunks.push_back(Chunk::Tail(self.tail.len() - self.claimed));
        self.claimed = self.tail.len();
        self.chunked += payload.len();
        self.chunks.push_back(Chunk::Payload(payload));
        Ok(())
    }
}

fn take_payload(mut p: Box<Publish>) -> (Box<Publish>, Bytes) {
    let payload = std::mem::take(&mut p.payload);
    (p, payload)
}

/// Reads the remaining length after a fixed header's first byte: (length,
/// bytes it takes), or `None` while not all of it is there.
pub(crate) fn read_remaining_length(packet: &[u8]) -> Option<(usize, usize)> {
    let mut length = 0usize;
    for (i, byte) in packet.iter().skip(1).take(4).enumerate() {
        length |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((length, i + 1));
        }
    }
    None
}

/// Rewrites the remaining length of the packet encoded at `buf[start..]`
/// as `length` (at most `MAX_PACKET_SIZE`): its payload follows in a chunk
/// of its own.
fn set_remaining_length(buf: &mut BytesMut, start: usize, length: usize) {
    let old_width = read_remaining_length(&buf[start..]).map_or(1, |(_, width)| width);
    let mut encoded = [0u8; 4];
    let mut width = 0;
    let mut rest = length;
    loop {
        let mut byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest > 0 {
            byte |= 0x80;
        }
        encoded[width] = byte;
        width += 1;
        if rest == 0 || width == encoded.len() {
            break;
        }
    }
    if width > old_width {
        // Shift the variable header (topic, packet id, properties: a few
        // dozen bytes) to make room for the longer length.
        let body = start + 1 + old_width;
        let end = buf.len();
        buf.put_bytes(0, width - old_width);
        buf.copy_within(body..end, body + width - old_width);
    }
    buf[start + 1..start + 1 + width].copy_from_slice(&encoded[..width]);
}

async fn with_timeout<F>(send_timeout: Duration, fut: F, timed_out: MqttError) -> Result<()>
where
    F: std::future::Future<Output = std::result::Result<(), EncodeError>>,
{
    let result = if send_timeout.is_zero() {
        fut.await
    } else {
        match tokio::time::timeout(send_timeout, fut).await {
            Ok(r) => r,
            Err(_) => return Err(timed_out.into()),
        }
    };
    result.map_err(|e| MqttError::SendPacket(SendPacketError::Encode(e)).into())
}

/// The write batching of one connection. A connection streams when a packet
/// finds a full batch waiting; it then takes a large batch if its listener
/// has one free. Flushes of less than `WRITE_BATCH`, `QUIET_FLUSHES` times in
/// a row, end the burst.
#[derive(Debug, Default)]
struct WriteBatch {
    quiet: u8,
    large: Option<LargeBatch>,
}

/// One of a listener's large write batches, given back when dropped.
#[derive(Debug)]
struct LargeBatch(Arc<AtomicUsize>);

impl LargeBatch {
    fn take(in_use: &Arc<AtomicUsize>) -> Option<Self> {
        in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < LARGE_WRITE_BATCHES).then_some(n + 1))
            .ok()
            .map(|_| LargeBatch(in_use.clone()))
    }
}

impl Drop for LargeBatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WriteBatch {
    #[inline]
    fn size(&self) -> usize {
        if self.large.is_some() {
            LARGE_WRITE_BATCH
        } else {
            WRITE_BATCH
        }
    }

    /// A packet found a full batch waiting.
    fn streaming(&mut self, in_use: &Arc<AtomicUsize>) {
        self.quiet = 0;
        if self.large.is_none() {
            self.large = LargeBatch::take(in_use);
        }
    }

    /// After a flush that wrote `written` bytes.
    fn after_flush(&mut self, tail: &mut BytesMut, written: usize) {
        if self.large.is_none() && tail.capacity() <= WRITE_BATCH {
            return;
        }
        if written >= WRITE_BATCH {
            self.quiet = 0;
            return;
        }
        self.quiet += 1;
        if self.quiet < QUIET_FLUSHES {
            return;
        }
        self.quiet = 0;
        self.large = None;
        if tail.is_empty() && tail.capacity() > WRITE_BATCH {
            *tail = BytesMut::with_capacity(INITIAL_BUFFER);
        }
    }
}
