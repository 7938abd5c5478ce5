//! `server.messages()`: an in-process subscription as an async iterator.
//! The iterator itself is JavaScript (`messages.js`), built on
//! `server.subscribe()`; this compiles and calls it.

use napi::bindgen_prelude::*;

/// Makes the iterator over `filter`'s messages for `server` (`this`).
pub fn iterator<'a>(
  env: &'a Env,
  server: This<'a>,
  filter: Unknown<'a>,
  options: Option<Unknown<'a>>,
) -> Result<Unknown<'a>> {
  let source = format!(
    "(function () {{\n'use strict'\n{}\nreturn messages\n}})()",
    include_str!("messages.js")
  );
  let make: Function<FnArgs<(Unknown, Unknown, Unknown)>, Unknown> = env.run_script(source)?;
  let options = match options {
    Some(o) => o,
    None => unsafe { Unknown::from_napi_value(env.raw(), <()>::to_napi_value(env.raw(), ())?)? },
  };
  make.call((server.object.to_unknown(), filter, options).into())
}
