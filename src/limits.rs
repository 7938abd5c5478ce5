//! Connection limits of a listener: `maxConnections` (all its connections)
//! and `maxConnectionsPerIp` (those from one address), enforced through the
//! fork's admission gate (rmqtt 0038-admission-gate): a connection is counted
//! once its CONNECT is read, until it ends however it ends; one beyond a
//! limit is refused with CONNACK 0x97 Quota exceeded (5.0) or 3 Server
//! unavailable (3.1.1), before any session is touched.
//!
//! A connection still in its handshake (TCP open, no CONNECT) is not counted:
//! `handshakeTimeout` bounds those.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmqtt::context::ServerContext;
use rmqtt::extend::{AdmissionGate, AdmissionPermit};
use rmqtt::types::ListenerId;

use crate::config::ListenerSpec;

/// Installs the gate when a listener has a connection limit; a broker
/// without one pays nothing.
pub fn register(scx: &ServerContext, listeners: &[ListenerSpec]) {
  let limits: Vec<Limit> = listeners
    .iter()
    .map(|l| Limit {
      max: l.limits.max_connections,
      max_per_ip: l.limits.max_connections_per_ip,
      count: AtomicUsize::new(0),
    })
    .collect();
  if limits
    .iter()
    .all(|l| l.max.is_none() && l.max_per_ip.is_none())
  {
    return;
  }
  let gate = Gate(Arc::new(Counts {
    limits,
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

struct Counts {
  /// By listener id (its position in `listeners`).
  limits: Vec<Limit>,
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
      per_ip,
    };
    if let Some(max) = limit.max {
      let admitted = limit
        .count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
          (n < max).then_some(n + 1)
        })
        .is_ok();
      if !admitted {
        return Err(format!(
          "the listener has {max} connections (maxConnections)"
        ));
      }
      permit.listener = Some(lid);
    }
    Ok(Box::new(permit))
  }
}

/// Held by an admitted connection; gives its place back when dropped.
struct Permit {
  counts: Arc<Counts>,
  listener: Option<ListenerId>,
  per_ip: Option<(ListenerId, IpAddr)>,
}

impl Drop for Permit {
  fn drop(&mut self) {
    if let Some(lid) = self.listener {
      self.counts.limits[lid as usize]
        .count
        .fetch_sub(1, Ordering::AcqRel);
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
