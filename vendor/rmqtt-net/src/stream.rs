//! MQTT protocol stream dispatcher and version-specific stream implementations.
//!
//! Provides protocol version negotiation ([`Dispatcher::mqtt`]) and version-specific
//! MQTT v3.1.1/v5.0 stream types ([`v3::MqttStream`], [`v5::MqttStream`]) with send/recv
//! methods for all MQTT packet types.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::anyhow;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// Read buffer of a connection that pipelines packets (fork patch).
/// 64 KiB rather than 16: a flood of 4 KiB packets takes one `recvfrom` per
/// 16 packets instead of 4. A buffer is only this large while its
/// connection pipelines, and its packets use it up.
const READ_BATCH: usize = 64 * 1024;

use crate::stall::Stall;
use crate::writer::{read_remaining_length, Writer, INITIAL_BUFFER};
use crate::{Builder, MqttError, Result};
use rmqtt_codec::cert::CertInfo;
use rmqtt_codec::error::DecodeError;
use rmqtt_codec::v3::Codec as CodecV3;
use rmqtt_codec::v5::Codec as CodecV5;
use rmqtt_codec::version::{ProtocolVersion, VersionCodec};
use rmqtt_codec::{MqttCodec, MqttPacket};

/// MQTT protocol dispatcher handling version negotiation
///
/// Manages initial protocol detection and creates version-specific streams
pub struct Dispatcher<Io> {
    /// Framed IO layer with MQTT codec
    pub(crate) io: Framed<Io, MqttCodec>,
    /// Remote client's network address
    pub remote_addr: SocketAddr,
    /// Shared configuration builder
    pub cfg: Arc<Builder>,

    pub cert_info: Option<CertInfo>,

    /// When the handshake must be over (fork patch).
    pub handshake_deadline: tokio::time::Instant,
}

impl<Io> Dispatcher<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    /// Creates a new Dispatcher instance
    pub(crate) fn new(
        io: Io,
        remote_addr: SocketAddr,
        cert_info: Option<CertInfo>,
        cfg: Arc<Builder>,
        handshake_deadline: tokio::time::Instant,
    ) -> Self {
        // fork patch: start the read buffer small (`Framed::new` gives
        // 8 KiB; it grows on demand). Writes go through `Writer`, never through
        // `Framed`'s write buffer, which therefore gets no memory at all.
        let mut io = Framed::with_capacity(io, MqttCodec::Version(VersionCodec), INITIAL_BUFFER);
        *io.write_buffer_mut() = tokio_util::bytes::BytesMut::new();
        Dispatcher { io, remote_addr, cfg, cert_info, handshake_deadline }
    }

    /// Negotiates protocol version and returns appropriate stream
    #[inline]
    pub async fn mqtt(mut self) -> Result<MqttStream<Io>> {
        let writer = Box::new(Writer::counting(self.cfg.wire_bytes.clone()));
        Ok(match self.probe_version().await? {
            ProtocolVersion::MQTT3 => MqttStream::V3(v3::MqttStream {
                io: self.io,
                remote_addr: self.remote_addr,
                cfg: self.cfg,
                #[cfg(feature = "tls")]
                cert_info: self.cert_info,
                writer,
                handshake_deadline: self.handshake_deadline,
                stall: Stall::default(),
            }),
            ProtocolVersion::MQTT5 => MqttStream::V5(v5::MqttStream {
                io: self.io,
                remote_addr: self.remote_addr,
                cfg: self.cfg,
                #[cfg(feature = "tls")]
                cert_info: self.cert_info,
                writer,
                handshake_deadline: self.handshake_deadline,
                stall: Stall::default(),
            }),
        })
    }

    /// Detects protocol version from initial handshake
    #[inline]
    async fn probe_version(&mut self) -> Result<ProtocolVersion> {
        // fork patch: within the handshake deadline (this read had no
        // timeout: a connection that sent nothing was kept for ever).
        let first = tokio::time::timeout_at(self.handshake_deadline, self.io.next()).await;
        let first = first.map_err(|_| MqttError::ReadTimeout)?;
        // fork patch: an unsupported protocol level is answered by CONNACK
        // 0x01 (unacceptable protocol version) before the close [MQTT-3.1.2-2];
        // the connection was closed without one. The 3.1.1 form: a client of
        // an unknown level reads it, and 5.0's 0x84 is optional.
        if let Some(Err(DecodeError::UnsupportedProtocolLevel)) = &first {
            use tokio::io::AsyncWriteExt;
            let connack = [0x20, 0x02, 0x00, 0x01];
            if self.io.get_mut().write_all(&connack).await.is_ok() {
                if let Some(w) = &self.cfg.wire_bytes {
                    w.wrote(connack.len());
                }
            }
            let _ = self.io.get_mut().flush().await;
        }
        let Some(Ok((MqttPacket::Version(ver), _))) = first else {
            return Err(anyhow!(DecodeError::InvalidProtocol));
        };

        let codec = match ver {
            ProtocolVersion::MQTT3 => MqttCodec::V3(CodecV3::new(self.cfg.max_packet_size)),
            ProtocolVersion::MQTT5 => {
                MqttCodec::V5(CodecV5::new(self.cfg.max_packet_size, self.cfg.max_packet_size))
            }
        };

        *self.io.codec_mut() = codec;
        Ok(ver)
    }
}

