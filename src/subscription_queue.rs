//! The queue between an in-process subscription's reading task and its
//! JavaScript handler.
//!
//! As for hooks (`hook_queue.rs`), one weak threadsafe function wakes the JS
//! thread and each wake-up runs every message queued by then, in order: under
//! a flood that is one wake-up per batch. While a wake-up is on its way,
//! further messages only join the batch. The message objects are made the
//! way hook arguments are (`hook_js::Args`, `message()` of hook_args.js).
//!
//! A message stays counted (`pending`, and in the flow control) until its
//! handler has returned, or the promise it returned has settled: that is what
//! holds publishers back while JavaScript falls behind.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{
  ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use rmqtt::types::ClientId;
use tokio::sync::watch;

use crate::backpressure::FlowControl;
use crate::hook_js::{Args, Msg};
use crate::hooks::Hooks;
use crate::subscription_batch::{self, Topics};

/// Messages per call into JavaScript (and handle scope): bounds what a
/// large batch keeps reachable, and how long `unsubscribe()` from another
/// thread may take to stop delivery.
const PER_RUN: usize = 256;

type Wake = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;
type JsFn = FunctionRef<(), Unknown<'static>>;
/// A native callback given to subscription.js.
type Callback<'e> = Function<'e, (), ()>;

#[derive(Default)]
struct State {
  messages: Vec<Msg>,
  /// A wake-up is queued and has not taken the messages yet.
  woken: bool,
}

/// The handler and the functions that call it (see `subscription.js`).
struct Js {
  handler: JsFn,
  run: JsFn,
  end: JsFn,
  topics: Topics,
}

pub struct Delivery {
  state: Mutex<State>,
  /// Set on the JS thread at creation, taken there once the subscription
  /// ended, so the handler can be collected.
  js: Mutex<Option<Js>>,
  /// The emptied vector of the last batch, swapped in for the next one so
  /// the queue does not reallocate (across threads) per batch.
  spare: Mutex<Vec<Msg>>,
  /// Queued for JavaScript or in a handler's promise.
  pending: AtomicUsize,
  dropped: AtomicU64,
  /// `ended`, read per message on the JS thread without the watch's lock.
  is_ended: AtomicBool,
  ended: watch::Sender<bool>,
  flow: FlowControl,
  client_id: ClientId,
  hooks: Weak<Hooks>,
  wake: Mutex<Option<Wake>>,
}

/// The threadsafe function's own JS function: all the work happens in its
/// Rust callback.
unsafe extern "C" fn noop(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
  ptr::null_mut()
}

impl Delivery {
  /// Runs on the JS thread.
  pub fn new(
    env: &Env,
    handler: Function<(), Unknown<'static>>,
    hooks: &Arc<Hooks>,
    flow: FlowControl,
    client_id: ClientId,
  ) -> Result<Arc<Self>> {
    let delivery = Arc::new(Delivery {
      state: Mutex::new(State::default()),
      js: Mutex::new(None),
      spare: Mutex::new(Vec::new()),
      pending: AtomicUsize::new(0),
      dropped: AtomicU64::new(0),
      is_ended: AtomicBool::new(false),
      ended: watch::Sender::new(false),
      flow,
      client_id,
      hooks: Arc::downgrade(hooks),
      wake: Mutex::new(None),
    });
    let weak = Arc::downgrade(&delivery);
    let done = env.create_function_from_closure::<(), (), _>("done", move |ctx| {
      if let Some(d) = weak.upgrade() {
        if ctx.length() > 0 && ctx.get::<bool>(0).unwrap_or(false) {
          d.failed(&format!("rejected: {}", reason(&ctx, 1)));
        }
        d.complete();
      }
      Ok(())
    })?;
    let weak = Arc::downgrade(&delivery);
    let threw = env.create_function_from_closure::<(), (), _>("threw", move |ctx| {
      if let Some(d) = weak.upgrade() {
        d.failed(&format!("threw: {}", reason(&ctx, 0)));
      }
      Ok(())
    })?;
    let source = format!(
      "(function () {{\n'use strict'\n{}\n{}\n{}\nreturn deliverer\n}})()",
      include_str!("hook_args.js"),
      subscription_batch::layout_js(),
      include_str!("subscription.js")
    );
    let factory: Function<FnArgs<(Callback, Callback)>, Object> = env.run_script(source)?;
    let deliverer = factory.call((done, threw).into())?;
    let run: Function<(), Unknown<'static>> = deliverer.get_named_property("run")?;
    let end: Function<(), Unknown<'static>> = deliverer.get_named_property("end")?;
    *delivery.js.lock().map_err(|_| poisoned())? = Some(Js {
      handler: handler.create_ref()?,
      run: run.create_ref()?,
      end: end.create_ref()?,
      topics: Topics::default(),
    });
    let runner = Arc::downgrade(&delivery);
    let wake = env
      .create_function::<(), Unknown<'static>>("mqttServerSubscription", noop)?
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build_callback(move |ctx: ThreadsafeCallContext<()>| {
        if let Some(d) = runner.upgrade() {
          d.run_batch(&ctx.env);
        }
        Ok(())
      })?;
    *delivery.wake.lock().map_err(|_| poisoned())? = Some(wake);
    Ok(delivery)
  }

