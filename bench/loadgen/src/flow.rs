//! A message-flow scenario (fan-in, point-to-point, fan-out; flooding or at
//! a fixed rate): connect and subscribe everyone, publish for the duration,
//! wait for deliveries to drain, then report throughput, loss and latency.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

use crate::args::{Args, Mode};
use crate::codec::Reader;
use crate::conn;
use crate::cpu;
use crate::open::open_all;
use crate::pacer;
use crate::publisher::{self, Plan};
use crate::report::Json;
use crate::shared::{now_ns, Shared};
use crate::subscriber;

/// Per-subscriber read buffer: large reads keep syscalls per message low.
const SUB_BUF: usize = 256 * 1024;

pub async fn run(a: Args) -> Json {
  let broker = SocketAddr::new(a.host, a.port);
  // Topics and client ids are unique per run, so runs never see each other's traffic.
  let run = format!(
    "{:x}",
    (std::process::id() as u64) << 20 ^ (now_ns() & 0xfffff)
  );
  let pub_topic = |i: usize| match a.mode {
    Mode::FanOut => format!("b/{run}/0"),
    _ => format!("b/{run}/{i}"),
  };
  let sub_filter = |i: usize| match a.mode {
    Mode::FanIn => format!("b/{run}/+"),
    Mode::FanOut => format!("b/{run}/0"),
    _ => format!("b/{run}/{i}"),
  };
  let base = Json::new()
    .str("mode", mode_name(a.mode))
    .num("qos", a.qos)
    .num("size", a.size)
    .num("publishers", a.publishers)
    .num("subscribers", a.subscribers)
    .float("rate", a.rate)
    .str("pace", if a.even { "even" } else { "burst" });

  let t_conn = Instant::now();
  let (qos, ka) = (a.qos, a.keepalive);
  let (subs, errs) = open_all(a.subscribers, a.concurrency, |i| {
    let (id, filter) = (format!("{run}s{i}"), sub_filter(i));
    async move {
      let mut r = Reader::new(SUB_BUF);
      let mut s = conn::open(broker, None, &id, ka, None, &mut r).await?;
      conn::subscribe(&mut s, &mut r, &filter, qos).await?;
      Ok((s, r))
    }
  })
  .await;
  if let Some(e) = errs.first() {
    return base.str("error", &format!("subscriber: {e}"));
  }
  let (pubs, errs) = open_all(a.publishers, a.concurrency, |i| {
    let id = format!("{run}p{i}");
    async move {
      let mut r = Reader::new(0);
      let s = conn::open(broker, None, &id, ka, None, &mut r).await?;
      Ok((s, r))
    }
  })
  .await;
  if let Some(e) = errs.first() {
    return base.str("error", &format!("publisher: {e}"));
  }
  let connect_s = t_conn.elapsed().as_secs_f64();
  // SUBACK means the subscription is accepted; a short pause also covers
  // brokers that finish registering routes on another thread.
  sleep(Duration::from_millis(200)).await;

  let shared = Arc::new(Shared::new());
  let (stop_tx, stop_rx) = watch::channel(false);
  let subs: Vec<_> = subs
    .into_iter()
    .map(|(s, r)| {
      let task = subscriber::run(s, r, a.publishers, shared.clone(), stop_rx.clone());
      tokio::spawn(task)
    })
    .collect();

  let cpu0 = cpu::seconds();
  let t0 = Instant::now();
  let t0_ns = now_ns();
  let deadline = t0 + a.duration;
  let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.publishers as f64 / a.rate));
  let ticks =
    (a.rate > 0.0 && a.even).then(|| pacer::spawn(a.publishers, a.rate, deadline.into_std()));
  let pubs: Vec<_> = pubs
    .into_iter()
    .enumerate()
    .map(|(i, (s, r))| {
      let plan = Plan {
        id: i as u32,
        topic: pub_topic(i),
        qos: a.qos,
        size: a.size,
        deadline,
        interval,
        tick: ticks.as_ref().map(|t| t[i].clone()),
        window: a.window,
      };
      tokio::spawn(publisher::run(s, r, plan, shared.clone(), stop_rx.clone()))
    })
    .collect();

  // Deliveries while publishers publish: the steady rate, unaffected by how
  // long a broker then takes to work off what it buffered.
  let in_window = {
    let shared = shared.clone();
    tokio::spawn(async move {
      tokio::time::sleep_until(deadline).await;
      shared.received.load(Relaxed)
    })
  };

  // Publishers return once their last QoS 1 message is acknowledged; a
  // broker that never acknowledges is cut off at the drain limit.
  let drain_end = deadline + a.drain_max;
  let mut pub_stats = Vec::new();
  for h in pubs {
    // After a stop, a second is left for the task to hand back its counts.
    let left = drain_end.saturating_duration_since(Instant::now());
    match timeout(left.max(Duration::from_secs(1)), h).await {
      Ok(Ok(s)) => pub_stats.push(s),
      _ => {
        let _ = stop_tx.send(true);
      }
    }
  }
  let publish_s = t0.elapsed().as_secs_f64();
  let sent = shared.sent.load(Relaxed);
  let acked: u64 = pub_stats.iter().map(|s| s.acked).sum();
  let fanout = if a.mode == Mode::FanOut {
    a.subscribers as u64
  } else {
    1
  };
  // Without a network subscriber nothing is expected here: the broker
  // counts what its in-process subscriber got.
  let expected = if a.subscribers == 0 { 0 } else { sent * fanout };

  // Wait until everything arrived, or arrivals stopped, or the drain limit.
  let pubs_done_ns = now_ns();
  let drained = loop {
    if shared.received.load(Relaxed) >= expected {
      break true;
    }
    let last = shared.last_recv_ns.load(Relaxed).max(pubs_done_ns);
    if now_ns().saturating_sub(last) >= a.drain_idle.as_nanos() as u64 {
      break true;
    }
    if Instant::now() >= drain_end {
      break false;
    }
    sleep(Duration::from_millis(10)).await;
  };
  let _ = stop_tx.send(true);
  let cpu_s = cpu::seconds() - cpu0;
  let wall_s = t0.elapsed().as_secs_f64();

  let mut duplicates = 0;
  let mut errors: Vec<String> = pub_stats.iter().filter_map(|s| s.error.clone()).collect();
  for h in subs {
    match timeout(Duration::from_secs(5), h).await {
      Ok(Ok(s)) => {
        duplicates += s.duplicates;
        errors.extend(s.error);
      }
      _ => errors.push("a subscriber did not stop".into()),
    }
  }
  let received = shared.received.load(Relaxed);
  let in_window = in_window.await.unwrap_or(0);
  let last_ns = shared.last_recv_ns.load(Relaxed);
  let elapsed_s = last_ns.saturating_sub(t0_ns) as f64 / 1e9;
  let unique = received - duplicates.min(received);
  let lost = expected.saturating_sub(unique);
  let h = &shared.latency_us;
  let mut out = base
    .float("connect_s", connect_s)
    .float("publish_s", publish_s)
    .float("elapsed_s", elapsed_s)
    .num("sent", sent)
    .num("acked", acked)
    .num("expected", expected)
    .num("received", received)
    .num("duplicates", duplicates)
    .num("lost", lost)
    .float("loss_pct", 100.0 * lost as f64 / expected.max(1) as f64)
    .bool("drained", drained)
    .float("sent_per_s", sent as f64 / publish_s)
    .float("msgs_per_s", in_window as f64 / a.duration.as_secs_f64())
    .float(
      "overall_per_s",
      if elapsed_s > 0.0 {
        received as f64 / elapsed_s
      } else {
        0.0
      },
    )
    .obj(
      "latency_us",
      Json::new()
        .num("count", h.count())
        .num("p50", h.quantile(0.5))
        .num("p90", h.quantile(0.9))
        .num("p99", h.quantile(0.99))
        .num("p999", h.quantile(0.999))
        .num("max", h.max()),
    )
    .float("loadgen_cpu_pct", 100.0 * cpu_s / wall_s)
    .num("threads", a.threads);
  if !errors.is_empty() {
    out = out.num("errors", errors.len()).str("error", &errors[0]);
  }
  out
}

pub fn mode_name(m: Mode) -> &'static str {
  match m {
    Mode::FanIn => "fanin",
    Mode::P2p => "p2p",
    Mode::FanOut => "fanout",
    Mode::Idle => "idle",
  }
}
