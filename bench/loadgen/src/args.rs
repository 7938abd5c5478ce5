//! Command-line flags: one scenario per invocation.

use std::net::IpAddr;
use std::time::Duration;

pub const USAGE: &str = "\
loadgen --port PORT --mode MODE [flags]
loadgen core-latency

Runs one MQTT 3.1.1 scenario against a broker and prints one JSON line
(idle mode: a `held` line, then a `done` line). `core-latency` prints the
round trip of a cache line between two cores, in ns (core_latency.rs).

modes:
  fanin    --publishers N (default 16) -> 1 subscriber on a `+` wildcard
           (--subscriber none: no subscriber connects; the broker's own,
           in-process one takes the messages, see bench/subscribe.mjs)
  p2p      --pairs N (default 64): publisher i -> subscriber i, own topic
  fanout   1 publisher -> --subscribers N (default 1000), one topic
  idle     --conns N idle connections; connect rate, then hold

flags:
  --host ADDR          broker address (127.0.0.1)
  --qos 0|1            publish and subscribe QoS (0)
  --size BYTES         payload size, >= 16 (64)
  --duration SECS      how long publishers publish (5)
  --rate MSGS          total publish rate in msgs/s; 0 floods (0)
  --pace even|burst    at a rate: one message every 1/rate s, publishers taking
                       turns (even), or all publishers at once every
                       publishers/rate s (burst) (even)
  --window N           QoS 1 PUBLISHes awaiting PUBACK per publisher (64)
  --drain-idle SECS    after publishing, stop once nothing arrived for this long (1)
  --drain-max SECS     ... or at the latest this long after publishing (10)
  --threads N          runtime worker threads; 1 = single-threaded (1)
  --src-ips A,B,..     idle: spread clients over these source addresses
  --concurrency N      connections being set up at once (256)
  --hold SECS          idle: hold this long; 0 = until a line on stdin (0)
  --keepalive SECS     MQTT keep-alive of every client (600)
  --credentials U:P    idle: CONNECT with username U and password P (none)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
  FanIn,
  P2p,
  FanOut,
  Idle,
}

#[derive(Clone, Debug)]
pub struct Args {
  pub host: IpAddr,
  pub port: u16,
  pub mode: Mode,
  pub qos: u8,
  pub size: usize,
  pub publishers: usize,
  pub subscribers: usize,
  pub duration: Duration,
  pub rate: f64,
  /// At a fixed rate: publishers take turns (`true`) or publish together.
  pub even: bool,
  pub window: usize,
  pub drain_idle: Duration,
  pub drain_max: Duration,
  pub threads: usize,
  pub conns: usize,
  pub src_ips: Vec<IpAddr>,
  pub concurrency: usize,
  pub hold: Duration,
  pub keepalive: u16,
  pub credentials: Option<crate::codec::Credentials>,
  /// fanin without a network subscriber (`--subscriber none`).
  pub no_subscriber: bool,
}

fn secs(flag: &str, v: &str) -> Result<Duration, String> {
  let s: f64 = num(flag, v)?;
  if !(s.is_finite() && s >= 0.0) {
    return Err(format!("{flag}: expected seconds >= 0, got {v}"));
  }
  Ok(Duration::from_secs_f64(s))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
  v.parse()
    .map_err(|_| format!("{flag}: invalid value \"{v}\""))
}

