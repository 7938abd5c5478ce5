//! The queue between a broker and one hook set's JavaScript functions.
//!
//! Broker threads push events; one weak threadsafe function wakes the JS
//! thread, and each wake-up runs every event queued by then, in order.
//! Under load this is one wake-up per batch instead of one threadsafe-function
//! call per event. A decision wakes JavaScript at once (a client waits for
//! it); notifications wait up to `NOTIFY_DELAY` (or until `FLUSH_AT` are
//! queued) so that a flood is run in batches: waking the JS thread per event
//! cost more than running the event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{
  ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use tokio::sync::oneshot;

use crate::hook_data::AllowAll;
use crate::hook_js::{Args, Builders, HookArgs, ALLOW};
use crate::hook_table::{Dispatch, Event, Kind};
use crate::hooks::{HookFn, Hooks};

/// Where a decision hook's answer goes: the value, or the Promise of it.
pub type Reply<R> = oneshot::Sender<Result<Either<R, Promise<R>>>>;

/// Cleared when the broker run that queued an event stops: its events are
/// then skipped, so nothing reaches JavaScript after `stop()`.
pub type Live = Arc<AtomicBool>;

struct Job {
  live: Live,
  event: Event,
}

impl Job {
  /// Frees the queue slot a notification took in `Queue::push`, once it ran
  /// or will never run. Decisions take no slot.
  fn release(&self, hooks: &Hooks) {
    if !self.event.kind().decides() {
      hooks.dequeued();
    }
  }
}

/// Events run per handle scope: bounds what a large batch keeps reachable.
const EVENTS_PER_SCOPE: usize = 64;
/// Longest a notification waits for company before JavaScript is woken.
const NOTIFY_DELAY: Duration = Duration::from_millis(1);
/// Queued events that wake JavaScript without waiting for the delay.
const FLUSH_AT: usize = 1024;

#[derive(Default)]
struct State {
  jobs: Vec<Job>,
  /// A wake-up is queued and has not taken the jobs yet.
  woken: bool,
  /// A delayed wake-up is armed.
  timer: bool,
}

struct Shared {
  /// By `Kind as usize`.
  fns: Vec<Option<HookFn>>,
  builders: Builders,
  hooks: Weak<Hooks>,
  state: Mutex<State>,
  /// The emptied vector of the last batch, swapped in for the next one so
  /// the queue does not reallocate (across threads) per batch.
  spare: Mutex<Vec<Job>>,
}

type Wake = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// The queue of one hook set.
pub struct Queue {
  shared: Arc<Shared>,
  wake: Arc<Wake>,
}

/// The threadsafe function's own JS function: all the work happens in its
/// Rust callback, before this is called with no arguments.
unsafe extern "C" fn noop(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
  std::ptr::null_mut()
}

impl Queue {
  /// Runs on the JS thread.
  pub fn new(env: &Env, fns: Vec<Option<HookFn>>, hooks: &Arc<Hooks>) -> Result<Self> {
    let shared = Arc::new(Shared {
      fns,
      builders: Builders::compile(env)?,
      hooks: Arc::downgrade(hooks),
      state: Mutex::new(State::default()),
      spare: Mutex::new(Vec::new()),
    });
    let runner = shared.clone();
    let wake = env
      .create_function::<(), Unknown<'static>>("mqttServerHooks", noop)?
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build_callback(move |ctx: ThreadsafeCallContext<()>| {
        runner.run_batch(&ctx.env);
        Ok(())
      })?;
    Ok(Queue {
      shared,
      wake: Arc::new(wake),
    })
  }

  pub fn has(&self, kind: Kind) -> bool {
    self.shared.fns[kind as usize].is_some()
  }

  /// Queues a notification for JavaScript without waiting. Past the set's
  /// limit it is dropped and counted instead.
  pub fn push(&self, live: &Live, hooks: &Hooks, limit: usize, event: Event) {
    let kind = event.kind();
    if !kind.decides() && !hooks.try_enqueue(kind.name(), limit) {
      return;
    }
    self.enqueue(live, event, false);
  }

