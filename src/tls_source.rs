//! Where a listener's TLS material comes from: `tlsCert`, `tlsKey` and
//! `tlsCa` take a file path, PEM text or a `Buffer`, as `tls.createServer`
//! takes PEM text or a `Buffer`.
//!
//! The value may be a private key, so nothing here ever echoes it: only a
//! value known to be a path is shown in an error, and `Debug` hides the
//! rest.

use napi::bindgen_prelude::*;
use serde::de::{Error as _, SeqAccess, Visitor};

use crate::system_error::StartError;

/// A `tlsCert`/`tlsKey`/`tlsCa` value as given.
#[derive(Clone)]
pub enum PemSource {
  /// A path, or PEM text (see [`PemSource::is_pem_text`]).
  Text(String),
  /// A `Buffer` / `Uint8Array` holding PEM.
  Bytes(Vec<u8>),
}

impl std::fmt::Debug for PemSource {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      PemSource::Text(t) if is_path(t) => write!(f, "{t:?}"),
      PemSource::Text(t) => write!(f, "<PEM text, {} bytes>", t.len()),
      PemSource::Bytes(b) => write!(f, "<Buffer, {} bytes>", b.len()),
    }
  }
}

/// A string is PEM text (not a path) when it has a PEM boundary or a line
/// break, which no sensible path has.
fn is_pem_text(value: &str) -> bool {
  value.contains("-----BEGIN") || value.contains('\n') || value.contains('\r')
}

/// A line or more of base64 alone (key material without its PEM armour),
/// not a path: at least a PEM line long, only base64 characters, mixed case
/// and digits, and few slashes (about 1 in 64 in base64, many in a path).
fn is_bare_base64(value: &str) -> bool {
  let has = |f: fn(&u8) -> bool| value.as_bytes().iter().any(f);
  value.len() >= 64
    && value
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    && has(u8::is_ascii_uppercase)
    && has(u8::is_ascii_lowercase)
    && has(u8::is_ascii_digit)
    && value.bytes().filter(|&b| b == b'/').count() < value.len() / 16
}

fn is_path(value: &str) -> bool {
  !is_pem_text(value) && !is_bare_base64(value)
}

/// PEM bytes, and how to name where they came from in a message: a path in
/// quotes, or "the PEM text"/"the Buffer" (never their content).
pub struct Pem {
  pub bytes: Vec<u8>,
  pub shown: String,
}

impl PemSource {
  /// Reads the material (the file, for a path). `field` names the config
  /// field in errors (`listeners[0].tlsKey`).
  pub fn read(&self, field: &str) -> std::result::Result<Pem, StartError> {
    match self {
      PemSource::Bytes(b) => Ok(Pem {
        bytes: b.clone(),
        shown: "the Buffer".into(),
      }),
      PemSource::Text(t) if is_pem_text(t) => Ok(Pem {
        bytes: t.as_bytes().to_vec(),
        shown: "the PEM text".into(),
      }),
      PemSource::Text(t) if is_bare_base64(t) => Err(
        crate::error::invalid_arg(format!(
          "{field}: expected a file path, PEM text or a Buffer, got what looks like base64 without its PEM header line; its content is not shown"
        ))
        .into(),
      ),
      PemSource::Text(path) => read_file(field, path),
    }
  }
}

fn read_file(field: &str, path: &str) -> std::result::Result<Pem, StartError> {
  let cannot =
    |e: std::io::Error| StartError::open(format!("{field}: cannot read \"{path}\": {e}"), &e, path);
  let meta = std::fs::metadata(path).map_err(cannot)?;
  if !meta.is_file() {
    return Err(crate::error::invalid_arg(format!("{field}: \"{path}\" is not a file")).into());
  }
  let bytes = std::fs::read(path).map_err(cannot)?;
  Ok(Pem {
    bytes,
    shown: format!("\"{path}\""),
  })
}

/// Reads a [`PemSource`] from config JSON (`js_value` turns a `Buffer` into
/// an array of bytes). Errors never quote the value.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
  d: D,
) -> std::result::Result<Option<PemSource>, D::Error> {
  struct V;
  impl<'de> Visitor<'de> for V {
    type Value = Option<PemSource>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
      f.write_str("a file path, PEM text or a Buffer")
    }
    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
      Ok(None)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
      Ok(None)
    }
    fn visit_some<D: serde::Deserializer<'de>>(
      self,
      d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
      d.deserialize_any(self)
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
      Ok(Some(PemSource::Text(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
      Ok(Some(PemSource::Text(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(
      self,
      mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
      let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
      while let Some(n) = seq.next_element::<serde_json::Value>()? {
        match n.as_u64() {
          Some(b) if b <= 255 => bytes.push(b as u8),
          _ => {
            return Err(A::Error::custom(
              "expected a file path, PEM text or a Buffer, got an array that is not of bytes",
            ))
          }
        }
      }
      Ok(Some(PemSource::Bytes(bytes)))
    }
  }
  d.deserialize_option(V)
}

impl TypeName for PemSource {
  fn type_name() -> &'static str {
    "string | Buffer | Uint8Array"
  }
  fn value_type() -> ValueType {
    ValueType::Unknown
  }
}

impl ValidateNapiValue for PemSource {}

impl ToNapiValue for PemSource {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
    match val {
      PemSource::Text(t) => unsafe { String::to_napi_value(env, t) },
      PemSource::Bytes(b) => unsafe { Buffer::to_napi_value(env, b.into()) },
    }
  }
}

impl FromNapiValue for PemSource {
  unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
    match unsafe { Either::<String, Buffer>::from_napi_value(env, value) }? {
      Either::A(t) => Ok(PemSource::Text(t)),
      Either::B(b) => Ok(PemSource::Bytes(b.to_vec())),
    }
  }
}
