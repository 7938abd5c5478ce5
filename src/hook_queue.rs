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
use rmqtt::types::{From, Id, QoS as RQoS};
use tokio::sync::oneshot;

use crate::hook_data::{
  AllowAll, AuthenticateRequest, AuthenticateResult, PublishAuthorizeResult,
  SubscribeAuthorizeResult,
};
use crate::hook_js::{Args, Builders, Msg, Shape, ALLOW};
use crate::hooks::{HookFn, Hooks, Kind};

/// Where a decision hook's answer goes: the value, or the Promise of it.
pub type Reply<R> = oneshot::Sender<Result<Either<R, Promise<R>>>>;

/// Cleared when the broker run that queued an event stops: its events are
/// then skipped, so nothing reaches JavaScript after `stop()`.
pub type Live = Arc<AtomicBool>;

/// One hook call, with rmqtt's own (cheaply cloned) values; JS values are
/// made from them on the JS thread.
pub enum Event {
  Authenticate(AuthenticateRequest, Reply<AuthenticateResult>),
  SubscribeAuthorize(Id, String, RQoS, Reply<SubscribeAuthorizeResult>),
  PublishAuthorize(Id, Msg, Reply<PublishAuthorizeResult>),
  /// The bool tells a client's publish (it has a session) from a plugin's.
  MessagePublish(Option<Id>, From, bool, Msg),
  ClientSubscribe(Id, String, RQoS),
  ClientUnsubscribe(Id, String),
  ClientConnected(Id),
  ClientDisconnected(Id, String),
  MessageDelivered(Id, From, Msg),
  MessageAcked(Id, From, Msg),
  MessageDropped(Option<Id>, From, Msg, String),
  SessionCreated(Id),
  SessionTerminated(Id, String),
}

impl Event {
  /// Bytes of its payload that go into a scope's slab.
  fn slab_bytes(&self) -> usize {
    match self {
      Event::PublishAuthorize(_, m, _)
      | Event::MessagePublish(_, _, _, m)
      | Event::MessageDelivered(_, _, m)
      | Event::MessageAcked(_, _, m)
      | Event::MessageDropped(_, _, m, _) => m.slab_bytes(),
      _ => 0,
    }
  }

