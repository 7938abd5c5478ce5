//! The JavaScript hook sets of one `MqttServer`: reading a callbacks object
//! given to `setHooks()` or `addHooks()`, and the per-server list of sets
//! (the `setHooks()` set first, then the added ones in the order added).
//!
//! The functions are held as references and only ever called on the JS
//! thread, by the set's queue (`hook_queue.rs`). Notifications are bounded
//! and never wait for JavaScript; decisions are awaited with a timeout.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;

use crate::decision::Verdict;
use crate::decision_cache::DecisionCache;
use crate::error::invalid_arg;
use crate::hook_queue::Queue;
use crate::hook_table::Kind;

/// Default number of notifications waiting for JavaScript, per server, before
/// new ones are dropped (and counted).
const DEFAULT_QUEUE_LIMIT: usize = 10_000;
/// Default time a decision hook may take before the broker denies.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of a set's cached decisions (`cacheMs`).
const DEFAULT_CACHE_LIMIT: usize = 10_000;

/// Options for `setHooks()`.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct HookOptions {
  /// How long a decision hook (authenticate / authorize) may take, in
  /// milliseconds, before the broker denies and logs a warning. Default 5000.
  pub timeout_ms: Option<f64>,
  /// How many notifications may wait for JavaScript before new ones are
  /// dropped and counted in `hookStats.droppedNotifications`. Default 10000.
  pub max_queued_notifications: Option<f64>,
  /// How many decisions returned with `cacheMs` this set keeps at most
  /// (each ~100 bytes plus its topic); beyond it the oldest expired, then
  /// arbitrary ones, are dropped. 0 disables caching. Default 10000.
  pub max_cached_decisions: Option<f64>,
}

/// Counters of hook trouble since the server was created.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct HookStats {
  /// Notifications not delivered because JavaScript fell behind (queue full).
  pub dropped_notifications: f64,
  /// Decision hooks that did not answer in time (each one denied).
  pub timeouts: f64,
  /// Decision and notification hooks that threw, rejected or returned a bad value.
  pub failures: f64,
  /// Decisions cached now (`cacheMs`), over all hook sets.
  pub cached_decisions: f64,
}

/// A hook function, referenced from the broker's threads, called on the JS thread only.
pub type HookFn = FunctionRef<(), Unknown<'static>>;

/// One complete set of hooks, as given to one `setHooks()` or `addHooks()` call.
pub struct HookSet {
  pub timeout: Duration,
  pub queue_limit: usize,
  pub queue: Queue,
  /// Its decisions returned with `cacheMs`.
  pub cache: DecisionCache<Verdict>,
}

impl HookSet {
  /// Reads a `HookCallbacks` object. Runs on the JS thread.
  pub fn from_js(
    env: &Env,
    callbacks: &Object,
    options: Option<HookOptions>,
    hooks: &Arc<Hooks>,
  ) -> Result<Self> {
    let keys = callbacks.get_property_names()?;
    for i in 0..keys.get_array_length()? {
      let key: String = keys.get_element(i)?;
      if !Kind::ALL.iter().any(|k| k.name() == key) {
        let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        return Err(invalid_arg(format!(
          "hooks.{key}: unknown hook; valid hooks are {}",
          names.join(", ")
        )));
      }
    }
    let options = options.unwrap_or_default();
    let queue_limit = match options.max_queued_notifications {
      None => DEFAULT_QUEUE_LIMIT,
      Some(n) if n.is_finite() && n.fract() == 0.0 && (1.0..=10_000_000.0).contains(&n) => {
        n as usize
      }
      Some(n) => {
        return Err(invalid_arg(format!(
          "options.maxQueuedNotifications: must be an integer from 1 to 10000000, got {n}"
        )))
      }
    };
    let timeout = match options.timeout_ms {
      None => DEFAULT_TIMEOUT,
      Some(ms) if (1.0..=600_000.0).contains(&ms) => Duration::from_millis(ms as u64),
      Some(ms) => {
        return Err(invalid_arg(format!(
          "options.timeoutMs: must be a number of milliseconds from 1 to 600000, got {ms}"
        )))
      }
    };
    let cache_limit = match options.max_cached_decisions {
      None => DEFAULT_CACHE_LIMIT,
      Some(n) if n.is_finite() && n.fract() == 0.0 && (0.0..=10_000_000.0).contains(&n) => {
        n as usize
      }
      Some(n) => {
        return Err(invalid_arg(format!(
          "options.maxCachedDecisions: must be an integer from 0 to 10000000, got {n}"
        )))
      }
    };
    let fns = Kind::ALL
      .iter()
      .map(|k| function(callbacks, k.name()))
      .collect::<Result<Vec<_>>>()?;
    Ok(HookSet {
      timeout,
      queue_limit,
      queue: Queue::new(env, fns, hooks)?,
      cache: DecisionCache::new(cache_limit),
    })
  }

  pub fn has(&self, kind: Kind) -> bool {
    self.queue.has(kind)
  }
}

/// A reference to the function under `name`, if present; anything but a
/// function (or undefined/null) is an error naming the hook.
fn function(obj: &Object, name: &str) -> Result<Option<HookFn>> {
  let value: Unknown = obj.get_named_property(name)?;
  match value.get_type()? {
    ValueType::Undefined | ValueType::Null => Ok(None),
    ValueType::Function => {
      let f: Function<(), Unknown<'static>> = unsafe { value.cast()? };
      Ok(Some(f.create_ref()?))
    }
    _ => Err(invalid_arg(format!("hooks.{name}: must be a function"))),
  }
}