/// Version-specific MQTT protocol streams
pub enum MqttStream<Io> {
    /// MQTT v3.1.1 implementation
    V3(v3::MqttStream<Io>),
    /// MQTT v5.0 implementation
    V5(v5::MqttStream<Io>),
}

pub mod v3 {

    use std::net::SocketAddr;
    use std::num::NonZeroU16;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_util::codec::Framed;

    use crate::error::MqttError;
    use crate::{Builder, Result};
    #[cfg(feature = "tls")]
    use rmqtt_codec::cert::CertInfo;
    use rmqtt_codec::error::DecodeError;
    use rmqtt_codec::types::Publish;
    use rmqtt_codec::v3::{Connect, ConnectAckReason, Packet as PacketV3, Packet};
    use rmqtt_codec::{MqttCodec, MqttPacket};

    /// MQTT v3.1.1 protocol stream implementation
    pub struct MqttStream<Io> {
        /// Framed IO layer with MQTT codec
        pub io: Framed<Io, MqttCodec>,
        /// Remote client's network address
        pub remote_addr: SocketAddr,
        /// Shared configuration builder
        pub cfg: Arc<Builder>,
        #[cfg(feature = "tls")]
        /// TLS certificate information (if available)
        pub cert_info: Option<CertInfo>,
        /// Queued output (fork patch)
        pub writer: Box<super::Writer>,
        /// When the handshake must be over (fork patch).
        pub handshake_deadline: tokio::time::Instant,
        /// Closes the connection when a started packet stops arriving
        /// (fork patch).
        pub(crate) stall: super::Stall,
    }

