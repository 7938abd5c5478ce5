//! `await using server = new MqttServer()`: `Symbol.asyncDispose` is
//! `close()`, so leaving the scope stops the broker (if it runs) and
//! releases the server, as `net.Server`'s disposer closes it. Set on the
//! class's prototype when the module loads (napi-rs cannot name a method
//! by a symbol); Node.js without `Symbol.asyncDispose` gets nothing.

use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;

#[napi(module_exports)]
#[cfg_attr(test, allow(dead_code))] // napi-rs calls it at module load; unit tests do not
pub fn define_async_dispose(exports: Object, env: Env) -> Result<()> {
  // `Symbol` and the class are functions: read as values, then as objects.
  let symbol = env
    .get_global()?
    .get_named_property::<Unknown>("Symbol")?
    .coerce_to_object()?;
  let key: Unknown = symbol.get_named_property("asyncDispose")?;
  if key.get_type()? != ValueType::Symbol {
    return Ok(());
  }
  let class = exports
    .get_named_property::<Unknown>("MqttServer")?
    .coerce_to_object()?;
  let mut prototype: Object = class.get_named_property("prototype")?;
  let close: Unknown = prototype.get_named_property("close")?;
  prototype.set_property(key, close)
}
