//! The scale scenario: open many idle MQTT connections, report the connect
//! rate, hold them while the orchestrator measures the broker's memory,
//! then check they are all still open and disconnect them.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::sleep;

use crate::args::Args;
use crate::codec::{self, Reader};
use crate::conn;
use crate::open::open_all;
use crate::report::Json;
use crate::shared::now_ns;

pub async fn run(a: Args) -> Json {
  let broker = SocketAddr::new(a.host, a.port);
  let run = format!(
    "{:x}",
    (std::process::id() as u64) << 20 ^ (now_ns() & 0xfffff)
  );
  let ips: Vec<Option<IpAddr>> = if a.src_ips.is_empty() {
    vec![None]
  } else {
    a.src_ips.iter().copied().map(Some).collect()
  };
  let ka = a.keepalive;
  let creds = a.credentials.clone();
  let t = Instant::now();
  let (conns, errors) = open_all(a.conns, a.concurrency, |i| {
    let (id, src) = (format!("{run}c{i}"), ips[i % ips.len()]);
    let creds = creds.clone();
    async move {
      // The handshake's buffer is dropped with the future: held connections
      // cost the load generator nothing but the socket.
      conn::open(broker, src, &id, ka, creds.as_ref(), &mut Reader::new(0)).await
    }
  })
  .await;
  let connect_s = t.elapsed().as_secs_f64();
  let base = Json::new()
    .str("mode", "idle")
    .num("conns", a.conns)
    .num("connected", conns.len())
    .num("failed", errors.len())
    .float("connect_s", connect_s)
    .float("conns_per_s", conns.len() as f64 / connect_s)
    .num("src_ips", ips.len());
  let base = match errors.first() {
    Some(e) => base.str("error", e),
    None => base,
  };
  let held = Json::new()
    .str("phase", "held")
    .num("connected", conns.len());
  println!("{}", held.finish());
  let _ = io::stdout().flush();

  if a.hold.is_zero() {
    // The orchestrator writes a line once it has measured; EOF works too.
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
      .read_line(&mut line)
      .await;
  } else {
    sleep(a.hold).await;
  }
  let alive = conns.iter().filter(|s| is_open(s)).count();
  let mut bye = Vec::new();
  codec::disconnect(&mut bye);
  for s in &conns {
    let _ = s.try_write(&bye);
  }
  drop(conns);
  base.str("phase", "done").num("alive_at_release", alive)
}

/// Whether the broker still holds the connection: a closed one reads EOF.
fn is_open(s: &TcpStream) -> bool {
  let mut b = [0u8; 64];
  match s.try_read(&mut b) {
    Ok(0) => false,
    Ok(_) => true,
    Err(e) => e.kind() == io::ErrorKind::WouldBlock,
  }
}