  pub fn flow(&self) -> &FlowControl {
    &self.flow
  }

  pub fn pending(&self) -> usize {
    self.pending.load(Ordering::Relaxed)
  }

  pub fn dropped(&self) -> u64 {
    self.dropped.load(Ordering::Relaxed)
  }

  pub fn count_drop(&self) {
    self.dropped.fetch_add(1, Ordering::Relaxed);
  }

  pub fn ended(&self) -> bool {
    self.is_ended.load(Ordering::Acquire)
  }

  pub fn ended_signal(&self) -> watch::Receiver<bool> {
    self.ended.subscribe()
  }

  /// No message reaches the handler from now on; what is queued is
  /// discarded, and the handler released, on the JS thread.
  pub fn end(&self) {
    self.is_ended.store(true, Ordering::Release);
    self.ended.send_replace(true);
    self.wake();
  }

  /// `end()`, from the JS thread (`unsubscribe()`): also stops the run of
  /// messages under way, when the handler itself unsubscribed.
  pub fn end_on_js_thread(&self, env: &Env) {
    self.end();
    let end = self
      .js
      .lock()
      .ok()
      .and_then(|js| js.as_ref().and_then(|js| js.end.borrow_back(env).ok()));
    if let Some(end) = end {
      let _ = end.call(());
    }
  }

  /// Queues the messages for the handler, in order, under one lock (the
  /// reading task takes what its channel holds at once), leaving `msgs`
  /// empty.
  pub fn push_all(&self, msgs: &mut Vec<Msg>) {
    if msgs.is_empty() {
      return;
    }
    self.pending.fetch_add(msgs.len(), Ordering::Relaxed);
    let fire = match self.state.lock() {
      Ok(mut st) => {
        if st.messages.is_empty() {
          std::mem::swap(&mut st.messages, msgs);
        } else {
          st.messages.append(msgs);
        }
        !std::mem::replace(&mut st.woken, true)
      }
      Err(_) => false,
    };
    if fire {
      self.call_js();
    }
  }

  fn wake(&self) {
    let fire = match self.state.lock() {
      Ok(mut st) => !std::mem::replace(&mut st.woken, true),
      Err(_) => false,
    };
    if fire {
      self.call_js();
    }
  }

  fn call_js(&self) {
    let status = match self.wake.lock() {
      Ok(w) => w
        .as_ref()
        .map(|w| w.call((), ThreadsafeFunctionCallMode::NonBlocking)),
      Err(_) => None,
    };
    if status.is_some_and(|s| s != Status::Ok) {
      // Node is going away: nothing queued will run.
      let dropped = self
        .state
        .lock()
        .map(|mut st| std::mem::take(&mut st.messages))
        .unwrap_or_default();
      for _ in dropped {
        self.complete();
      }
    }
  }

  /// One message has been handled (or will never be).
  fn complete(&self) {
    self.complete_n(1);
  }