    /// # Examples
    /// ```
    /// use std::net::{SocketAddr, IpAddr, Ipv4Addr};
    /// use std::sync::Arc;
    /// use tokio::net::TcpStream;
    /// use tokio_util::codec::Framed;
    /// use rmqtt_codec::{MqttCodec, types::Publish};
    /// use rmqtt_net::{Builder,v3};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1883);
    /// let stream = TcpStream::connect(addr).await?;
    /// let mut mqtt_stream = v3::MqttStream {
    ///     io: Framed::new(stream, MqttCodec::V3(Default::default())),
    ///     remote_addr: addr,
    ///     cfg: Arc::new(Builder::default()),
    ///     cert_info: None,
    ///     write_batch: Default::default(),
    /// };
    ///
    /// // Send a PING request
    /// mqtt_stream.send_ping_request().await?;
    /// # Ok(())
    /// # }
    /// ```
    impl<Io> MqttStream<Io>
    where
        Io: AsyncRead + AsyncWrite + Unpin,
    {
        /// Sends DISCONNECT packet and flushes buffers
        #[inline]
        pub async fn send_disconnect(&mut self) -> Result<()> {
            self.send(PacketV3::Disconnect).await?;
            self.flush().await
        }

        /// Publishes a message to the broker
        #[inline]
        pub async fn send_publish(&mut self, publish: Box<Publish>) -> Result<()> {
            self.feed(PacketV3::Publish(publish)).await
        }

        /// Acknowledges a received publish (QoS 1)
        #[inline]
        pub async fn send_publish_ack(&mut self, packet_id: NonZeroU16) -> Result<()> {
            self.feed(PacketV3::PublishAck { packet_id }).await
        }

        /// Confirms receipt of a publish (QoS 2 step 1)
        #[inline]
        pub async fn send_publish_received(&mut self, packet_id: NonZeroU16) -> Result<()> {
            self.feed(PacketV3::PublishReceived { packet_id }).await
        }

        /// Releases a stored publish (QoS 2 step 2)
        #[inline]
        pub async fn send_publish_release(&mut self, packet_id: NonZeroU16) -> Result<()> {
            self.feed(PacketV3::PublishRelease { packet_id }).await
        }

        /// Confirms publish completion (QoS 2 step 3)
        #[inline]
        pub async fn send_publish_complete(&mut self, packet_id: NonZeroU16) -> Result<()> {
            self.feed(PacketV3::PublishComplete { packet_id }).await
        }

        /// Acknowledges a subscription request
        #[inline]
        pub async fn send_subscribe_ack(
            &mut self,
            packet_id: NonZeroU16,
            status: Vec<rmqtt_codec::v3::SubscribeReturnCode>,
        ) -> Result<()> {
            self.send(PacketV3::SubscribeAck { packet_id, status }).await
        }

        /// Acknowledges an unsubscribe request
        #[inline]
        pub async fn send_unsubscribe_ack(&mut self, packet_id: NonZeroU16) -> Result<()> {
            self.send(PacketV3::UnsubscribeAck { packet_id }).await
        }

        /// Initiates connection to the broker
        #[inline]
        pub async fn send_connect(&mut self, connect: rmqtt_codec::v3::Connect) -> Result<()> {
            self.send(PacketV3::Connect(Box::new(connect))).await
        }

        /// Responds to connection request
        #[inline]
        pub async fn send_connect_ack(
            &mut self,
            return_code: ConnectAckReason,
            session_present: bool,
        ) -> Result<()> {
            self.send(PacketV3::ConnectAck(rmqtt_codec::v3::ConnectAck { session_present, return_code }))
                .await
        }

        /// Sends keep-alive ping request
        #[inline]
        pub async fn send_ping_request(&mut self) -> Result<()> {
            self.send(PacketV3::PingRequest {}).await
        }

        /// Responds to ping request
        #[inline]
        pub async fn send_ping_response(&mut self) -> Result<()> {
            self.send(PacketV3::PingResponse {}).await
        }

        /// Generic packet sending method
        #[inline]
        pub async fn send(&mut self, packet: rmqtt_codec::v3::Packet) -> Result<()> {
            self.writer
                .send(
                    &mut self.io,
                    MqttPacket::V3(packet),
                    &self.cfg.large_write_batches,
                    self.cfg.send_timeout,
                )
                .await
        }

        /// Queues a packet in the write buffer without flushing it (fork
        /// patch). The buffer is written out once it passes the backpressure
        /// boundary, or by `flush`; the session loop flushes when it has no
        /// more work ready, so a burst of deliveries and acks costs one write.
        #[inline]
        pub async fn feed(&mut self, packet: rmqtt_codec::v3::Packet) -> Result<()> {
            if self.needs_room() {
                // Boxed: rare, and inline it made every caller's future larger.
                Box::pin(self.make_room()).await?;
            }
            self.queue(packet)
        }

        /// Whether queued packets must be written out before the next is
        /// queued (fork patch; see `Writer::needs_room`).
        #[inline]
        pub fn needs_room(&mut self) -> bool {
            self.writer.needs_room(&self.cfg.large_write_batches)
        }

        /// Writes out queued packets to make room (fork patch).
        #[inline]
        pub async fn make_room(&mut self) -> Result<()> {
            self.writer.make_room(&mut self.io, self.cfg.send_timeout).await
        }

        /// Queues a packet without writing, room or not (fork patch):
        /// `feed` without its check.
        #[inline]
        pub fn queue(&mut self, packet: rmqtt_codec::v3::Packet) -> Result<()> {
            self.writer.queue(&mut self.io, MqttPacket::V3(packet))
        }

        /// Whether queued packets wait in the write buffer (fork patch).
        #[inline]
        pub fn has_pending_writes(&self) -> bool {
            self.writer.has_pending()
        }

        /// Flushes write buffers
        #[inline]
        pub async fn flush(&mut self) -> Result<()> {
            self.writer.flush(&mut self.io, self.cfg.send_timeout).await
        }

        /// Closes the connection gracefully
        #[inline]
        pub async fn close(&mut self) -> Result<()> {
            self.writer.close(&mut self.io, self.cfg.send_timeout).await
        }

        /// Receives next packet with timeout
        #[inline]
        pub async fn recv(&mut self, tm: Duration) -> Result<Option<rmqtt_codec::v3::Packet>> {
            match tokio::time::timeout(tm, self.next()).await {
                Ok(Some(Ok(msg))) => Ok(Some(msg)),
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => Ok(None),
                Err(_) => Err(MqttError::ReadTimeout.into()),
            }
        }

        /// Waits for CONNECT packet with timeout
        #[inline]
        pub async fn recv_connect(&mut self, tm: Duration) -> Result<Box<Connect>> {
            // fork patch: never past the deadline counted from accept.
            let tm = tm.min(self.handshake_deadline.saturating_duration_since(tokio::time::Instant::now()));
            let connect = match self.recv(tm).await {
                #[allow(unused_mut)]
                Ok(Some(Packet::Connect(mut connect))) => {
                    #[cfg(feature = "tls")]
                    {
                        // Subject DN takes precedence over CN when both
                        // flags are set: full DN includes O/OU/CN and is
                        // self-namespacing across CAs.
                        if let Some(cert) = &self.cert_info {
                            if self.cfg.cert_subject_dn_as_username && !cert.subject.is_empty() {
                                connect.username = Some(cert.subject.clone().into());
                            } else if self.cfg.cert_cn_as_username {
                                if let Some(cn) = &cert.common_name {
                                    connect.username = Some(cn.clone().into());
                                }
                            }
                        }
                        if self.cfg.collect_cert_info {
                            connect.cert = self.cert_info.clone();
                        }
                    }
                    connect
                }
                Err(e) => {
                    return Err(e);
                }
                _ => {
                    return Err(MqttError::InvalidProtocol.into());
                }
            };
            Ok(connect)
        }
    }

