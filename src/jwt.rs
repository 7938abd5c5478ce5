//! JWT authentication: a client sends a JSON Web Token as its CONNECT
//! password; HS256 (shared secret), RS256 and ES256 (PEM public key) are
//! verified with ring, already built for rustls (no JWT crate needed for
//! three algorithms: header, base64url, signature, `exp`/`nbf`).
//!
//! Claims map to the username (`usernameClaim`, default `sub`, must equal
//! the CONNECT username) and, optionally, to ACL rules for that connection
//! (`aclClaim`), checked before `acl`. No error or log line holds the token.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use napi::Result;
use napi_derive::napi;
use ring::{hmac, signature};
use serde::Deserialize;
use x509_parser::prelude::FromDer;

use crate::acl::{AclRule, Rules};
use crate::error::invalid_arg;

/// `jwt` of `start()`.
#[napi(object)]
#[derive(Deserialize, Clone)]
#[serde(
  rename_all = "camelCase",
  deny_unknown_fields,
  expecting = "a jwt object"
)]
pub struct JwtConfig {
  /// HS256 key (the shared secret's UTF-8 bytes).
  pub secret: Option<String>,
  /// Path of a PEM public key (`-----BEGIN PUBLIC KEY-----`): RSA for
  /// RS256, P-256 for ES256.
  pub public_key: Option<String>,
  /// The claim that must equal the CONNECT username. Default `"sub"`.
  pub username_claim: Option<String>,
  /// A claim holding ACL rules (as `acl`) for this connection, checked
  /// before `acl`. Default: none.
  pub acl_claim: Option<String>,
  /// Close the connection when the token's `exp` passes. Default `false`
  /// (only checked at CONNECT).
  pub disconnect_on_expiry: Option<bool>,
}

impl std::fmt::Debug for JwtConfig {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("JwtConfig").finish_non_exhaustive()
  }
}

#[derive(Clone)]
enum Key {
  Hs256(hmac::Key),
  Rs256(Vec<u8>),
  Es256(Vec<u8>),
}

/// A validated `jwt` config.
#[derive(Clone)]
pub struct Jwt {
  keys: Vec<Key>,
  username_claim: String,
  acl_claim: Option<String>,
  pub disconnect_on_expiry: bool,
}

impl std::fmt::Debug for Jwt {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Jwt").finish_non_exhaustive()
  }
}

/// What a valid token says.
pub struct Claims {
  /// Seconds since the epoch, if the token expires.
  pub exp: Option<u64>,
  /// The connection's own rules, from `aclClaim`.
  pub acl: Option<Rules>,
}

impl Jwt {
  pub fn parse(c: &JwtConfig) -> Result<Jwt> {
    let mut keys = Vec::new();
    if let Some(secret) = &c.secret {
      if secret.len() < 32 {
        return Err(invalid_arg(
          "jwt.secret: must be at least 32 bytes (HS256 needs a 256-bit key)",
        ));
      }
      keys.push(Key::Hs256(hmac::Key::new(
        hmac::HMAC_SHA256,
        secret.as_bytes(),
      )));
    }
    if let Some(path) = &c.public_key {
      keys.push(public_key(path)?);
    }
    if keys.is_empty() {
      return Err(invalid_arg(
        "jwt: give secret (HS256) or publicKey (RS256/ES256)",
      ));
    }
    let username_claim = c.username_claim.clone().unwrap_or_else(|| "sub".into());
    if username_claim.is_empty() {
      return Err(invalid_arg("jwt.usernameClaim: must not be empty"));
    }
    Ok(Jwt {
      keys,
      username_claim,
      acl_claim: c.acl_claim.clone(),
      disconnect_on_expiry: c.disconnect_on_expiry.unwrap_or(false),
    })
  }

  pub fn has_acl_claim(&self) -> bool {
    self.acl_claim.is_some()
  }

  /// Whether `password` has a JWT's shape (three base64url parts): only
  /// those are this module's to accept or refuse.
  pub fn looks_like_token(password: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(password) else {
      return false;
    };
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
      && parts.iter().all(|p| {
        !p.is_empty()
          && p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
      })
  }