  /// `n` messages have been handled: counted out of the flow control at
  /// once.
  fn complete_n(&self, n: usize) {
    if n == 0 {
      return;
    }
    let _ = self
      .pending
      .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
      });
    self.flow.count_out_n(&self.client_id, n);
  }

  fn failed(&self, what: &str) {
    if let Some(hooks) = self.hooks.upgrade() {
      hooks.count_failure();
    }
    tracing::warn!("subscribe handler {what}");
  }

  /// Runs every queued message; on the JS thread.
  fn run_batch(&self, env: &Env) {
    let mut batch = self
      .spare
      .lock()
      .map(|mut s| std::mem::take(&mut *s))
      .unwrap_or_default();
    match self.state.lock() {
      Ok(mut st) => {
        st.woken = false;
        std::mem::swap(&mut st.messages, &mut batch);
      }
      Err(_) => return,
    };
    if self.ended() {
      self.complete_n(batch.len());
      // The handler and its closures can be collected now.
      let js = self.js.lock().ok().and_then(|mut js| js.take());
      drop(js);
      return;
    }
    let mut rest = batch.drain(..);
    if let Err(e) = self.run_messages(env, &mut rest) {
      tracing::warn!("subscribe: {}", e.reason);
    }
    // Whatever an error left unrun is not coming.
    self.complete_n(rest.len());
    drop(rest);
    if let Ok(mut spare) = self.spare.lock() {
      *spare = batch;
    }
  }

  fn run_messages(&self, env: &Env, batch: &mut std::vec::Drain<Msg>) -> Result<()> {
    let raw = env.raw();
    let args = unsafe { Args::new(raw)? };
    let mut argv: Vec<sys::napi_value> = Vec::with_capacity(6);
    while !batch.as_slice().is_empty() {
      // stop() or unsubscribe() from another thread: the rest is not
      // delivered.
      if self.ended() {
        return Ok(());
      }
      let mut scope = ptr::null_mut();
      let opened = unsafe { sys::napi_open_handle_scope(raw, &mut scope) } == sys::Status::napi_ok;
      let next = PER_RUN.min(batch.as_slice().len());
      let called = self.run_some(env, &args, &batch.as_slice()[..next], &mut argv);
      // Taken out of the batch either way: what the run did not finish
      // completes through `done`, or never comes.
      let n = batch.by_ref().take(next).count();
      let finished = match called {
        Ok(finished) => finished.min(n),
        Err(_) => n,
      };
      self.complete_n(finished);
      if opened {
        unsafe { sys::napi_close_handle_scope(raw, scope) };
      }
      called?;
    }
    Ok(())
  }

  /// One call of `run` for `msgs`: how many are done (the rest wait for
  /// the promises their handler returned).
  fn run_some(
    &self,
    env: &Env,
    args: &Args,
    msgs: &[Msg],
    argv: &mut Vec<sys::napi_value>,
  ) -> Result<usize> {
    // Not held across the call: the handler may unsubscribe (`end`).
    let (handler, run, values) = {
      let mut guard = self.js.lock().map_err(|_| poisoned())?;
      let Some(js) = guard.as_mut() else {
        return Ok(msgs.len());
      };
      let values = subscription_batch::build(args, &mut js.topics, msgs)?;
      (
        js.handler.borrow_back(env)?.raw(),
        js.run.borrow_back(env)?.raw(),
        values,
      )
    };
    argv.clear();
    argv.push(handler);
    argv.extend(values);
    call(env.raw(), run, argv)
  }
}

/// A callback's argument `i` as text, for a log line.
fn reason(ctx: &FunctionCallContext, i: usize) -> String {
  ctx
    .get::<Unknown>(i)
    .and_then(|e| e.coerce_to_string()?.into_utf8()?.into_owned())
    .unwrap_or_default()
}

/// Calls `run` (subscription.js): how many messages are done. A throw (of
/// `run` itself: the handler's are caught there) comes back as the error,
/// cleared.
fn call(env: sys::napi_env, f: sys::napi_value, argv: &[sys::napi_value]) -> Result<usize> {
  let mut undefined = ptr::null_mut();
  let mut ret = ptr::null_mut();
  unsafe {
    sys::napi_get_undefined(env, &mut undefined);
    match sys::napi_call_function(env, undefined, f, argv.len(), argv.as_ptr(), &mut ret) {
      sys::Status::napi_ok => {
        let mut n = 0f64;
        sys::napi_get_value_double(env, ret, &mut n);
        Ok(n as usize)
      }
      sys::Status::napi_pending_exception => {
        let mut error = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut error);
        Err(Error::from(Unknown::from_raw_unchecked(env, error)))
      }
      status => Err(Error::new(
        Status::from(status),
        "calling the handler failed",
      )),
    }
  }
}

fn poisoned() -> Error {
  Error::from_reason("subscription: a lock was poisoned")
}
