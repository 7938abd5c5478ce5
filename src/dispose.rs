//! `await using server = new MqttServer()`: `Symbol.asyncDispose` is
//! `close()`, so leaving the scope stops the broker (if it runs) and
//! releases the server, as `net.Server`'s disposer closes it. And
//! `using sub = await server.subscribe(...)`: a `Subscription`'s
//! `Symbol.dispose` and `Symbol.asyncDispose` are `unsubscribe()`, which
//! stops delivery at once (the sync form leaves its promise, which never
//! rejects, to settle on its own). Set on the classes' prototypes when the
//! module loads (napi-rs cannot name a method by a symbol); Node.js without
//! the symbols gets nothing.

use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;

#[napi(module_exports)]
#[cfg_attr(test, allow(dead_code))] // napi-rs calls it at module load; unit tests do not
pub fn define_async_dispose(exports: Object, env: Env) -> Result<()> {
  // `Symbol` and the classes are functions: read as values, then as objects.
  let symbol = env
    .get_global()?
    .get_named_property::<Unknown>("Symbol")?
    .coerce_to_object()?;
  define(&exports, &symbol, "MqttServer", "close", &["asyncDispose"])?;
  define(
    &exports,
    &symbol,
    "Subscription",
    "unsubscribe",
    &["dispose", "asyncDispose"],
  )
}

/// `class.prototype[Symbol[each]] = class.prototype[method]`, for each
/// symbol this Node.js has.
fn define(
  exports: &Object,
  symbol: &Object,
  class: &str,
  method: &str,
  symbols: &[&str],
) -> Result<()> {
  let class = exports
    .get_named_property::<Unknown>(class)?
    .coerce_to_object()?;
  let mut prototype: Object = class.get_named_property("prototype")?;
  let f: Unknown = prototype.get_named_property(method)?;
  for name in symbols {
    let key: Unknown = symbol.get_named_property(name)?;
    if key.get_type()? == ValueType::Symbol {
      prototype.set_property(key, f)?;
    }
  }
  Ok(())
}
