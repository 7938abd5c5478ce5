//! Warnings for the application, emitted with Node's `process.emitWarning`
//! so they can be observed (`process.on('warning')`) and silenced like
//! Node's own, rather than only logged.

use napi::bindgen_prelude::*;

/// `warning.name` of every warning this package emits.
const NAME: &str = "MqttServerWarning";

/// One warning: a stable `code` and a message that says what to do.
#[derive(Clone, Debug)]
pub struct Warning {
  pub code: &'static str,
  pub message: String,
}

impl Warning {
  pub fn new(code: &'static str, message: impl Into<String>) -> Self {
    Warning {
      code,
      message: message.into(),
    }
  }
}

/// Emits each warning. Runs on the JS thread.
pub fn emit(env: &Env, warnings: &[Warning]) -> Result<()> {
  if warnings.is_empty() {
    return Ok(());
  }
  let process: Object = env.get_global()?.get_named_property("process")?;
  let emit_warning: Function<FnArgs<(String, Object)>, Unknown> =
    process.get_named_property("emitWarning")?;
  for w in warnings {
    let mut options = Object::new(env)?;
    options.set_named_property("type", NAME)?;
    options.set_named_property("code", w.code)?;
    emit_warning.apply(process, FnArgs::from((w.message.clone(), options)))?;
  }
  Ok(())
}