    impl<Io> futures::Stream for MqttStream<Io>
    where
        Io: AsyncRead + Unpin,
    {
        type Item = Result<rmqtt_codec::v3::Packet>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            let next = futures::ready!(super::poll_packet(&mut this.io, &mut this.stall, &this.cfg, cx));
            Poll::Ready(match next {
                Some(Ok(MqttPacket::V3(packet))) => Some(Ok(packet)),
                Some(Ok(_)) => Some(Err(MqttError::Decode(DecodeError::MalformedPacket).into())),
                Some(Err(e)) => Some(Err(e)),
                None => None,
            })
        }
    }
}

pub mod v5 {
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_util::codec::Framed;

    use crate::error::MqttError;
    use crate::{Builder, Result};
    #[cfg(feature = "tls")]
    use rmqtt_codec::cert::CertInfo;
    use rmqtt_codec::error::DecodeError;
    use rmqtt_codec::types::Publish;
    use rmqtt_codec::v5::{Auth, Connect, Disconnect, Packet as PacketV5, Packet};
    use rmqtt_codec::{MqttCodec, MqttPacket};

    /// MQTT v5.0 protocol stream implementation
    pub struct MqttStream<Io> {
        /// Framed IO layer with MQTT codec
        pub io: Framed<Io, MqttCodec>,
        /// Remote client's network address
        pub remote_addr: SocketAddr,
        /// Shared configuration builder
        pub cfg: Arc<Builder>,
        #[cfg(feature = "tls")]
        /// TLS certificate information (if available)
        pub cert_info: Option<CertInfo>,
        /// Queued output (fork patch)
        pub writer: Box<super::Writer>,
        /// When the handshake must be over (fork patch).
        pub handshake_deadline: tokio::time::Instant,
        /// Closes the connection when a started packet stops arriving
        /// (fork patch).
        pub(crate) stall: super::Stall,
    }