/// The hook sets in the order they are asked.
pub type SetList = Arc<Vec<Arc<HookSet>>>;

#[derive(Default)]
struct Sets {
  /// The `setHooks()` set.
  default: Option<Arc<HookSet>>,
  /// The `addHooks()` sets with their ids, in the order added.
  added: Vec<(u64, Arc<HookSet>)>,
  next_id: u64,
  /// All of them, in order: what the broker reads.
  all: SetList,
}

/// The kinds some current set has, one bit per `Kind`: read on the broker's
/// hot paths without a lock.
pub type KindMask = Arc<AtomicU64>;

const _: () = assert!(Kind::ALL.len() <= 64, "KindMask holds one bit per Kind");

fn bit(kind: Kind) -> u64 {
  1 << kind as u32
}

/// Whether a set of `mask` has `kind`.
pub fn mask_has(mask: &KindMask, kind: Kind) -> bool {
  mask.load(Ordering::Acquire) & bit(kind) != 0
}

impl Sets {
  /// Rebuilds `all` and `kinds` and clears every cached decision: a change
  /// of hooks may change the answers.
  fn changed(&mut self, kinds: &KindMask) {
    for set in self.all.iter() {
      set.cache.clear();
    }
    self.all = Arc::new(
      self
        .default
        .iter()
        .chain(self.added.iter().map(|(_, s)| s))
        .cloned()
        .collect(),
    );
    let mask = Kind::ALL
      .iter()
      .filter(|k| self.all.iter().any(|set| set.has(**k)))
      .fold(0, |m, k| m | bit(*k));
    kinds.store(mask, Ordering::Release);
  }
}

/// The hooks of one `MqttServer`, shared with its running broker.
#[derive(Default)]
pub struct Hooks {
  sets: RwLock<Sets>,
  kinds: KindMask,
  /// Notifications queued for JavaScript and not yet run.
  pending: AtomicUsize,
  dropped: AtomicU64,
  timeouts: AtomicU64,
  failures: AtomicU64,
}

impl Hooks {
  /// The current hook sets; the lock is held only for the `Arc` clone,
  /// never while JavaScript runs.
  pub fn current(&self) -> SetList {
    self.sets.read().map(|s| s.all.clone()).unwrap_or_default()
  }

  /// The kinds the current sets have, kept up to date by every change.
  pub fn kinds(&self) -> KindMask {
    self.kinds.clone()
  }

  /// Replaces the `setHooks()` set (`None` removes it).
  pub fn replace(&self, set: Option<HookSet>) {
    if let Ok(mut sets) = self.sets.write() {
      sets.default = set.map(Arc::new);
      sets.changed(&self.kinds);
    }
  }

  /// Adds a set after the others; returns its id for `remove`.
  pub fn add(&self, set: HookSet) -> u64 {
    let Ok(mut sets) = self.sets.write() else {
      return 0;
    };
    sets.next_id += 1;
    let id = sets.next_id;
    sets.added.push((id, Arc::new(set)));
    sets.changed(&self.kinds);
    id
  }

  /// Removes an added set; false if it was removed before.
  pub fn remove(&self, id: u64) -> bool {
    let Ok(mut sets) = self.sets.write() else {
      return false;
    };
    let before = sets.added.len();
    sets.added.retain(|(i, _)| *i != id);
    let removed = sets.added.len() != before;
    if removed {
      sets.changed(&self.kinds);
    }
    removed
  }

  /// Removes every set (the server is closed).
  pub fn clear(&self) {
    if let Ok(mut sets) = self.sets.write() {
      sets.default = None;
      sets.added.clear();
      sets.changed(&self.kinds);
    }
  }

  pub fn stats(&self) -> HookStats {
    HookStats {
      dropped_notifications: self.dropped.load(Ordering::Relaxed) as f64,
      timeouts: self.timeouts.load(Ordering::Relaxed) as f64,
      failures: self.failures.load(Ordering::Relaxed) as f64,
      cached_decisions: self.current().iter().map(|s| s.cache.len()).sum::<usize>() as f64,
    }
  }

  /// Takes a queue slot for one notification, or counts it as dropped when
  /// `limit` are already waiting. Warns on the 1st, 2nd, 4th... drop so a
  /// flood does not also flood the log.
  pub fn try_enqueue(&self, hook: &str, limit: usize) -> bool {
    if self.pending.fetch_add(1, Ordering::AcqRel) < limit {
      return true;
    }
    self.pending.fetch_sub(1, Ordering::AcqRel);
    let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
      tracing::warn!(
        "{hook}: JavaScript is not keeping up, {n} notification(s) dropped so far (limit {limit} queued)"
      );
    }
    false
  }

  /// Frees the slot taken by `try_enqueue` once the notification ran (or failed to queue).
  pub fn dequeued(&self) {
    self.pending.fetch_sub(1, Ordering::AcqRel);
  }

  pub fn count_timeout(&self) {
    self.timeouts.fetch_add(1, Ordering::Relaxed);
  }

  pub fn count_failure(&self) {
    self.failures.fetch_add(1, Ordering::Relaxed);
  }
}
