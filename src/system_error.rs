//! Errors the operating system reported, shaped as Node's own: `code`
//! (`EADDRINUSE`, `ENOENT`...), `errno` and `syscall`, and `address`/`port`
//! or `path`, so a program branches on them as on `net.Server`'s or `fs`'s
//! errors. Everything else keeps `InvalidArg` / `GenericFailure`.

use napi::bindgen_prelude::*;
use napi::JsError;

/// A failure of an operation that may be a system error.
pub enum StartError {
  /// An ordinary error (`InvalidArg`, `GenericFailure`).
  Plain(Error),
  System(SystemError),
}

/// One system error: the message as this package words it, plus Node's fields.
pub struct SystemError {
  message: String,
  code: &'static str,
  errno: Option<i32>,
  syscall: &'static str,
  /// `address`/`port` of a listener, or `path` of a file.
  target: Target,
}

enum Target {
  Address(std::net::SocketAddr),
  Path(String),
}

impl std::fmt::Debug for StartError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      StartError::Plain(e) => write!(f, "{}: {}", e.status, e.reason),
      StartError::System(s) => write!(f, "{}: {}", s.code, s.message),
    }
  }
}

impl From<Error> for StartError {
  fn from(e: Error) -> Self {
    StartError::Plain(e)
  }
}

impl From<String> for StartError {
  fn from(message: String) -> Self {
    StartError::Plain(crate::error::failure(message))
  }
}

impl From<&str> for StartError {
  fn from(message: &str) -> Self {
    StartError::Plain(crate::error::failure(message))
  }
}

impl StartError {
  /// A socket that could not be bound: Node's `code` when the OS gave one
  /// Node names (`syscall` is `"listen"`, as `net.Server` says), else a
  /// plain `GenericFailure`.
  pub fn listen(message: String, e: &std::io::Error, addr: std::net::SocketAddr) -> Self {
    Self::system(
      message,
      e,
      "listen",
      Target::Address(addr),
      crate::error::failure,
    )
  }

  /// A file that could not be read (`syscall` `"open"`); without a code
  /// Node names, a plain `InvalidArg`.
  pub fn open(message: String, e: &std::io::Error, path: &str) -> Self {
    let target = Target::Path(crate::error::redacted(path.to_string()));
    Self::system(message, e, "open", target, crate::error::invalid_arg)
  }

  fn system(
    message: String,
    e: &std::io::Error,
    syscall: &'static str,
    target: Target,
    otherwise: fn(String) -> Error,
  ) -> Self {
    match code(e.kind()) {
      Some(code) => StartError::System(SystemError {
        message: crate::error::redacted(message),
        code,
        errno: e.raw_os_error().map(|_| errno(code, e)),
        syscall,
        target,
      }),
      None => StartError::Plain(otherwise(message)),
    }
  }

  /// The error JavaScript gets. Runs on the JS thread.
  pub fn into_js(self, env: &Env) -> Error {
    let s = match self {
      StartError::Plain(e) => return e,
      StartError::System(s) => s,
    };
    let built = (|| -> Result<Unknown<'_>> {
      let error = JsError::from(Error::new(s.code, s.message.clone())).into_unknown(*env);
      let mut object: Object = unsafe { error.cast()? };
      if let Some(errno) = s.errno {
        object.set_named_property("errno", errno)?;
      }
      object.set_named_property("syscall", s.syscall)?;
      match &s.target {
        Target::Address(a) => {
          object.set_named_property("address", a.ip().to_string())?;
          object.set_named_property("port", a.port() as u32)?;
        }
        Target::Path(p) => object.set_named_property("path", p.as_str())?,
      }
      Ok(error)
    })();
    match built {
      Ok(error) => Error::from(error),
      Err(_) => crate::error::failure(s.message),
    }
  }
}

/// Node's name for the error, for the kinds this package meets.
fn code(kind: std::io::ErrorKind) -> Option<&'static str> {
  use std::io::ErrorKind::*;
  Some(match kind {
    AddrInUse => "EADDRINUSE",
    AddrNotAvailable => "EADDRNOTAVAIL",
    PermissionDenied => "EACCES",
    NotFound => "ENOENT",
    NotADirectory => "ENOTDIR",
    _ => return None,
  })
}

/// Node's `errno`: libuv's number, the negated OS errno on Unix.
#[cfg(unix)]
fn errno(_code: &str, e: &std::io::Error) -> i32 {
  -e.raw_os_error().unwrap_or_default()
}

/// Node's `errno`: libuv's own numbers on Windows (uv/errno.h).
#[cfg(windows)]
fn errno(code: &str, _e: &std::io::Error) -> i32 {
  match code {
    "EACCES" => -4092,
    "EADDRINUSE" => -4091,
    "EADDRNOTAVAIL" => -4090,
    "ENOENT" => -4058,
    _ => -4052, // ENOTDIR
  }
}
