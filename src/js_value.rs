//! Reading plain JavaScript data (config objects, options) into JSON, with
//! errors that name the field.
//!
//! napi's own conversion fails on `NaN`, `Infinity` or a BigInt with a
//! message that has no field path; this walk reports
//! `listeners[0].port: must be a finite number, got NaN` instead. `undefined`
//! properties are skipped, as `JSON.stringify` does.

use napi::bindgen_prelude::*;
use napi::{JsValue, ValueType};
use serde_json::{Map, Number, Value};

use crate::error::invalid_arg;

/// Converts `value`, found at `path` (e.g. `"config"`), to JSON.
pub fn to_json(value: &Unknown, path: &str) -> Result<Value> {
  match value.get_type()? {
    ValueType::Undefined | ValueType::Null => Ok(Value::Null),
    ValueType::Boolean => Ok(Value::Bool(unsafe { value.cast::<bool>()? })),
    ValueType::String => Ok(Value::String(unsafe { value.cast::<String>()? })),
    ValueType::Number => {
      let n = unsafe { value.cast::<f64>()? };
      // Integers stay integers, so messages say "integer `5`", not "floating point `5`".
      if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::Number(Number::from(n as i64)));
      }
      Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| invalid_arg(format!("{path}: must be a finite number, got {n}")))
    }
    // Bytes (TLS material): an array of numbers, read by `tls_source`.
    ValueType::Object if value.is_buffer()? || value.is_typedarray()? => {
      let bytes: Uint8Array = unsafe { value.cast() }.map_err(|_| {
        invalid_arg(format!(
          "{path}: expected a Buffer or Uint8Array, got another typed array"
        ))
      })?;
      Ok(Value::Array(
        bytes.iter().map(|&b| Value::from(b)).collect(),
      ))
    }
    ValueType::Object if value.is_array()? => {
      let array: Array = unsafe { value.cast()? };
      (0..array.len())
        .map(|i| {
          let item: Unknown = array
            .get(i)?
            .unwrap_or_else(|| unreachable!("index below length"));
          to_json(&item, &format!("{path}[{i}]"))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
    }
    ValueType::Object => {
      fields_to_json(&unsafe { value.cast()? }, path, |_| true).map(Value::Object)
    }
    other => Err(invalid_arg(format!(
      "{path}: expected plain data, got {}",
      type_name(other)
    ))),
  }
}

/// The fields of `object` (at `path`) that `keep` names, as JSON.
pub fn fields_to_json(
  object: &Object,
  path: &str,
  keep: impl Fn(&str) -> bool,
) -> Result<Map<String, Value>> {
  let keys = object.get_property_names()?;
  let mut map = Map::new();
  for i in 0..keys.get_array_length()? {
    let key: String = keys.get_element(i)?;
    if !keep(&key) {
      continue;
    }
    let item: Unknown = object.get_named_property(&key)?;
    if item.get_type()? == ValueType::Undefined {
      continue;
    }
    let field = if path.is_empty() {
      key.clone()
    } else {
      format!("{path}.{key}")
    };
    map.insert(key, to_json(&item, &field)?);
  }
  Ok(map)
}

/// An optional options object: `None` for absent, `undefined` or `null`;
/// anything but a plain object is an error naming `path`.
pub fn options_object<'a>(o: Option<Unknown<'a>>, path: &str) -> Result<Option<Object<'a>>> {
  let Some(o) = o else {
    return Ok(None);
  };
  match o.get_type()? {
    ValueType::Undefined | ValueType::Null => Ok(None),
    ValueType::Object if !o.is_array()? => Ok(Some(unsafe { o.cast()? })),
    other => Err(invalid_arg(format!(
      "{path}: expected an object, got {}",
      if other == ValueType::Object {
        "an array"
      } else {
        type_name(other)
      }
    ))),
  }
}

/// "a string", "a bigint"... for messages.
pub fn type_name(t: ValueType) -> &'static str {
  match t {
    ValueType::Undefined => "undefined",
    ValueType::Null => "null",
    ValueType::Boolean => "a boolean",
    ValueType::Number => "a number",
    ValueType::String => "a string",
    ValueType::Symbol => "a symbol",
    ValueType::Object => "an object",
    ValueType::Function => "a function",
    ValueType::BigInt => "a bigint",
    _ => "an unsupported value",
  }
}