    /// # Examples
    /// ```
    /// use std::net::{SocketAddr, IpAddr, Ipv4Addr};
    /// use std::sync::Arc;
    /// use tokio::net::TcpStream;
    /// use tokio_util::codec::Framed;
    /// use rmqtt_codec::{MqttCodec, types::Publish};
    /// use rmqtt_net::{Builder,v5};
    /// use rmqtt_codec::v5::Connect;
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1883);
    /// let stream = TcpStream::connect(addr).await?;
    /// let mut mqtt_stream = v5::MqttStream {
    ///     io: Framed::new(stream, MqttCodec::V5(Default::default())),
    ///     remote_addr: addr,
    ///     cfg: Arc::new(Builder::default()),
    ///     cert_info: None,
    ///     write_batch: Default::default(),
    /// };
    ///
    /// // Send authentication packet
    /// mqtt_stream.send_auth(rmqtt_codec::v5::Auth::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    impl<Io> MqttStream<Io>
    where
        Io: AsyncRead + AsyncWrite + Unpin,
    {
        /// Sends DISCONNECT packet with reason code
        #[inline]
        pub async fn send_disconnect(&mut self, disc: Disconnect) -> Result<()> {
            self.send(PacketV5::Disconnect(disc)).await?;
            self.flush().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }

        /// Publishes a message to the broker
        #[inline]
        pub async fn send_publish(&mut self, publish: Box<Publish>) -> Result<()> {
            self.feed(PacketV5::Publish(publish)).await
        }

        /// How many bytes `publish` stays under the client's Maximum Packet
        /// Size (negative: over; fork patch). `send_publish` fails the
        /// connection for one that is over.
        #[inline]
        pub fn room_for(&self, publish: &Publish) -> i64 {
            match self.io.codec() {
                MqttCodec::V5(codec) => codec.room_for(publish),
                _ => i64::MAX,
            }
        }

        /// Acknowledges a received publish (QoS 1)
        #[inline]
        pub async fn send_publish_ack(&mut self, ack: rmqtt_codec::v5::PublishAck) -> Result<()> {
            self.feed(PacketV5::PublishAck(ack)).await
        }

        /// Confirms receipt of a publish (QoS 2 step 1)
        #[inline]
        pub async fn send_publish_received(&mut self, ack: rmqtt_codec::v5::PublishAck) -> Result<()> {
            self.feed(PacketV5::PublishReceived(ack)).await
        }

        /// Releases a stored publish (QoS 2 step 2)
        #[inline]
        pub async fn send_publish_release(&mut self, ack2: rmqtt_codec::v5::PublishAck2) -> Result<()> {
            self.feed(PacketV5::PublishRelease(ack2)).await
        }

        /// Confirms publish completion (QoS 2 step 3)
        #[inline]
        pub async fn send_publish_complete(&mut self, ack2: rmqtt_codec::v5::PublishAck2) -> Result<()> {
            self.feed(PacketV5::PublishComplete(ack2)).await
        }

        /// Acknowledges a subscription request
        #[inline]
        pub async fn send_subscribe_ack(&mut self, ack: rmqtt_codec::v5::SubscribeAck) -> Result<()> {
            self.send(PacketV5::SubscribeAck(ack)).await
        }

        /// Acknowledges an unsubscribe request
        #[inline]
        pub async fn send_unsubscribe_ack(&mut self, unack: rmqtt_codec::v5::UnsubscribeAck) -> Result<()> {
            self.send(PacketV5::UnsubscribeAck(unack)).await
        }

        /// Initiates connection to the broker
        #[inline]
        pub async fn send_connect(&mut self, connect: rmqtt_codec::v5::Connect) -> Result<()> {
            self.send(PacketV5::Connect(Box::new(connect))).await
        }

        /// Responds to connection request
        #[inline]
        pub async fn send_connect_ack(&mut self, ack: rmqtt_codec::v5::ConnectAck) -> Result<()> {
            self.send(PacketV5::ConnectAck(Box::new(ack))).await
        }

        /// Sends keep-alive ping request
        #[inline]
        pub async fn send_ping_request(&mut self) -> Result<()> {
            self.send(PacketV5::PingRequest {}).await
        }

        /// Responds to ping request
        #[inline]
        pub async fn send_ping_response(&mut self) -> Result<()> {
            self.send(PacketV5::PingResponse {}).await
        }

        /// Sends authentication exchange packet
        #[inline]
        pub async fn send_auth(&mut self, auth: Auth) -> Result<()> {
            self.send(PacketV5::Auth(auth)).await
        }

        /// Generic packet sending method
        #[inline]
        pub async fn send(&mut self, packet: rmqtt_codec::v5::Packet) -> Result<()> {
            self.writer
                .send(
                    &mut self.io,
                    MqttPacket::V5(packet),
                    &self.cfg.large_write_batches,
                    self.cfg.send_timeout,
                )
                .await
        }

        /// Queues a packet in the write buffer without flushing it (fork
        /// patch). The buffer is written out once it passes the backpressure
        /// boundary, or by `flush`; the session loop flushes when it has no
        /// more work ready, so a burst of deliveries and acks costs one write.
        #[inline]
        pub async fn feed(&mut self, packet: rmqtt_codec::v5::Packet) -> Result<()> {
            if self.needs_room() {
                // Boxed: rare, and inline it made every caller's future larger.
                Box::pin(self.make_room()).await?;
            }
            self.queue(packet)
        }

        /// Whether queued packets must be written out before the next is
        /// queued (fork patch; see `Writer::needs_room`).
        #[inline]
        pub fn needs_room(&mut self) -> bool {
            self.writer.needs_room(&self.cfg.large_write_batches)
        }

        /// Writes out queued packets to make room (fork patch).
        #[inline]
        pub async fn make_room(&mut self) -> Result<()> {
            self.writer.make_room(&mut self.io, self.cfg.send_timeout).await
        }

        /// Queues a packet without writing, room or not (fork patch):
        /// `feed` without its check.
        #[inline]
        pub fn queue(&mut self, packet: rmqtt_codec::v5::Packet) -> Result<()> {
            self.writer.queue(&mut self.io, MqttPacket::V5(packet))
        }

        /// Whether queued packets wait in the write buffer (fork patch).
        #[inline]
        pub fn has_pending_writes(&self) -> bool {
            self.writer.has_pending()
        }

        /// Flushes write buffers
        #[inline]
        pub async fn flush(&mut self) -> Result<()> {
            self.writer.flush(&mut self.io, self.cfg.send_timeout).await
        }

        /// Closes the connection gracefully
        #[inline]
        pub async fn close(&mut self) -> Result<()> {
            self.writer.close(&mut self.io, self.cfg.send_timeout).await
        }

        /// Receives next packet with timeout
        #[inline]
        pub async fn recv(&mut self, tm: Duration) -> Result<Option<rmqtt_codec::v5::Packet>> {
            match tokio::time::timeout(tm, self.next()).await {
                Ok(Some(Ok(msg))) => Ok(Some(msg)),
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => Ok(None),
                Err(_) => Err(MqttError::ReadTimeout.into()),
            }
        }

        /// Waits for CONNECT packet with timeout
        #[inline]
        pub async fn recv_connect(&mut self, tm: Duration) -> Result<Box<Connect>> {
            // fork patch: never past the deadline counted from accept.
            let tm = tm.min(self.handshake_deadline.saturating_duration_since(tokio::time::Instant::now()));
            let connect = match self.recv(tm).await {
                #[allow(unused_mut)]
                Ok(Some(Packet::Connect(mut connect))) => {
                    #[cfg(feature = "tls")]
                    {
                        // Subject DN takes precedence over CN when both
                        // flags are set: full DN includes O/OU/CN and is
                        // self-namespacing across CAs.
                        if let Some(cert) = &self.cert_info {
                            if self.cfg.cert_subject_dn_as_username && !cert.subject.is_empty() {
                                connect.username = Some(cert.subject.clone().into());
                            } else if self.cfg.cert_cn_as_username {
                                if let Some(cn) = &cert.common_name {
                                    connect.username = Some(cn.clone().into());
                                }
                            }
                        }
                        if self.cfg.collect_cert_info {
                            connect.cert = self.cert_info.clone();
                        }
                    }
                    connect
                }
                Err(e) => {
                    return Err(e);
                }
                _ => {
                    return Err(MqttError::InvalidProtocol.into());
                }
            };
            Ok(connect)
        }
    }

    impl<Io> futures::Stream for MqttStream<Io>
    where
        Io: AsyncRead + Unpin,
    {
        type Item = Result<rmqtt_codec::v5::Packet>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            let next = futures::ready!(super::poll_packet(&mut this.io, &mut this.stall, &this.cfg, cx));
            Poll::Ready(match next {
                Some(Ok(MqttPacket::V5(Packet::Publish(p)))) => {
                    match check_publish(&p, this.cfg.max_topic_aliases) {
                        Ok(()) => Some(Ok(Packet::Publish(p))),
                        Err(e) => Some(Err(MqttError::Decode(e).into())),
                    }
                }
                Some(Ok(MqttPacket::V5(packet))) => Some(Ok(packet)),
                Some(Ok(_)) => Some(Err(MqttError::Decode(DecodeError::MalformedPacket).into())),
                Some(Err(e)) => Some(Err(e)),
                None => None,
            })
        }
    }

    /// fork patch: what a server must refuse in a client's PUBLISH (the
    /// codec checks what either side must): a Subscription Identifier
    /// [MQTT-3.3.4-6], a Topic Alias over the maximum offered [MQTT-3.3.2-9].
    #[inline]
    fn check_publish(p: &Publish, max_topic_aliases: u16) -> std::result::Result<(), DecodeError> {
        let Some(props) = &p.properties else { return Ok(()) };
        if props.topic_alias.is_some_and(|a| a.get() > max_topic_aliases) {
            return Err(DecodeError::TopicAliasInvalid);
        }
        if !props.subscription_ids.is_empty() {
            return Err(DecodeError::ProtocolViolation(
                "a client's PUBLISH has a Subscription Identifier".into(),
            ));
        }
        Ok(())
    }
}

