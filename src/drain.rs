//! `stop()`'s drain: before clients are disconnected, what was routed to a
//! connected session before the stop (every `publish()` that resolved, every
//! client PUBLISH already acknowledged) is delivered, and QoS 1/2 deliveries
//! are acknowledged, within a deadline.

use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::session::Session;
use tokio::time::Instant;

use crate::fork;

/// `stop()`'s default `drainTimeoutMs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the sessions' queues are looked at while draining. rmqtt has no
/// "queue empty" event to await; a look is a lock per connected session.
const POLL: Duration = Duration::from_millis(5);

/// What a drain ended with, for the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
  /// Messages still queued or unacknowledged on connected sessions.
  pub left: usize,
}

/// Waits until every session connected now has delivered what was sent to it
/// before this call and had it acknowledged, or until `deadline`. New
/// connections must be refused already (the accept loops stopped), else the
/// drain may chase them.
pub async fn drain(scx: &ServerContext, deadline: Instant) -> Outcome {
  let sessions = barriers_passed(scx, deadline).await;
  loop {
    let mut left = 0;
    for session in &sessions {
      // One that went offline meanwhile keeps its queue (a persistent
      // session's) and has nobody to deliver it to.
      if session.connected().await.unwrap_or(false) {
        left += pending(session);
      }
    }
    if left == 0 || Instant::now() >= deadline {
      return Outcome { left };
    }
    tokio::time::sleep(POLL).await;
  }
}

/// Sends every session a barrier and returns the online ones once each has
/// taken what came before it off its channel: from then on, what it still
/// has to deliver is in its deliver queue and in-flight window, where
/// `pending` sees it. An offline session drops the barrier (it has no
/// client to deliver to; its queue is kept as a persistent session's is).
async fn barriers_passed(scx: &ServerContext, deadline: Instant) -> Vec<Session> {
  let mut waiting = Vec::new();
  for entry in scx.extends.shared().await.iter() {
    if let (Some(tx), Some(session)) = (entry.tx(), entry.session()) {
      if let Some(passed) = fork::barrier(&tx) {
        waiting.push((session, passed));
      }
    }
  }
  let mut online = Vec::with_capacity(waiting.len());
  for (session, passed) in waiting {
    if let Ok(Ok(())) = tokio::time::timeout_at(deadline, passed).await {
      online.push(session);
    }
  }
  online
}

/// Messages a session still has to deliver or to see acknowledged.
fn pending(session: &Session) -> usize {
  session.deliver_queue().len() + session.out_inflight().lock().len()
}
