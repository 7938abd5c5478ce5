//! Keeps the Node.js event loop alive while a broker runs, as `net.Server` does.
//!
//! The broker lives on its own threads, which Node does not know about, so on
//! its own a running broker would let the process exit. A referenced
//! (non-weak) threadsafe function is the Node-API way to hold the loop open;
//! dropping it releases the loop again. It is never called.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;

pub struct KeepAlive {
  _tsfn: ThreadsafeFunction<(), (), (), Status, false, false>,
}

impl KeepAlive {
  pub fn new(env: &Env) -> Result<Self> {
    let noop = env.create_function_from_closure::<(), (), _>("mqttServerKeepAlive", |_| Ok(()))?;
    let tsfn = noop
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<false>()
      .build()?;
    Ok(Self { _tsfn: tsfn })
  }
}