  fn kind(&self) -> Kind {
    match self {
      Event::Authenticate(..) => Kind::ClientAuthenticate,
      Event::SubscribeAuthorize(..) => Kind::ClientSubscribeAuthorize,
      Event::PublishAuthorize(..) => Kind::ClientPublishAuthorize,
      Event::MessagePublish(..) => Kind::MessagePublish,
      Event::ClientSubscribe(..) => Kind::ClientSubscribe,
      Event::ClientUnsubscribe(..) => Kind::ClientUnsubscribe,
      Event::ClientConnected(..) => Kind::ClientConnected,
      Event::ClientDisconnected(..) => Kind::ClientDisconnected,
      Event::MessageDelivered(..) => Kind::MessageDelivered,
      Event::MessageAcked(..) => Kind::MessageAcked,
      Event::MessageDropped(..) => Kind::MessageDropped,
      Event::SessionCreated(..) => Kind::SessionCreated,
      Event::SessionTerminated(..) => Kind::SessionTerminated,
    }
  }
}

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
    let mut fns = [std::ptr::null_mut(); Kind::ALL.len()];
    for (slot, f) in fns.iter_mut().zip(&self.fns) {
      if let Some(f) = f {
        *slot = f.borrow_back(env)?.raw();
      }
    }
    let builders = self.builders.values(env)?;
    let raw = env.raw();
    let mut args = unsafe { Args::new(raw)? };
    let mut argv = Vec::with_capacity(20);
    let mut jobs = batch.drain(..);
    while !jobs.as_slice().is_empty() {
      let mut scope = std::ptr::null_mut();
      let status = unsafe { sys::napi_open_handle_scope(raw, &mut scope) };
      let opened = status == sys::Status::napi_ok;
      let next = &jobs.as_slice()[..EVENTS_PER_SCOPE.min(jobs.as_slice().len())];
      let reserved = args.reserve(next.iter().map(|j| j.event.slab_bytes()).sum());
      if reserved.is_ok() {
        for job in jobs.by_ref().take(EVENTS_PER_SCOPE) {
          job.release(hooks);
          let kind = job.event.kind();
          let f = fns[kind as usize];
          if !job.live.load(Ordering::Acquire) || f.is_null() {
            continue; // a decision's dropped reply denies
          }
          argv.clear();
          run(&mut args, &builders, &mut argv, hooks, f, job.event);
        }
      }
      args.forget();
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

/// Makes the arguments of one event and calls its hook through the builder
/// of the event's shape.
fn run(
  a: &mut Args,
  builders: &[sys::napi_value],
  argv: &mut Vec<sys::napi_value>,
  hooks: &Hooks,
  f: sys::napi_value,
  event: Event,
) {
  let kind = event.kind();
  let name = kind.name();
  argv.push(f);
  let env = a.env();
  let outcome = match event {
    Event::Authenticate(req, reply) => {
      // Once per connection: napi-rs's own conversion is fine here.
      let ret = unsafe { AuthenticateRequest::to_napi_value(a.env(), req) }
        .and_then(|req| call(a, f, &[req]));
      decide(a, builders[ALLOW], ret, reply)
    }
    Event::SubscribeAuthorize(id, filter, qos, reply) => {
      let ret = (|| {
        a.session(argv, Some(&id))?;
        argv.extend([a.string(&filter)?, a.qos(qos)?]);
        call(a, builders[Shape::SessionSubscription as usize], argv)
      })();
      decide(a, builders[ALLOW], ret, reply)
    }
    Event::PublishAuthorize(id, m, reply) => {
      let ret = (|| {
        a.session(argv, Some(&id))?;
        a.publish_request(argv, &m)?;
        call(a, builders[Shape::SessionPublishRequest as usize], argv)
      })();
      decide(a, builders[ALLOW], ret, reply)
    }
    Event::MessagePublish(id, from, has_session, m) => notify(env, name, || {
      a.session(argv, id.as_ref())?;
      a.from(argv, &from, has_session)?;
      a.message(argv, &m)?;
      call(a, builders[Shape::Message as usize], argv)
    }),
    Event::ClientSubscribe(id, filter, qos) => notify(env, name, || {
      a.session(argv, Some(&id))?;
      argv.extend([a.string(&filter)?, a.qos(qos)?]);
      call(a, builders[Shape::SessionSubscription as usize], argv)
    }),
    Event::ClientUnsubscribe(id, filter) => notify(env, name, || {
      a.session(argv, Some(&id))?;
      argv.push(a.string(&filter)?);
      call(a, builders[Shape::SessionUnsubscription as usize], argv)
    }),
    Event::ClientConnected(id) | Event::SessionCreated(id) => notify(env, name, || {
      a.session(argv, Some(&id))?;
      call(a, builders[Shape::Session as usize], argv)
    }),
    Event::ClientDisconnected(id, reason) | Event::SessionTerminated(id, reason) => {
      notify(env, name, || {
        a.session(argv, Some(&id))?;
        argv.push(a.string(&reason)?);
        call(a, builders[Shape::SessionReason as usize], argv)
      })
    }
    Event::MessageDelivered(id, from, m) | Event::MessageAcked(id, from, m) => {
      notify(env, name, || {
        a.session(argv, Some(&id))?;
        a.from(argv, &from, false)?;
        a.message(argv, &m)?;
        call(a, builders[Shape::Message as usize], argv)
      })
    }
    Event::MessageDropped(to, from, m, reason) => notify(env, name, || {
      a.session(argv, to.as_ref())?;
      a.from(argv, &from, false)?;
      a.message(argv, &m)?;
      argv.push(a.string(&reason)?);
      call(a, builders[Shape::DroppedMessage as usize], argv)
    }),
  };
  if let Err(e) = outcome {
    hooks.count_failure();
    tracing::warn!("{name} threw: {}", e.reason);
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

/// Runs a notification: its value is ignored, a rejection is logged.
fn notify(
  env: sys::napi_env,
  name: &'static str,
  call: impl FnOnce() -> Result<sys::napi_value>,
) -> Result<()> {
  let ret = call()?;
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

/// Sends a decision hook's answer (or its Promise) to the broker task
/// awaiting it. Errors go to that task too, which denies and reports.
fn decide<R: FromNapiValue + AllowAll + 'static>(
  a: &Args,
  allow: sys::napi_value,
  ret: Result<sys::napi_value>,
  reply: Reply<R>,
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
  let _ = reply.send(answer);
  Ok(())
}