/// fork patch: the next packet, with what the session needs around it:
/// a decode error as an `MqttError` (an MQTT 5 client is told its reason
/// code), a started packet that stopped arriving ends the connection
/// ([`Stall`]), and the read buffer sized for what comes.
#[inline]
fn poll_packet<Io: AsyncRead + Unpin>(
    io: &mut Framed<Io, MqttCodec>,
    stall: &mut Stall,
    cfg: &Builder,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<Result<MqttPacket>>> {
    use std::task::Poll;
    let next = match futures::Stream::poll_next(std::pin::Pin::new(&mut *io), cx) {
        Poll::Ready(next) => next,
        // The socket is drained: a packet begun now waits for more bytes.
        Poll::Pending => {
            let buffered = io.read_buffer().len();
            let started = buffered > 0 || io.codec().mid_packet();
            if stall.stalled(started, buffered, cfg.handshake_timeout, cx) {
                return Poll::Ready(Some(Err(MqttError::ReadTimeout.into())));
            }
            return Poll::Pending;
        }
    };
    grow_read_buffer(io);
    Poll::Ready(match next {
        Some(Ok((packet, remaining_length))) => {
            stall.decoded();
            if let Some(w) = &cfg.wire_bytes {
                w.read_packet(remaining_length);
            }
            Some(Ok(packet))
        }
        Some(Err(e)) => Some(Err(MqttError::Decode(e).into())),
        None => None,
    })
}

/// fork patch: a connection starts with a small read buffer (idle
/// connections are most of them), and tokio-util reads at most its free
/// capacity per syscall. Once a packet is decoded while more bytes already
/// wait behind it, the client is pipelining: give it a full-size buffer so a
/// flood is read in a few large reads rather than many 512-byte ones.
/// Only when the free tail is short: bytes sizes each new buffer by the
/// connection's first (512 B), so this is what keeps reads large, but a new
/// buffer stays alive while any payload sliced from it does. Growing each
/// time less than 16 KiB was left allocated one for almost every read, and
/// a held publisher whose reads were small pinned 16 KiB per message.
///
/// An emptied buffer with under a quarter of `INITIAL_BUFFER` free gets a
/// fresh `INITIAL_BUFFER` too. bytes keeps no "original capacity" below
/// 1 KiB, so once the room is used up it would grow by exactly what the
/// codec asks for: a packet then took three `recvfrom` calls (its 2-byte
/// header, its rest, and one more that finds the socket empty, since only a
/// short read tells tokio the socket is drained) and two allocations. With
/// room, one read takes a small packet. Not at any shortfall: the CONNECT's
/// strings are slices of the first buffer, so replacing it right after the
/// handshake would cost every idle connection another 512 B.
#[inline]
fn grow_read_buffer<Io>(io: &mut Framed<Io, MqttCodec>) {
    let buf = io.read_buffer_mut();
    let free = buf.capacity() - buf.len();
    if buf.is_empty() {
        if free < INITIAL_BUFFER / 4 {
            buf.reserve(INITIAL_BUFFER);
        }
    } else if free < READ_BATCH / 4 && !holds_whole_packet(buf) {
        // Not `reserve`: on a buffer no payload holds any more it reallocates,
        // copying the whole buffer (up to 16 KiB) to keep a partial packet.
        // Reclaiming moves just that packet to the front; otherwise a fresh
        // buffer takes just that packet.
        let want = READ_BATCH.max(buf.len() + READ_BATCH / 4);
        if !buf.try_reclaim(want - buf.len()) {
            let mut fresh = tokio_util::bytes::BytesMut::with_capacity(want);
            fresh.extend_from_slice(buf);
            *buf = fresh;
        }
    }
}

/// fork patch: whether `buf` (at a packet boundary) still holds a
/// whole packet. `grow_read_buffer` waits until it does not: a read that
/// filled the buffer leaves many packets behind, and moving them all to a
/// new buffer cost as much as copying each payload once more (fan-in QoS 0
/// 4 KiB profile). With only a partial packet left, that packet is all that
/// moves.
#[inline]
fn holds_whole_packet(buf: &[u8]) -> bool {
    read_remaining_length(buf).is_some_and(|(length, width)| buf.len() >= 1 + width + length)
}
