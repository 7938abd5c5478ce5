//! MQTT v3.1.1 Protocol codec

#[allow(clippy::module_inception)]
mod codec;
mod decode;
pub(crate) mod encode;
mod packet;

pub use self::codec::Codec;
pub use self::packet::{Connect, ConnectAck, ConnectAckReason, LastWill, Packet, SubscribeReturnCode};
pub use crate::types::{ConnectAckFlags, ConnectFlags, QoS};