  /// Queues a decision. JavaScript is woken once the calling task has let
  /// the other ready tasks of its worker run (they often queue decisions
  /// too), so that one wake-up serves many clients: waking the JS thread
  /// costs more than running a hook. The wake-up also happens if the
  /// caller is cancelled meanwhile.
  pub async fn push_decision(&self, live: &Live, event: Event) {
    struct Flush<'a>(&'a Queue);
    impl Drop for Flush<'_> {
      fn drop(&mut self) {
        self.0.flush();
      }
    }
    self.enqueue(live, event, true);
    let _flush = Flush(self);
    tokio::task::yield_now().await;
  }

  /// Wakes JavaScript if jobs wait and no wake-up is on its way.
  fn flush(&self) {
    let fire = match self.shared.state.lock() {
      Ok(mut st) => {
        let fire = !st.woken && !st.jobs.is_empty();
        st.woken |= fire;
        fire
      }
      Err(_) => false,
    };
    if fire {
      wake(&self.shared, &self.wake);
    }
  }

  fn enqueue(&self, live: &Live, event: Event, deferred: bool) {
    let (wake_now, arm_timer) = {
      let Ok(mut st) = self.shared.state.lock() else {
        return;
      };
      st.jobs.push(Job {
        live: live.clone(),
        event,
      });
      // A wake-up already on its way runs this one too; a decision is
      // flushed by push_decision.
      if st.woken || deferred {
        (false, false)
      } else if st.jobs.len() >= FLUSH_AT {
        st.woken = true;
        (true, false)
      } else if !st.timer {
        st.timer = true;
        (false, true)
      } else {
        (false, false)
      }
    };
    if wake_now {
      wake(&self.shared, &self.wake);
    } else if arm_timer {
      let timer = Timer {
        shared: Arc::downgrade(&self.shared),
        wake: self.wake.clone(),
      };
      match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
          rt.spawn(async move {
            tokio::time::sleep(NOTIFY_DELAY).await;
            drop(timer);
          });
        }
        Err(_) => drop(timer),
      }
    }
  }
}

/// A delayed wake-up. It fires when dropped, so a runtime shutting down
/// (which drops its sleeping tasks) still flushes the queue.
struct Timer {
  shared: Weak<Shared>,
  wake: Arc<Wake>,
}

impl Drop for Timer {
  fn drop(&mut self) {
    let Some(shared) = self.shared.upgrade() else {
      return;
    };
    let fire = match shared.state.lock() {
      Ok(mut st) => {
        st.timer = false;
        let fire = !st.woken && !st.jobs.is_empty();
        st.woken |= fire;
        fire
      }
      Err(_) => false,
    };
    if fire {
      wake(&shared, &self.wake);
    }
  }
}

/// Queues the threadsafe-function call that runs the batch.
fn wake(shared: &Shared, tsfn: &Wake) {
  let status = tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
  if status == Status::Ok {
    return;
  }
  // Node is going away: nothing queued will run. Decisions see their reply
  // dropped and deny; notifications free their slots.
  let jobs = shared.take();
  if let Some(hooks) = shared.hooks.upgrade() {
    for job in &jobs {
      job.release(&hooks);
    }
  }
  if status != Status::Closing {
    tracing::warn!("hooks: could not reach JavaScript ({status})");
  }
}

impl Shared {
  /// Takes the queued jobs; the wake-up that runs them is no longer pending.
  fn take(&self) -> Vec<Job> {
    self
      .state
      .lock()
      .map(|mut st| {
        st.woken = false;
        std::mem::take(&mut st.jobs)
      })
      .unwrap_or_default()
  }

  /// Runs every queued event. On the JS thread, inside the handle scope
  /// Node opens for a threadsafe-function call.
  fn run_batch(&self, env: &Env) {
    let mut batch = self
      .spare
      .lock()
      .map(|mut s| std::mem::take(&mut *s))
      .unwrap_or_default();
    if let Ok(mut st) = self.state.lock() {
      st.woken = false;
      std::mem::swap(&mut st.jobs, &mut batch);
    }
    if let Some(hooks) = self.hooks.upgrade() {
      if let Err(e) = self.run_jobs(env, &hooks, &mut batch) {
        tracing::warn!("hooks: {}", e.reason);
      }
      // Whatever an error left unrun still frees its queue slot.
      for job in batch.drain(..) {
        job.release(&hooks);
      }
    }
    batch.clear();
    if let Ok(mut spare) = self.spare.lock() {
      *spare = batch;
    }
  }

  fn run_jobs(&self, env: &Env, hooks: &Hooks, batch: &mut Vec<Job>) -> Result<()> {
    let mut runner = Runner {
      args: unsafe { Args::new(env.raw())? },
      builders: &self.builders,
      values: self.builders.values(env)?,
      argv: Vec::with_capacity(20),
      fns: [std::ptr::null_mut(); Kind::ALL.len()],
      hooks,
    };
    for (slot, f) in runner.fns.iter_mut().zip(&self.fns) {
      if let Some(f) = f {
        *slot = f.borrow_back(env)?.raw();
      }
    }
    let raw = env.raw();
    let mut jobs = batch.drain(..);
    while !jobs.as_slice().is_empty() {
      let mut scope = std::ptr::null_mut();
      let status = unsafe { sys::napi_open_handle_scope(raw, &mut scope) };
      let opened = status == sys::Status::napi_ok;
      let next = &jobs.as_slice()[..EVENTS_PER_SCOPE.min(jobs.as_slice().len())];
      let reserved = runner
        .args
        .reserve(next.iter().map(|j| j.event.slab_bytes()).sum());
      if reserved.is_ok() {
        for job in jobs.by_ref().take(EVENTS_PER_SCOPE) {
          job.release(hooks);
          if !job.live.load(Ordering::Acquire) || runner.fns[job.event.kind() as usize].is_null() {
            continue; // a decision's dropped reply denies
          }
          job.event.dispatch(&mut runner);
        }
      }
      runner.args.forget();
      if opened {
        unsafe { sys::napi_close_handle_scope(raw, scope) };
      }
      if let Err(e) = reserved {
        // The rest never runs; they still free their queue slots.
        for job in jobs {
          job.release(hooks);
        }
        return Err(e);
      }
    }
    Ok(())
  }
}

