//! Error constructors shared by the modules, so every error that reaches
//! JavaScript carries a stable `code` and a message naming what was wrong.

use napi::{Error, Status};

/// Bad input from the caller (a config field, a topic, an option).
/// Surfaces in JavaScript with `code === "InvalidArg"`.
pub fn invalid_arg(msg: impl Into<String>) -> Error {
  Error::new(Status::InvalidArg, redacted(msg.into()))
}

/// The call was fine but the broker could not do it (port taken, not running...).
/// Surfaces in JavaScript with `code === "GenericFailure"`.
pub fn failure(msg: impl Into<String>) -> Error {
  Error::new(Status::GenericFailure, redacted(msg.into()))
}

/// The message without key material (`redact.rs`).
pub fn redacted(msg: String) -> String {
  match crate::redact::redact(&msg) {
    std::borrow::Cow::Borrowed(_) => msg,
    std::borrow::Cow::Owned(clean) => clean,
  }
}
