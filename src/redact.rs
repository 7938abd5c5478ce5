//! A last guard against secrets in error messages: a PEM block, or a run of
//! base64 long enough to be key material, is cut out of every message
//! `error.rs` builds. Messages should never quote such values in the first
//! place (see `tls_source.rs`); this catches a value echoed by a path that
//! did not expect one (a PEM key given as `address`, or as a field name).

use std::borrow::Cow;

/// Shortest base64 run treated as material: one PEM line.
const MIN_RUN: usize = 64;
const SHOWN: &str = "<redacted>";

pub fn redact(message: &str) -> Cow<'_, str> {
  match url_credentials(message) {
    Cow::Borrowed(m) => key_material(m),
    Cow::Owned(m) => Cow::Owned(key_material(&m).into_owned()),
  }
}

/// The user and password of every URL (`redis://user:password@host`) cut
/// out: a library may log the URL it was given.
fn url_credentials(message: &str) -> Cow<'_, str> {
  if !message.contains("://") || !message.contains('@') {
    return Cow::Borrowed(message);
  }
  let mut out = String::with_capacity(message.len());
  let mut rest = message;
  while let Some(at) = rest.find("://") {
    let (head, tail) = rest.split_at(at + 3);
    out.push_str(head);
    let end = tail
      .find(|c: char| c.is_whitespace() || "/?#\"'`<>(),;[]{}".contains(c))
      .unwrap_or(tail.len());
    match tail[..end].rfind('@') {
      Some(user_end) => {
        out.push_str(SHOWN);
        rest = &tail[user_end..];
      }
      None => rest = tail,
    }
  }
  out.push_str(rest);
  Cow::Owned(out)
}

fn key_material(message: &str) -> Cow<'_, str> {
  if !message.contains("-----BEGIN") && longest_base64_run(message) < MIN_RUN {
    return Cow::Borrowed(message);
  }
  let mut out = String::with_capacity(message.len());
  let mut rest = message;
  // PEM blocks first: everything from a BEGIN line to its END line (or to
  // the end of the message when the block was cut short).
  while let Some(begin) = rest.find("-----BEGIN") {
    out.push_str(&rest[..begin]);
    out.push_str(SHOWN);
    let after = &rest[begin..];
    rest = match after.find("-----END") {
      Some(end) => {
        let tail = &after[end + "-----END".len()..];
        match tail.find("-----") {
          Some(close) => &tail[close + "-----".len()..],
          None => "",
        }
      }
      None => "",
    };
  }
  out.push_str(rest);
  Cow::Owned(redact_runs(&out))
}

fn is_base64(c: char) -> bool {
  c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='
}

fn longest_base64_run(s: &str) -> usize {
  s.split(|c: char| !is_base64(c))
    .map(str::len)
    .max()
    .unwrap_or(0)
}

/// Replaces each long base64 run that mixes upper case, lower case and
/// digits (so a long word or path is left alone).
fn redact_runs(s: &str) -> String {
  let mut out = String::with_capacity(s.len());
  let mut run = String::new();
  let flush = |run: &mut String, out: &mut String| {
    let material = run.len() >= MIN_RUN
      && run.chars().any(|c| c.is_ascii_uppercase())
      && run.chars().any(|c| c.is_ascii_lowercase())
      && run.chars().any(|c| c.is_ascii_digit());
    out.push_str(if material { SHOWN } else { run });
    run.clear();
  };
  for c in s.chars() {
    if is_base64(c) {
      run.push(c);
    } else {
      flush(&mut run, &mut out);
      out.push(c);
    }
  }
  flush(&mut run, &mut out);
  out
}

#[cfg(test)]
mod tests {
  use super::redact;

  #[test]
  fn cuts_pem_blocks_and_base64_runs() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    assert_eq!(redact(&format!("a: \"{key}\" b")), "a: \"<redacted>\n\" b");
    assert_eq!(redact("x: -----BEGIN KEY-----\nMIG"), "x: <redacted>");
    let run = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgabcdefghijklmnopqrstuvwxyz";
    assert_eq!(
      redact(&format!("path \"{run}\" missing")),
      "path \"<redacted>\" missing"
    );
    let ordinary =
      "listeners[0].tlsCert: cannot read \"/srv/mqtt/certificates/server-certificate-chain.pem\"";
    assert_eq!(redact(ordinary), ordinary);
  }

  #[test]
  fn cuts_credentials_out_of_urls() {
    assert_eq!(
      redact("RedisConfig { url: \"redis://:s3cret@127.0.0.1:6379/0\", prefix: \"mqtt\" }"),
      "RedisConfig { url: \"redis://<redacted>@127.0.0.1:6379/0\", prefix: \"mqtt\" }"
    );
    assert_eq!(
      redact("a redis://u:p@h b rediss://x@y:1"),
      "a redis://<redacted>@h b rediss://<redacted>@y:1"
    );
    let ordinary =
      "storage.redis: cannot reach Redis at redis://127.0.0.1:6379/0: refused; mail a@b";
    assert_eq!(redact(ordinary), ordinary);
  }
}
