//! Native password authentication: the password hashes `mosquitto_passwd`
//! writes (`$7$` PBKDF2-HMAC-SHA512, `$6$` salted SHA-512), read from
//! `users` and `passwordFile`, checked on the broker's blocking pool.
//!
//! No error or log line here ever holds a password or a hash: errors name
//! the field (and the file line), never its text.

use std::collections::HashMap;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;
use ring::{digest, pbkdf2, rand::SecureRandom};
use serde::Deserialize;

use crate::error::{failure, invalid_arg};
use crate::js_value::type_name;

/// The PBKDF2 iterations `hashPassword()` uses by default: `mosquitto_passwd`'s.
pub const DEFAULT_ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// One user of `users`.
#[napi(object)]
#[derive(Deserialize, Clone)]
#[serde(
  rename_all = "camelCase",
  deny_unknown_fields,
  expecting = "a user object"
)]
pub struct UserConfig {
  pub username: String,
  /// A hash as `mosquitto_passwd` or `hashPassword()` writes it
  /// (`$7$101$salt$hash`); never the password itself.
  pub password_hash: String,
  /// Skips ACL rules and authorize hooks, as a superuser from
  /// `onClientAuthenticate` does. Default `false`.
  pub superuser: Option<bool>,
}

impl std::fmt::Debug for UserConfig {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("UserConfig")
      .field("username", &self.username)
      .finish_non_exhaustive()
  }
}

/// A parsed password hash.
#[derive(Clone)]
enum Hash {
  Pbkdf2 {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
  },
  Sha512 {
    salt: Vec<u8>,
    hash: Vec<u8>,
  },
}

#[derive(Clone)]
struct Entry {
  hash: Hash,
  superuser: bool,
}

/// The users a broker authenticates natively.
#[derive(Clone, Default)]
pub struct Users {
  by_name: HashMap<String, Entry>,
}

impl std::fmt::Debug for Users {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "Users({})", self.by_name.len())
  }
}

impl Users {
  /// `users` (field path `users`) and then the lines of `passwordFile`; a
  /// name given twice is an error naming both places.
  pub fn load(users: Option<&[UserConfig]>, password_file: Option<&str>) -> Result<Option<Users>> {
    if users.is_none() && password_file.is_none() {
      return Ok(None);
    }
    let mut out = Users::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, u) in users.unwrap_or_default().iter().enumerate() {
      let at = format!("users[{i}]");
      if u.username.is_empty() {
        return Err(invalid_arg(format!("{at}.username: must not be empty")));
      }
      let hash = parse_hash(&u.password_hash)
        .map_err(|why| invalid_arg(format!("{at}.passwordHash: {why}")))?;
      out.add(
        &mut seen,
        &u.username,
        at,
        hash,
        u.superuser.unwrap_or(false),
      )?;
    }
    if let Some(path) = password_file {
      let text = std::fs::read_to_string(path)
        .map_err(|e| invalid_arg(format!("passwordFile: cannot read \"{path}\": {e}")))?;
      for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
          continue;
        }
        let at = format!("passwordFile \"{path}\" line {}", n + 1);
        // The username may not hold ':'; the hash never does.
        let Some((name, hash)) = line.split_once(':') else {
          return Err(invalid_arg(format!(
            "{at}: expected \"username:hash\" as mosquitto_passwd writes"
          )));
        };
        let hash = parse_hash(hash).map_err(|why| invalid_arg(format!("{at}: {why}")))?;
        out.add(&mut seen, name, at, hash, false)?;
      }
    }
    Ok(Some(out))
  }

  fn add(
    &mut self,
    seen: &mut HashMap<String, String>,
    name: &str,
    at: String,
    hash: Hash,
    superuser: bool,
  ) -> Result<()> {
    if let Some(first) = seen.get(name) {
      return Err(invalid_arg(format!(
        "{at}: user \"{name}\" is already defined by {first}"
      )));
    }
    seen.insert(name.to_string(), at);
    self
      .by_name
      .insert(name.to_string(), Entry { hash, superuser });
    Ok(())
  }

  pub fn contains(&self, username: &str) -> bool {
    self.by_name.contains_key(username)
  }

  /// `Some(superuser)` if `password` is the user's; CPU-bound (PBKDF2), so
  /// run it off the broker's async threads.
  pub fn verify(&self, username: &str, password: &[u8]) -> Option<bool> {
    let e = self.by_name.get(username)?;
    let ok = match &e.hash {
      Hash::Pbkdf2 {
        iterations,
        salt,
        hash,
      } => pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA512,
        *iterations,
        salt,
        password,
        hash,
      )
      .is_ok(),
      Hash::Sha512 { salt, hash } => {
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(password);
        ctx.update(salt);
        constant_time_eq(ctx.finish().as_ref(), hash)
      }
    };
    ok.then_some(e.superuser)
  }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
  a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `$7$iterations$salt$hash` or `$6$salt$hash` (base64); the error