  /// Verifies `token` for `username`; the error says why without quoting it.
  pub fn verify(
    &self,
    token: &[u8],
    username: Option<&str>,
  ) -> std::result::Result<Claims, String> {
    let token = std::str::from_utf8(token).map_err(|_| "not UTF-8")?;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
      (parts.next(), parts.next(), parts.next(), parts.next())
    else {
      return Err("not a JWT".into());
    };
    let b64 = |what: &str, v: &str| {
      URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|_| format!("bad base64url in the {what}"))
    };
    let header: serde_json::Value =
      serde_json::from_slice(&b64("header", h)?).map_err(|_| "the header is not JSON")?;
    let sig = b64("signature", sig)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    let ok = self.keys.iter().any(|k| match (k, alg) {
      (Key::Hs256(key), "HS256") => hmac::verify(key, signed, &sig).is_ok(),
      (Key::Rs256(der), "RS256") => {
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
          .verify(signed, &sig)
          .is_ok()
      }
      (Key::Es256(point), "ES256") => {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
          .verify(signed, &sig)
          .is_ok()
      }
      _ => false,
    });
    if !ok {
      return Err(format!("bad signature or algorithm {alg:?} not configured"));
    }
    let claims: serde_json::Value =
      serde_json::from_slice(&b64("payload", p)?).map_err(|_| "the payload is not JSON")?;
    let now = SystemTime::now()
      .duration_since(UNIX_EPOCH)
      .map_or(0, |d| d.as_secs());
    let time = |name: &str| -> std::result::Result<Option<u64>, String> {
      match claims.get(name) {
        None => Ok(None),
        Some(v) => v
          .as_f64()
          .filter(|t| t.is_finite() && *t >= 0.0)
          .map(|t| Some(t as u64))
          .ok_or_else(|| format!("claim {name} is not a number")),
      }
    };
    let exp = time("exp")?;
    if exp.is_some_and(|exp| now >= exp) {
      return Err("expired".into());
    }
    if time("nbf")?.is_some_and(|nbf| now < nbf) {
      return Err("not valid yet (nbf)".into());
    }
    let claimed = claims.get(&self.username_claim).and_then(|v| v.as_str());
    if claimed.is_none() || claimed != username {
      return Err(format!(
        "claim {} does not match the username",
        self.username_claim
      ));
    }
    let acl = match self
      .acl_claim
      .as_deref()
      .and_then(|c| claims.get(c).map(|v| (c, v)))
    {
      None => None,
      Some((name, v)) => {
        let rules: Vec<AclRule> =
          crate::config::from_json(v.clone(), &format!("claim {name}")).map_err(|e| e.reason)?;
        // Unmatched requests fall through to `acl`.
        Some(Rules::parse(&rules, &format!("claim {name}")).map_err(|e| e.reason)?)
      }
    };
    Ok(Claims { exp, acl })
  }
}

/// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) into ring's form: the
/// PKCS#1 key of an RSA key, the uncompressed point of a P-256 key.
fn public_key(path: &str) -> Result<Key> {
  let field = "jwt.publicKey";
  let pem = std::fs::read(path)
    .map_err(|e| invalid_arg(format!("{field}: cannot read \"{path}\": {e}")))?;
  let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
    .map_err(|_| invalid_arg(format!("{field}: \"{path}\" is not a PEM file")))?;
  if pem.label != "PUBLIC KEY" {
    return Err(invalid_arg(format!(
      "{field}: expected a \"PUBLIC KEY\" PEM block, got \"{}\"",
      pem.label
    )));
  }
  let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents)
    .map_err(|_| invalid_arg(format!("{field}: the key in \"{path}\" cannot be parsed")))?;
  let key = spki.subject_public_key.data.to_vec();
  match spki.algorithm.algorithm.to_id_string().as_str() {
    "1.2.840.113549.1.1.1" => Ok(Key::Rs256(key)),
    "1.2.840.10045.2.1" => Ok(Key::Es256(key)),
    other => Err(invalid_arg(format!(
      "{field}: unsupported key type {other}; expected RSA (RS256) or EC P-256 (ES256)"
    ))),
  }
}
