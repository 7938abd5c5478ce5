//! Connection limits of a listener: `maxConnections` (all its connections)
//! and `maxConnectionsPerIp` (those from one address), enforced through the
//! fork's admission gate (rmqtt 0038-admission-gate): a connection is counted
//! once its CONNECT is read, until it ends however it ends; one beyond a
//! limit is refused with CONNACK 0x97 Quota exceeded (5.0) or 3 Server
//! unavailable (3.1.1), before any session is touched.
//!
//! A connection still in its handshake (TCP open, no CONNECT) is not counted:
//! `handshakeTimeout` bounds those.
//!
//! The listeners without `maxConnections` share a default: the process's
//! open-file limit, less a reserve for the application and the broker's own
//! files. Past it a client gets the same refusal, rather than the broker
//! running the process out of file descriptors (the application's too).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmqtt::context::ServerContext;
use rmqtt::extend::{AdmissionGate, AdmissionPermit};
use rmqtt::types::ListenerId;

use crate::config::ListenerSpec;

/// Installs the gate: every broker has at least the default limit (one
/// atomic count per connection).
pub fn register(scx: &ServerContext, listeners: &[ListenerSpec]) {
  let limits: Vec<Limit> = listeners
    .iter()
    .map(|l| Limit {
      max: l.limits.max_connections,
      max_per_ip: l.limits.max_connections_per_ip,
      count: AtomicUsize::new(0),
    })
    .collect();
  let shared = default_max_connections();
  if shared.is_none()
    && limits
      .iter()
      .all(|l| l.max.is_none() && l.max_per_ip.is_none())
  {
    return;
  }
  let gate = Gate(Arc::new(Counts {
    limits,
    shared: shared.map(|max| Shared {
      max,
      count: AtomicUsize::new(0),
    }),
    per_ip: Mutex::new(HashMap::new()),
  }));
  if scx.extends.admission_gate.set(Arc::new(gate)).is_err() {
    log::warn!("connection limits are already installed on this broker");
  }
}

struct Limit {
  max: Option<usize>,
  max_per_ip: Option<usize>,
  count: AtomicUsize,
}

/// The default of the listeners without `maxConnections`, counted over them all.
struct Shared {
  max: usize,
  count: AtomicUsize,
}

/// File descriptors kept out of the default for everything but client
/// connections: an eighth of the limit, at least this many.
const FD_RESERVE: usize = 64;

/// The default `maxConnections`: the open-file limit when `start()` runs
/// (Node raises it to the hard limit at startup), less the reserve. `None`
/// when unlimited or unknown.
fn default_max_connections() -> Option<usize> {
  #[cfg(unix)]
  {
    let mut lim = libc::rlimit {
      rlim_cur: 0,
      rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
      || lim.rlim_cur == libc::RLIM_INFINITY
    {
      return None;
    }
    let n = usize::try_from(lim.rlim_cur).ok()?;
    Some(n.saturating_sub((n / 8).max(FD_RESERVE)).max(1))
  }
  #[cfg(not(unix))]
  {
    None
  }
}

struct Counts {
  /// By listener id (its position in `listeners`).
  limits: Vec<Limit>,
  /// For the listeners without `maxConnections`.
  shared: Option<Shared>,
  /// Connections by listener and address, for listeners with a per-IP
  /// limit; an address leaves the map with its last connection.
  per_ip: Mutex<HashMap<(ListenerId, IpAddr), usize>>,
}

struct Gate(Arc<Counts>);

impl AdmissionGate for Gate {
  fn admit(&self, lid: ListenerId, remote: SocketAddr) -> Result<AdmissionPermit, String> {
    let admitted = self.check(lid, remote);
    if let Err(reason) = &admitted {
      // Beside conn_log's lines: a refusal here never reaches its hook.
      tracing::info!(target: crate::conn_log::TARGET, "refused a connection from {remote}: {reason}");
    }
    admitted
  }
}

impl Gate {
  fn check(&self, lid: ListenerId, remote: SocketAddr) -> Result<AdmissionPermit, String> {
    let Some(limit) = self.0.limits.get(lid as usize) else {
      return Ok(Box::new(()));
    };
    let ip = remote.ip();
    let mut per_ip = None;
    if let Some(max) = limit.max_per_ip {
      let mut map = self.0.per_ip.lock().unwrap_or_else(|e| e.into_inner());
      let n = map.entry((lid, ip)).or_insert(0);
      if *n >= max {
        return Err(format!(
          "{ip} has {max} connections to this listener (maxConnectionsPerIp)"
        ));
      }
      *n += 1;
      per_ip = Some((lid, ip));
    }
    // From here the permit owns the per-IP count: a refusal below returns it.
    let mut permit = Permit {
      counts: self.0.clone(),
      listener: None,
      shared: false,
      per_ip,
    };
    if let Some(max) = limit.max {
      if !take(&limit.count, max) {
        return Err(format!(
          "the listener has {max} connections (maxConnections)"
        ));
      }
      permit.listener = Some(lid);
    } else if let Some(shared) = &self.0.shared {
      if !take(&shared.count, shared.max) {
        return Err(format!(
          "the broker has {} connections, the default limit (the open-file limit less a reserve; set maxConnections)",
          shared.max
        ));
      }
      permit.shared = true;
    }
    Ok(Box::new(permit))
  }
}

/// Counts one more, unless `max` are counted already.
fn take(count: &AtomicUsize, max: usize) -> bool {
  count
    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
      (n < max).then_some(n + 1)
    })
    .is_ok()
}

/// Held by an admitted connection; gives its place back when dropped.
struct Permit {
  counts: Arc<Counts>,
  listener: Option<ListenerId>,
  /// Counted in `Counts::shared`.
  shared: bool,
  per_ip: Option<(ListenerId, IpAddr)>,
}

impl Drop for Permit {
  fn drop(&mut self) {
    if let Some(lid) = self.listener {
      self.counts.limits[lid as usize]
        .count
        .fetch_sub(1, Ordering::AcqRel);
    }
    if self.shared {
      if let Some(shared) = &self.counts.shared {
        shared.count.fetch_sub(1, Ordering::AcqRel);
      }
    }
    if let Some(key) = self.per_ip {
      let mut map = self.counts.per_ip.lock().unwrap_or_else(|e| e.into_inner());
      if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
          map.remove(&key);
        }
      }
    }
  }
}