/// says what is wrong without echoing the text.
fn parse_hash(s: &str) -> std::result::Result<Hash, String> {
  let b64 = |what: &str, v: &str| {
    STANDARD
      .decode(v)
      .map_err(|_| format!("the {what} is not valid base64"))
  };
  let fields: Vec<&str> = s.split('$').collect();
  match fields.as_slice() {
    ["", "7", iterations, salt, hash] => {
      let iterations = iterations
        .parse::<u32>()
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or("the iteration count of a $7$ hash must be a positive integer")?;
      let hash = b64("hash", hash)?;
      if hash.len() != HASH_LEN {
        return Err(format!("a $7$ hash must be {HASH_LEN} bytes"));
      }
      Ok(Hash::Pbkdf2 {
        iterations,
        salt: b64("salt", salt)?,
        hash,
      })
    }
    ["", "6", salt, hash] => {
      let hash = b64("hash", hash)?;
      if hash.len() != HASH_LEN {
        return Err(format!("a $6$ hash must be {HASH_LEN} bytes"));
      }
      Ok(Hash::Sha512 {
        salt: b64("salt", salt)?,
        hash,
      })
    }
    _ => Err(
      "expected a mosquitto_passwd hash ($7$iterations$salt$hash or $6$salt$hash); \
       use hashPassword() or `embedded-mqtt-broker passwd` to make one"
        .into(),
    ),
  }
}

/// Options of `hashPassword()`.
// Used from JavaScript only; the unit-test build has no napi registration.
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct HashPasswordOptions {
  /// PBKDF2 iterations, 1 to 10000000. Default 101, as `mosquitto_passwd`:
  /// more makes a stolen file slower to crack and each CONNECT slower to check.
  pub iterations: Option<f64>,
}

/// A `$7$` (PBKDF2-HMAC-SHA512) hash of `password` for `users[].passwordHash`
/// or a password file line (`username:hash`), as `mosquitto_passwd` makes.
/// Computed off the event loop. Errors never contain the password.
#[cfg_attr(test, allow(dead_code))]
#[napi(
  ts_args_type = "password: string, options?: HashPasswordOptions",
  ts_return_type = "Promise<string>"
)]
pub fn hash_password(
  env: Env,
  password: Unknown,
  options: Option<HashPasswordOptions>,
) -> Result<AsyncBlock<String>> {
  let t = password.get_type()?;
  if t != ValueType::String {
    return Err(invalid_arg(format!(
      "password: expected a string, got {}",
      type_name(t)
    )));
  }
  let password: String = unsafe { password.cast::<String>()? };
  let iterations = match options.and_then(|o| o.iterations) {
    None => DEFAULT_ITERATIONS,
    Some(n) if n.is_finite() && n.fract() == 0.0 && (1.0..=10_000_000.0).contains(&n) => n as u32,
    Some(n) => {
      return Err(invalid_arg(format!(
        "options.iterations: must be an integer from 1 to 10000000, got {n}"
      )))
    }
  };
  let iterations =
    NonZeroU32::new(iterations).ok_or_else(|| invalid_arg("options.iterations: must not be 0"))?;
  AsyncBlockBuilder::new(async move {
    tokio::task::spawn_blocking(move || make_hash(password.as_bytes(), iterations))
      .await
      .map_err(|_| failure("hashPassword: the hashing task failed"))?
      .map_err(failure)
  })
  .build(&env)
}

/// A new `$7$` hash of `password` with a random salt.
pub fn make_hash(password: &[u8], iterations: NonZeroU32) -> std::result::Result<String, String> {
  let mut salt = [0u8; SALT_LEN];
  ring::rand::SystemRandom::new()
    .fill(&mut salt)
    .map_err(|_| "the system random generator failed".to_string())?;
  let mut hash = [0u8; HASH_LEN];
  pbkdf2::derive(
    pbkdf2::PBKDF2_HMAC_SHA512,
    iterations,
    &salt,
    password,
    &mut hash,
  );
  Ok(format!(
    "$7${iterations}${}${}",
    STANDARD.encode(salt),
    STANDARD.encode(hash)
  ))
}

#[cfg(test)]
mod tests {
  use super::*;

  const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/__test__/fixtures/mosquitto-passwd.txt"
  );

  #[test]
  fn reads_a_file_mosquitto_passwd_wrote() {
    let users = Users::load(None, Some(FIXTURE))
      .expect("load")
      .expect("some");
    assert_eq!(users.verify("alice", b"alice pass"), Some(false));
    assert_eq!(users.verify("alice", b"alice pas"), None);
    assert_eq!(users.verify("olduser", b"old pass"), Some(false));
    assert_eq!(
      users.verify("\u{fc}n\u{ef}", "p@ss:w\u{f6}rd".as_bytes()),
      Some(false)
    );
    assert_eq!(users.verify("nobody", b""), None);
  }

  #[test]
  fn a_made_hash_verifies() {
    let h = make_hash(b"pw", NonZeroU32::new(DEFAULT_ITERATIONS).expect("nz")).expect("hash");
    assert!(h.starts_with("$7$101$"), "{h}");
    let users = Users::load(
      Some(&[UserConfig {
        username: "u".into(),
        password_hash: h,
        superuser: Some(true),
      }]),
      None,
    )
    .expect("load")
    .expect("some");
    assert_eq!(users.verify("u", b"pw"), Some(true));
    assert_eq!(users.verify("u", b"pW"), None);
  }

  #[test]
  fn errors_never_hold_the_hash() {
    let secret = "$7$101$c2FsdA==$notbase64!!";
    let Err(e) = Users::load(
      Some(&[UserConfig {
        username: "u".into(),
        password_hash: secret.into(),
        superuser: None,
      }]),
      None,
    ) else {
      panic!("accepted")
    };
    assert!(
      e.reason.starts_with("users[0].passwordHash: "),
      "{}",
      e.reason
    );
    assert!(!e.reason.contains("notbase64"), "{}", e.reason);
  }
}
