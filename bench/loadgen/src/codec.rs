//! The few MQTT 3.1.1 packets the load needs, encoded by hand, and a framing
//! reader that splits a byte stream into packets without copying them.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const SUBACK: u8 = 9;

fn put_len(buf: &mut Vec<u8>, mut len: usize) {
  loop {
    let mut b = (len % 128) as u8;
    len /= 128;
    if len > 0 {
      b |= 0x80;
    }
    buf.push(b);
    if len == 0 {
      break;
    }
  }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
  buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
  buf.extend_from_slice(s.as_bytes());
}

/// CONNECT with a clean session and, if given, a username and password.
pub fn connect(buf: &mut Vec<u8>, client_id: &str, keepalive: u16, creds: Option<&Credentials>) {
  buf.push(0x10);
  let creds_len = creds.map_or(0, |(u, p)| 4 + u.len() + p.len());
  put_len(buf, 10 + 2 + client_id.len() + creds_len);
  put_str(buf, "MQTT");
  buf.push(4); // protocol level 3.1.1
               // clean session, plus the username and password flags
  buf.push(if creds.is_some() { 0xC2 } else { 0x02 });
  buf.extend_from_slice(&keepalive.to_be_bytes());
  put_str(buf, client_id);
  if let Some((u, p)) = creds {
    put_str(buf, u);
    put_str(buf, p);
  }
}

/// A CONNECT's username and password.
pub type Credentials = (String, String);

pub fn subscribe(buf: &mut Vec<u8>, pid: u16, filter: &str, qos: u8) {
  buf.push(0x82);
  put_len(buf, 2 + 2 + filter.len() + 1);
  buf.extend_from_slice(&pid.to_be_bytes());
  put_str(buf, filter);
  buf.push(qos);
}

/// Appends a PUBLISH; returns the offset of its payload in `buf`, so that the
/// caller can stamp a copy of the packet in place.
pub fn publish(buf: &mut Vec<u8>, topic: &str, qos: u8, pid: u16, payload: &[u8]) -> usize {
  buf.push(0x30 | (qos << 1));
  let pid_len = if qos > 0 { 2 } else { 0 };
  put_len(buf, 2 + topic.len() + pid_len + payload.len());
  put_str(buf, topic);
  if qos > 0 {
    buf.extend_from_slice(&pid.to_be_bytes());
  }
  let at = buf.len();
  buf.extend_from_slice(payload);
  at
}

pub fn puback(buf: &mut Vec<u8>, pid: u16) {
  buf.push(0x40);
  buf.push(2);
  buf.extend_from_slice(&pid.to_be_bytes());
}

pub fn disconnect(buf: &mut Vec<u8>) {
  buf.extend_from_slice(&[0xE0, 0]);
}

/// One packet as received: `kind` is the packet type (high nibble), `flags`
/// the low nibble, `body` everything after the fixed header.
pub struct Packet<'a> {
  pub kind: u8,
  pub flags: u8,
  pub body: &'a [u8],
}

/// The parts of a PUBLISH the load looks at.
pub struct Publish<'a> {
  pub qos: u8,
  pub pid: u16,
  pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
  pub fn publish(&self) -> Option<Publish<'a>> {
    let b = self.body;
    let tlen = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
    let mut at = 2 + tlen;
    let qos = (self.flags >> 1) & 3;
    let mut pid = 0;
    if qos > 0 {
      pid = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
      at += 2;
    }
    Some(Publish {
      qos,
      pid,
      payload: b.get(at..)?,
    })
  }
}

/// Reads a byte stream into one reusable buffer and hands out whole packets.
pub struct Reader {
  buf: Vec<u8>,
  start: usize,
  end: usize,
}

/// Room kept free before each read, so that reads stay large.
const MIN_FREE: usize = 16 * 1024;

impl Reader {
  pub fn new(capacity: usize) -> Self {
    Reader {
      buf: vec![0; capacity.max(2 * MIN_FREE)],
      start: 0,
      end: 0,
    }
  }

  /// Reads once (cancel-safe: nothing is consumed unless the read completes).
  /// A closed stream is an error: the peer never closes first in this load.
  pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<usize> {
    if self.start == self.end {
      self.start = 0;
      self.end = 0;
    } else if self.buf.len() - self.end < MIN_FREE {
      self.buf.copy_within(self.start..self.end, 0);
      self.end -= self.start;
      self.start = 0;
      if self.buf.len() - self.end < MIN_FREE {
        let len = self.buf.len() * 2;
        self.buf.resize(len, 0);
      }
    }
    let n = r.read(&mut self.buf[self.end..]).await?;
    if n == 0 {
      return Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "broker closed the connection",
      ));
    }
    self.end += n;
    Ok(n)
  }

  /// The next complete packet, if one is buffered.
  pub fn next_packet(&mut self) -> io::Result<Option<Packet<'_>>> {
    let b = &self.buf[self.start..self.end];
    if b.len() < 2 {
      return Ok(None);
    }
    let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
    loop {
      let Some(&c) = b.get(i) else {
        return Ok(None);
      };
      if i > 4 {
        return Err(io::Error::new(
          io::ErrorKind::InvalidData,
          "malformed remaining length",
        ));
      }
      len += (c & 0x7f) as usize * mult;
      mult *= 128;
      i += 1;
      if c & 0x80 == 0 {
        break;
      }
    }
    if b.len() < i + len {
      return Ok(None);
    }
    let at = self.start;
    self.start += i + len;
    let first = self.buf[at];
    Ok(Some(Packet {
      kind: first >> 4,
      flags: first & 0x0f,
      body: &self.buf[at + i..at + i + len],
    }))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn frames_round_trip_across_reads() {
    let mut wire = Vec::new();
    let payload = vec![7u8; 300];
    publish(&mut wire, "a/b", 1, 42, &payload);
    puback(&mut wire, 9);
    let mut r = Reader::new(0);
    // Deliver the bytes in two pieces so that a packet straddles the reads.
    let (a, b) = wire.split_at(100);
    let mut src = a.chain(b);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
      r.fill(&mut src).await.unwrap();
      while let Some(p) = r.next_packet().unwrap() {
        if p.kind == PUBLISH {
          let m = p.publish().unwrap();
          assert_eq!((m.qos, m.pid, m.payload.len()), (1, 42, 300));
        } else {
          assert_eq!((p.kind, p.body), (PUBACK, &[0u8, 9][..]));
        }
        kinds.push(p.kind);
      }
    }
    assert_eq!(kinds, [PUBLISH, PUBACK]);
  }
}
