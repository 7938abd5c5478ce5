//! What every payload starts with: the send time, which publisher sent it
//! and its sequence number. The rest is zero padding up to `--size`.

pub const HEADER: usize = 16;

pub struct Header {
  pub sent_ns: u64,
  pub publisher: u32,
  pub seq: u32,
}

pub fn write(p: &mut [u8], h: &Header) {
  p[0..8].copy_from_slice(&h.sent_ns.to_le_bytes());
  p[8..12].copy_from_slice(&h.publisher.to_le_bytes());
  p[12..16].copy_from_slice(&h.seq.to_le_bytes());
}

pub fn read(p: &[u8]) -> Option<Header> {
  let b = p.get(..HEADER)?;
  Some(Header {
    sent_ns: u64::from_le_bytes(b[0..8].try_into().ok()?),
    publisher: u32::from_le_bytes(b[8..12].try_into().ok()?),
    seq: u32::from_le_bytes(b[12..16].try_into().ok()?),
  })
}
