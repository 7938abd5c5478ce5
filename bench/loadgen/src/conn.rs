//! Opening an MQTT session: TCP connect (optionally from a chosen loopback
//! source address), CONNECT/CONNACK and SUBSCRIBE/SUBACK.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use crate::codec::{self, Reader};

/// Past this a broker that accepted the socket but never answers counts as a failure.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

fn err(msg: String) -> io::Error {
  io::Error::other(msg)
}

/// Connects and completes the MQTT handshake. Each source address has its
/// own ~28k ephemeral ports, which is what lets one machine open more
/// connections to a single broker port than that.
pub async fn open(
  broker: SocketAddr,
  src: Option<IpAddr>,
  client_id: &str,
  keepalive: u16,
  creds: Option<&codec::Credentials>,
  reader: &mut Reader,
) -> io::Result<TcpStream> {
  let sock = if broker.is_ipv4() {
    TcpSocket::new_v4()?
  } else {
    TcpSocket::new_v6()?
  };
  if let Some(ip) = src {
    sock.bind(SocketAddr::new(ip, 0))?;
  }
  let mut s = timeout(HANDSHAKE_TIMEOUT, sock.connect(broker))
    .await
    .map_err(|_| err("TCP connect timed out".into()))??;
  s.set_nodelay(true)?;
  let mut buf = Vec::with_capacity(64);
  codec::connect(&mut buf, client_id, keepalive, creds);
  s.write_all(&buf).await?;
  let rc = expect(&mut s, reader, codec::CONNACK, "CONNACK").await?;
  if rc != 0 {
    return Err(err(format!("CONNACK refused, return code {rc}")));
  }
  Ok(s)
}

pub async fn subscribe(
  s: &mut TcpStream,
  reader: &mut Reader,
  filter: &str,
  qos: u8,
) -> io::Result<()> {
  let mut buf = Vec::with_capacity(64);
  codec::subscribe(&mut buf, 1, filter, qos);
  s.write_all(&buf).await?;
  let granted = expect(s, reader, codec::SUBACK, "SUBACK").await?;
  if granted == 0x80 {
    return Err(err(format!("SUBSCRIBE to {filter} refused")));
  }
  Ok(())
}

/// Waits for a packet of `kind` and returns its last body byte (the CONNACK
/// return code or the SUBACK grant).
async fn expect(s: &mut TcpStream, r: &mut Reader, kind: u8, what: &str) -> io::Result<u8> {
  timeout(HANDSHAKE_TIMEOUT, async {
    loop {
      while let Some(p) = r.next_packet()? {
        if p.kind == kind {
          return Ok(p.body.last().copied().unwrap_or(0));
        }
      }
      r.fill(s).await?;
    }
  })
  .await
  .map_err(|_| err(format!("no {what} within {HANDSHAKE_TIMEOUT:?}")))?
}
