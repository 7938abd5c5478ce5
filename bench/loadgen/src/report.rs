//! The one-line JSON result, written without a JSON library.

use std::fmt::{Display, Write};

#[derive(Default)]
pub struct Json {
  out: String,
}

impl Json {
  pub fn new() -> Self {
    Self::default()
  }

  fn key(&mut self, k: &str) {
    self.out.push(if self.out.is_empty() { '{' } else { ',' });
    let _ = write!(self.out, "\"{k}\":");
  }

  pub fn num(mut self, k: &str, v: impl Display) -> Self {
    self.key(k);
    let _ = write!(self.out, "{v}");
    self
  }

  /// A float rounded to 3 decimals (JSON has no NaN or infinity: those become null).
  pub fn float(mut self, k: &str, v: f64) -> Self {
    self.key(k);
    if v.is_finite() {
      let _ = write!(self.out, "{:.3}", v);
    } else {
      self.out.push_str("null");
    }
    self
  }

  pub fn bool(self, k: &str, v: bool) -> Self {
    self.num(k, v)
  }

  pub fn str(mut self, k: &str, v: &str) -> Self {
    self.key(k);
    self.out.push('"');
    for c in v.chars() {
      match c {
        '"' => self.out.push_str("\\\""),
        '\\' => self.out.push_str("\\\\"),
        c if (c as u32) < 0x20 => {
          let _ = write!(self.out, "\\u{:04x}", c as u32);
        }
        c => self.out.push(c),
      }
    }
    self.out.push('"');
    self
  }

  pub fn obj(mut self, k: &str, v: Json) -> Self {
    self.key(k);
    self.out.push_str(&v.finish());
    self
  }

  pub fn finish(mut self) -> String {
    if self.out.is_empty() {
      self.out.push('{');
    }
    self.out.push('}');
    self.out
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn renders() {
    let j = Json::new()
      .num("a", 1)
      .str("s", "q\"\n")
      .obj("o", Json::new().float("f", 0.5))
      .finish();
    assert_eq!(j, r#"{"a":1,"s":"q\"\u000a","o":{"f":0.500}}"#);
  }
}