pub fn parse(argv: impl Iterator<Item = String>) -> Result<Args, String> {
  let mut a = Args {
    host: IpAddr::from([127, 0, 0, 1]),
    port: 0,
    mode: Mode::P2p,
    qos: 0,
    size: 64,
    publishers: 0,
    subscribers: 0,
    duration: Duration::from_secs(5),
    rate: 0.0,
    even: true,
    window: 64,
    drain_idle: Duration::from_secs(1),
    drain_max: Duration::from_secs(10),
    threads: 1,
    conns: 1000,
    src_ips: Vec::new(),
    concurrency: 256,
    hold: Duration::ZERO,
    keepalive: 600,
    credentials: None,
    no_subscriber: false,
  };
  let (mut pairs, mut mode) = (None, None);
  let mut it = argv;
  while let Some(flag) = it.next() {
    if flag == "--help" || flag == "-h" {
      return Err(USAGE.to_string());
    }
    let v = it
      .next()
      .ok_or_else(|| format!("{flag}: missing value\n\n{USAGE}"))?;
    let f = flag.as_str();
    match f {
      "--host" => a.host = num(f, &v)?,
      "--port" => a.port = num(f, &v)?,
      "--mode" => {
        mode = Some(match v.as_str() {
          "fanin" => Mode::FanIn,
          "p2p" => Mode::P2p,
          "fanout" => Mode::FanOut,
          "idle" => Mode::Idle,
          _ => return Err(format!("--mode: unknown mode \"{v}\"\n\n{USAGE}")),
        })
      }
      "--qos" => a.qos = num(f, &v)?,
      "--size" => a.size = num(f, &v)?,
      "--publishers" => a.publishers = num(f, &v)?,
      "--subscribers" => a.subscribers = num(f, &v)?,
      "--pairs" => pairs = Some(num(f, &v)?),
      "--duration" => a.duration = secs(f, &v)?,
      "--rate" => a.rate = num(f, &v)?,
      "--pace" => {
        a.even = match v.as_str() {
          "even" => true,
          "burst" => false,
          _ => return Err(format!("--pace: expected even or burst, got \"{v}\"")),
        }
      }
      "--window" => a.window = num(f, &v)?,
      "--drain-idle" => a.drain_idle = secs(f, &v)?,
      "--drain-max" => a.drain_max = secs(f, &v)?,
      "--threads" => a.threads = num(f, &v)?,
      "--conns" => a.conns = num(f, &v)?,
      "--src-ips" => {
        a.src_ips = v
          .split(',')
          .map(|s| num(f, s.trim()))
          .collect::<Result<_, _>>()?
      }
      "--concurrency" => a.concurrency = num(f, &v)?,
      "--hold" => a.hold = secs(f, &v)?,
      "--keepalive" => a.keepalive = num(f, &v)?,
      "--credentials" => {
        let (u, p) = v
          .split_once(':')
          .ok_or_else(|| format!("{flag}: expected USER:PASSWORD"))?;
        a.credentials = Some((u.to_string(), p.to_string()))
      }
      "--subscriber" => {
        a.no_subscriber = match v.as_str() {
          "none" => true,
          "network" => false,
          _ => {
            return Err(format!(
              "--subscriber: expected none or network, got \"{v}\""
            ))
          }
        }
      }
      _ => return Err(format!("unknown flag {flag}\n\n{USAGE}")),
    }
  }
  a.mode = mode.ok_or_else(|| format!("--mode is required\n\n{USAGE}"))?;
  if a.port == 0 {
    return Err(format!("--port is required\n\n{USAGE}"));
  }
  if a.qos > 1 {
    return Err("--qos: only 0 and 1 are supported".into());
  }
  // The payload carries a send timestamp, a publisher id and a sequence number.
  if a.size < 16 {
    return Err("--size: at least 16 bytes".into());
  }
  if a.window == 0 || a.window > 30_000 || a.threads == 0 || a.concurrency == 0 {
    return Err("--window (1..30000), --threads and --concurrency must be > 0".into());
  }
  let or = |v: usize, d: usize| if v == 0 { d } else { v };
  match a.mode {
    Mode::FanIn => {
      (a.publishers, a.subscribers) = (or(a.publishers, 16), usize::from(!a.no_subscriber))
    }
    Mode::P2p => {
      let n = pairs.unwrap_or(or(a.publishers, 64));
      (a.publishers, a.subscribers) = (n, n)
    }
    Mode::FanOut => (a.publishers, a.subscribers) = (1, or(a.subscribers, 1000)),
    Mode::Idle => {}
  }
  if a.mode != Mode::Idle && (a.publishers == 0 || (a.subscribers == 0 && !a.no_subscriber)) {
    return Err("at least one publisher and one subscriber are needed".into());
  }
  Ok(a)
}
