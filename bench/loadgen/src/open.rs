//! Opening many connections with a bounded number in progress at once, as
//! clients arriving together would, without overrunning the listen backlog.

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Runs `open(i)` for every `i < n`, at most `concurrency` at a time.
/// Returns the successes in index order and the error messages.
pub async fn open_all<T, F, Fut>(n: usize, concurrency: usize, open: F) -> (Vec<T>, Vec<String>)
where
  T: Send + 'static,
  F: Fn(usize) -> Fut,
  Fut: Future<Output = io::Result<T>> + Send + 'static,
{
  let gate = Arc::new(Semaphore::new(concurrency));
  let mut set = JoinSet::new();
  for i in 0..n {
    let permit = gate.clone().acquire_owned().await.expect("never closed");
    let fut = open(i);
    set.spawn(async move {
      let r = fut.await;
      drop(permit);
      (i, r)
    });
  }
  let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
  let mut errors = Vec::new();
  while let Some(j) = set.join_next().await {
    match j {
      Ok((i, Ok(v))) => slots[i] = Some(v),
      Ok((i, Err(e))) => errors.push(format!("connection {i}: {e}")),
      Err(e) => errors.push(e.to_string()),
    }
  }
  (slots.into_iter().flatten().collect(), errors)
}