/// What runs the events of one batch.
struct Runner<'a> {
  args: Args,
  builders: &'a Builders,
  /// The builders (and `ALLOW`) in the current scope.
  values: [sys::napi_value; ALLOW + 1],
  argv: Vec<sys::napi_value>,
  /// The hook functions, by `Kind as usize`; null for an absent hook.
  fns: [sys::napi_value; Kind::ALL.len()],
  hooks: &'a Hooks,
}

impl Dispatch for Runner<'_> {
  /// Makes the arguments of one event and calls its hook through the
  /// builder of its kind.
  fn run<A: HookArgs, O: Outcome>(&mut self, kind: Kind, args: A, outcome: O) {
    let name = kind.name();
    self.argv.clear();
    self.argv.push(self.fns[kind as usize]);
    let ret = args.push(&mut self.args, &mut self.argv).and_then(|()| {
      // A builder whose parameters do not match the values made would
      // shift every argument after the mismatch.
      let arity = self.builders.arity(kind);
      if self.argv.len() != arity {
        return Err(Error::from_reason(format!(
          "hook_js: {name}'s builder takes {arity} values, {} were made",
          self.argv.len()
        )));
      }
      call(&self.args, self.values[kind as usize], &self.argv)
    });
    if let Err(e) = outcome.finish(&self.args, self.values[ALLOW], name, ret) {
      self.hooks.count_failure();
      tracing::warn!("{name} threw: {}", e.reason);
    }
  }
}

/// Calls `f` with `argv`; a throw comes back as the error, cleared.
fn call(a: &Args, f: sys::napi_value, argv: &[sys::napi_value]) -> Result<sys::napi_value> {
  let env = a.env();
  let mut undefined = std::ptr::null_mut();
  let mut ret = std::ptr::null_mut();
  unsafe {
    sys::napi_get_undefined(env, &mut undefined);
    match sys::napi_call_function(env, undefined, f, argv.len(), argv.as_ptr(), &mut ret) {
      sys::Status::napi_ok => Ok(ret),
      sys::Status::napi_pending_exception => {
        let mut error = std::ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut error);
        Err(Error::from(Unknown::from_raw_unchecked(env, error)))
      }
      status => Err(Error::new(Status::from(status), "calling the hook failed")),
    }
  }
}

fn strict_equals(env: sys::napi_env, a: sys::napi_value, b: sys::napi_value) -> bool {
  let mut same = false;
  let status = unsafe { sys::napi_strict_equals(env, a, b, &mut same) };
  status == sys::Status::napi_ok && same
}

fn is_promise(env: sys::napi_env, v: sys::napi_value) -> bool {
  let mut yes = false;
  let status = unsafe { sys::napi_is_promise(env, v, &mut yes) };
  status == sys::Status::napi_ok && yes
}

/// What becomes of a hook's return value: `()` for a notification, the
/// reply channel for a decision.
pub trait Outcome {
  /// An error here is the hook's failure, counted and logged by the caller.
  fn finish(
    self,
    a: &Args,
    allow: sys::napi_value,
    name: &'static str,
    ret: Result<sys::napi_value>,
  ) -> Result<()>;
}

/// A notification: its value is ignored, a rejection is logged.
impl Outcome for () {
  fn finish(
    self,
    a: &Args,
    _allow: sys::napi_value,
    name: &'static str,
    ret: Result<sys::napi_value>,
  ) -> Result<()> {
    let env = a.env();
    let ret = ret?;
    if is_promise(env, ret) {
      let promise = unsafe { PromiseRaw::<Unknown>::from_napi_value(env, ret)? };
      promise.catch(move |ctx: CallbackContext<Unknown>| {
        let reason = unsafe { ctx.value.cast::<String>() }.unwrap_or_default();
        tracing::warn!("{name} rejected: {reason}");
        Ok(())
      })?;
    }
    Ok(())
  }
}

/// A decision: the answer (or its Promise) goes to the broker task awaiting
/// it. Errors go to that task too, which denies and reports.
impl<R: FromNapiValue + AllowAll + 'static> Outcome for Reply<R> {
  fn finish(
    self,
    a: &Args,
    allow: sys::napi_value,
    _name: &'static str,
    ret: Result<sys::napi_value>,
  ) -> Result<()> {
    let answer = ret.and_then(|ret| {
      if strict_equals(a.env(), ret, allow) {
        Ok(Either::A(R::allow_all()))
      } else if is_promise(a.env(), ret) {
        Ok(Either::B(unsafe {
          Promise::<R>::from_napi_value(a.env(), ret)?
        }))
      } else {
        Ok(Either::A(unsafe { R::from_napi_value(a.env(), ret)? }))
      }
    });
    let _ = self.send(answer);
    Ok(())
  }
}
