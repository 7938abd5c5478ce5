//! fork patch: bytes of MQTT packets read and written, per listener or
//! shared by the listeners of one broker.
//!
//! Counted at the MQTT layer, as mosquitto counts its `$SYS/broker/bytes/*`:
//! every packet's fixed header, variable header and payload, whatever the
//! transport (TLS records and WebSocket frames are not counted). A read adds
//! once per decoded packet, a write once per `write`/`writev` call.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of MQTT packets read from and written to clients.
#[derive(Debug, Default)]
pub struct WireBytes {
    received: AtomicU64,
    sent: AtomicU64,
}

impl WireBytes {
    /// Bytes of the packets decoded so far.
    #[inline]
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes written to client sockets so far.
    #[inline]
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A packet of `remaining_length` was decoded: counts it whole, fixed
    /// header included.
    #[inline]
    pub(crate) fn read_packet(&self, remaining_length: u32) {
        self.received.fetch_add(packet_size(remaining_length), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn wrote(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A packet's size from its remaining length: the first byte, the length's
/// variable byte integer (1-4 bytes), and the rest.
#[inline]
fn packet_size(remaining_length: u32) -> u64 {
    let width = match remaining_length {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + width + u64::from(remaining_length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_counts_its_header_and_the_length_width() {
        let w = WireBytes::default();
        w.read_packet(0); // PINGREQ: 0xC0 0x00
        assert_eq!(w.received(), 2);
        w.read_packet(127);
        assert_eq!(w.received(), 2 + 129);
        w.read_packet(128);
        assert_eq!(w.received(), 2 + 129 + 131);
        assert_eq!(packet_size(16_384), 16_388);
        assert_eq!(packet_size(2_097_152), 2_097_157);
        w.wrote(5);
        assert_eq!(w.sent(), 5);
    }
}
