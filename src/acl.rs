//! Native ACL rules: their config type, validation (with field paths) and
//! evaluation, run on the broker's threads without a JavaScript round trip.
//!
//! Rules are checked in order; the first whose action, client conditions
//! and topics match decides. An allow rule must cover the whole requested
//! filter (`a/+` allows subscribing to `a/b` and `a/+`, not to `a/#`); a
//! deny rule matches any filter that overlaps it (`deny a/secret` refuses a
//! subscription to `a/#`), so a wildcard never slips past a deny.
//!
//! `%u` / `%c` in a topic level stand for the client's username / client id,
//! compared as literal text: a value holding `/`, `+` or `#` never widens a
//! rule, and a rule with `%u` never matches a client without a username.

use std::collections::HashMap;
use std::net::IpAddr;

use napi::Result;
use napi_derive::napi;
use serde::Deserialize;

use crate::error::invalid_arg;

/// One ACL rule of `acl` / `setAcl()`.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(
  rename_all = "camelCase",
  deny_unknown_fields,
  expecting = "an ACL rule object"
)]
pub struct AclRule {
  /// What a matching rule decides.
  #[napi(ts_type = "'allow' | 'deny'")]
  pub permission: String,
  /// Which requests the rule is about.
  #[napi(ts_type = "'publish' | 'subscribe' | 'all'")]
  pub action: String,
  /// Topic filters (`+`, `#`, `%u` = username, `%c` = client id); at least one.
  pub topics: Vec<String>,
  /// Only for clients connected with this username.
  pub username: Option<String>,
  /// Only for the client with this client id.
  pub client_id: Option<String>,
  /// Only for clients connecting from this address or CIDR block
  /// (`"10.0.0.0/8"`, `"::1"`).
  pub ip_address: Option<String>,
}

/// What a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
  Publish,
  Subscribe,
}

/// Who asks: the fields rules can condition on.
pub struct Who<'a> {
  pub username: Option<&'a str>,
  pub client_id: &'a str,
  pub ip: Option<IpAddr>,
}

/// A validated rule list.
#[derive(Clone, Debug)]
pub struct Rules {
  rules: Vec<Rule>,
  /// Which rules can match a request, by the request's first level: a
  /// request names one first level, and a rule whose filters all start with
  /// other literals cannot match it, so most requests walk a few rules, not
  /// all (100 rules on distinct prefixes: 19.6% of the broker's CPU in
  /// `decide` before it).
  by_first: HashMap<String, Vec<u32>>,
  /// The rules that can match any first level (a filter starting with `+`,
  /// `#` or a `%u` / `%c` pattern): the candidates for a first level no
  /// rule names.
  any_first: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Rule {
  allow: bool,
  publish: bool,
  subscribe: bool,
  filters: Vec<Vec<Level>>,
  username: Option<String>,
  client_id: Option<String>,
  net: Option<(IpAddr, u8)>,
}

#[derive(Clone, Debug)]
enum Level {
  Literal(String),
  Plus,
  Hash,
  Pattern(Vec<Part>),
}

#[derive(Clone, Debug)]
enum Part {
  Literal(String),
  Username,
  ClientId,
}

/// `aclDefault`: whether a request no rule matches is allowed (default deny).
pub fn parse_default(value: Option<&str>, field: &str) -> Result<bool> {
  match value {
    None | Some("deny") => Ok(false),
    Some("allow") => Ok(true),
    Some(other) => Err(invalid_arg(format!(
      "{field}: expected \"allow\" or \"deny\", got \"{other}\""
    ))),
  }
}

impl Rules {
  /// Validates `rules`; `at` is the field path of the list (`acl`).
  pub fn parse(rules: &[AclRule], at: &str) -> Result<Rules> {
    let rules = rules
      .iter()
      .enumerate()
      .map(|(i, r)| Rule::parse(r, &format!("{at}[{i}]")))
      .collect::<Result<Vec<Rule>>>()?;
    let mut by_first: HashMap<String, Vec<u32>> = HashMap::new();
    let mut any_first = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
      let i = i as u32;
      if rule
        .filters
        .iter()
        .any(|f| !matches!(f[0], Level::Literal(_)))
      {
        any_first.push(i);
      }
      for f in &rule.filters {
        if let Level::Literal(first) = &f[0] {
          by_first.entry(first.clone()).or_default().push(i);
        }
      }
    }
    // A literal's candidates also include every rule of `any_first`, in
    // rule order (first match wins).
    for list in by_first.values_mut() {
      list.extend_from_slice(&any_first);
      list.sort_unstable();
      list.dedup();
    }
    Ok(Rules {
      rules,
      by_first,
      any_first,
    })
  }

  /// The first matching rule's answer (`true` = allow), if one matches.
  /// `request` is a topic name (publish) or a topic filter (subscribe).
  pub fn decide(&self, action: Action, who: &Who, request: &str) -> Option<bool> {
    with_levels(request, |levels| {
      let hit = |r: &&Rule| {
        r.applies(action, who) && r.filters.iter().any(|f| matches(f, levels, who, r.allow))
      };
      match levels[0] {
        // A wildcard first level can meet any rule.
        "+" | "#" => self.rules.iter().find(hit),
        first => self
          .by_first
          .get(first)
          .unwrap_or(&self.any_first)
          .iter()
          .map(|&i| &self.rules[i as usize])
          .find(hit),
      }
      .map(|r| r.allow)
    })
  }
}

/// Calls `f` with the levels of `topic`, kept on the stack for the usual
/// depths (no allocation per request).
fn with_levels<R>(topic: &str, f: impl FnOnce(&[&str]) -> R) -> R {
  let mut stack = [""; 16];
  let mut n = 0;
  for level in topic.split('/') {
    if n == stack.len() {
      return f(&topic.split('/').collect::<Vec<_>>());
    }
    stack[n] = level;
    n += 1;
  }
  f(&stack[..n])
}

impl Rule {
  fn parse(r: &AclRule, at: &str) -> Result<Rule> {
    let allow = match r.permission.as_str() {
      "allow" => true,
      "deny" => false,
      other => {
        return Err(invalid_arg(format!(
          "{at}.permission: expected \"allow\" or \"deny\", got \"{other}\""
        )))
      }
    };
    let (publish, subscribe) = match r.action.as_str() {
      "publish" => (true, false),
      "subscribe" => (false, true),
      "all" => (true, true),
      other => {
        return Err(invalid_arg(format!(
          "{at}.action: expected \"publish\", \"subscribe\" or \"all\", got \"{other}\""
        )))
      }
    };
    if r.topics.is_empty() {
      return Err(invalid_arg(format!(
        "{at}.topics: give at least one topic filter (\"#\" for every topic)"
      )));
    }
    let filters = r
      .topics
      .iter()
      .enumerate()
      .map(|(i, t)| filter(t).map_err(|why| invalid_arg(format!("{at}.topics[{i}]: {why}"))))
      .collect::<Result<_>>()?;
    for (name, value) in [("username", &r.username), ("clientId", &r.client_id)] {
      if value.as_deref() == Some("") {
        return Err(invalid_arg(format!(
          "{at}.{name}: must not be empty (leave it out to match every client)"
        )));
      }
    }
    let net = r
      .ip_address
      .as_deref()
      .map(|s| cidr(s).map_err(|why| invalid_arg(format!("{at}.ipAddress: {why}"))))
      .transpose()?;
    Ok(Rule {
      allow,
      publish,
      subscribe,
      filters,
      username: r.username.clone(),
      client_id: r.client_id.clone(),
      net,
    })
  }

  fn applies(&self, action: Action, who: &Who) -> bool {
    let action = match action {
      Action::Publish => self.publish,
      Action::Subscribe => self.subscribe,
    };
    action
      && self
        .username
        .as_deref()
        .is_none_or(|u| who.username == Some(u))
      && self.client_id.as_deref().is_none_or(|c| who.client_id == c)
      && self
        .net
        .is_none_or(|(net, bits)| who.ip.is_some_and(|ip| in_net(ip, net, bits)))
  }
}

/// Parses a topic filter of a rule, or says what is wrong with it.
fn filter(t: &str) -> std::result::Result<Vec<Level>, String> {
  if t.is_empty() {
    return Err("must not be empty".into());
  }
  if t.len() > 65535 {
    return Err("longer than 65535 bytes".into());
  }
  if t.contains('\0') {
    return Err("must not contain U+0000".into());
  }
  let parts: Vec<&str> = t.split('/').collect();
  let last = parts.len() - 1;
  parts
    .iter()
    .enumerate()
    .map(|(i, l)| match *l {
      "#" if i == last => Ok(Level::Hash),
      "#" => Err(format!("\"{t}\": '#' must be the last level")),
      "+" => Ok(Level::Plus),
      l if l.contains(['+', '#']) => Err(format!("\"{t}\": '+' and '#' must fill a whole level")),
      l if l.contains("%u") || l.contains("%c") => Ok(Level::Pattern(pattern(l))),
      l => Ok(Level::Literal(l.to_string())),
    })
    .collect()
}

fn pattern(level: &str) -> Vec<Part> {
  let mut parts = Vec::new();
  let mut rest = level;
  while let Some(i) = rest.find(['%']) {
    let (head, tail) = rest.split_at(i);
    let part = match tail.get(..2) {
      Some("%u") => Some(Part::Username),
      Some("%c") => Some(Part::ClientId),
      _ => None,
    };
    match part {
      Some(p) => {
        if !head.is_empty() {
          parts.push(Part::Literal(head.to_string()));
        }
        parts.push(p);
        rest = &tail[2..];
      }
      None => {
        parts.push(Part::Literal(rest[..i + 1].to_string()));
        rest = &tail[1..];
      }
    }
  }
  if !rest.is_empty() {
    parts.push(Part::Literal(rest.to_string()));
  }
  parts
}

/// Whether `level` (a topic level, no wildcard) is the pattern with the
/// client's values put in, compared without building the string.
fn pattern_is(parts: &[Part], mut level: &str, who: &Who) -> bool {
  for p in parts {
    let text = match p {
      Part::Literal(s) => s.as_str(),
      Part::Username => match who.username {
        Some(u) => u,
        None => return false,
      },
      Part::ClientId => who.client_id,
    };
    match level.strip_prefix(text) {
      Some(rest) => level = rest,
      None => return false,
    }
  }
  level.is_empty()
}

/// Whether a rule filter matches a request. `cover`: every topic the request
/// can name must match the rule (allow rules); otherwise one topic in common
/// is enough (deny rules). A first-level wildcard on either side never meets
/// a `$` topic (MQTT 4.7.2).
fn matches(rule: &[Level], req: &[&str], who: &Who, cover: bool) -> bool {
  let dollar = |i: usize, s: &str| i == 0 && s.starts_with('$');
  for (i, r) in req.iter().enumerate() {
    let Some(l) = rule.get(i) else {
      // The rule is shorter: only a request ending in `#` (which also means
      // its parent) can share a topic with it.
      return !cover && *r == "#" && i > 0;
    };
    let rule_dollar = matches!(l, Level::Literal(s) if dollar(i, s));
    match (l, *r) {
      (Level::Hash, r) => return !dollar(i, r),
      (_, "#") => return !cover && !rule_dollar,
      (Level::Plus, "+") => {}
      (_, "+") => {
        if cover || rule_dollar {
          return false;
        }
      }
      (Level::Plus, r) => {
        if dollar(i, r) {
          return false;
        }
      }
      (Level::Literal(s), r) => {
        if s != r {
          return false;
        }
      }
      (Level::Pattern(p), r) => {
        if !pattern_is(p, r, who) {
          return false;
        }
      }
    }
  }
  // The request is used up: the rule matches if it is too, or if all it has
  // left is `#` (`a/#` matches `a`).
  matches!(&rule[req.len()..], [] | [Level::Hash])
}

/// `"10.0.0.0/8"`, `"::1"`, `"192.168.1.7"`: network and prefix length.
fn cidr(s: &str) -> std::result::Result<(IpAddr, u8), String> {
  let (addr, bits) = match s.split_once('/') {
    Some((a, b)) => (a, Some(b)),
    None => (s, None),
  };
  let ip: IpAddr = addr
    .parse()
    .map_err(|_| format!("\"{s}\" is not an IP address or CIDR block"))?;
  let ip = canonical(ip);
  let max = if ip.is_ipv4() { 32 } else { 128 };
  let bits = match bits {
    None => max,
    Some(b) => match b.parse::<u8>() {
      Ok(n) if n <= max => n,
      _ => {
        return Err(format!(
          "\"{s}\": the prefix length must be an integer from 0 to {max}"
        ))
      }
    },
  };
  Ok((ip, bits))
}

/// An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
  match ip {
    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
    v4 => v4,
  }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
  let prefix = |a: u128, b: u128, width: u32| {
    let shift = width - bits as u32;
    bits == 0 || (a >> shift) == (b >> shift)
  };
  match (canonical(ip), net) {
    (IpAddr::V4(a), IpAddr::V4(b)) => prefix(u32::from(a) as u128, u32::from(b) as u128, 32),
    (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), u128::from(b), 128),
    _ => false,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn rules(list: serde_json::Value) -> Rules {
    let list: Vec<AclRule> = serde_json::from_value(list).expect("rules");
    Rules::parse(&list, "acl").expect("valid")
  }

  fn who<'a>(username: Option<&'a str>, client_id: &'a str, ip: &str) -> Who<'a> {
    Who {
      username,
      client_id,
      ip: Some(ip.parse().expect("ip")),
    }
  }

  #[test]
  fn allow_covers_and_deny_overlaps() {
    let r = rules(serde_json::json!([
      { "permission": "deny", "action": "all", "topics": ["a/secret"] },
      { "permission": "allow", "action": "all", "topics": ["a/+"] },
    ]));
    let w = who(None, "c", "127.0.0.1");
    let sub = |f| r.decide(Action::Subscribe, &w, f);
    assert_eq!(sub("a/b"), Some(true));
    assert_eq!(sub("a/+"), Some(false), "a/+ overlaps the deny");
    assert_eq!(sub("a/#"), Some(false));
    assert_eq!(sub("#"), Some(false));
    assert_eq!(sub("a/b/c"), None, "a/+ does not cover a/b/c");
    assert_eq!(r.decide(Action::Publish, &w, "a/secret"), Some(false));
    assert_eq!(r.decide(Action::Publish, &w, "a/x"), Some(true));
  }

  #[test]
  fn wildcards_do_not_reach_dollar_topics() {
    let r = rules(serde_json::json!([
      { "permission": "allow", "action": "all", "topics": ["#"] },
    ]));
    let w = who(None, "c", "127.0.0.1");
    assert_eq!(r.decide(Action::Publish, &w, "$SYS/x"), None);
    assert_eq!(r.decide(Action::Publish, &w, "x/$SYS"), Some(true));
    let r = rules(serde_json::json!([
      { "permission": "deny", "action": "subscribe", "topics": ["$SYS/#"] },
    ]));
    assert_eq!(r.decide(Action::Subscribe, &w, "#"), None);
    assert_eq!(r.decide(Action::Subscribe, &w, "$SYS/+"), Some(false));
  }

  #[test]
  fn placeholders_are_literal_text() {
    let r = rules(serde_json::json!([
      { "permission": "allow", "action": "all", "topics": ["u/%u/#", "c/%c", "x/id-%c-end"] },
    ]));
    let w = who(Some("ann"), "dev#1", "127.0.0.1");
    assert_eq!(r.decide(Action::Publish, &w, "u/ann/t"), Some(true));
    assert_eq!(r.decide(Action::Publish, &w, "u/bob/t"), None);
    assert_eq!(r.decide(Action::Subscribe, &w, "c/+"), None);
    assert_eq!(r.decide(Action::Publish, &w, "x/id-dev#1-end"), Some(true));
    let plus = who(Some("+"), "c", "127.0.0.1");
    assert_eq!(r.decide(Action::Subscribe, &plus, "u/+/t"), None);
    let anon = who(None, "c", "127.0.0.1");
    assert_eq!(r.decide(Action::Publish, &anon, "u//t"), None);
  }

  #[test]
  fn client_conditions_and_cidr() {
    let r = rules(serde_json::json!([
      { "permission": "allow", "action": "publish", "topics": ["t"], "ipAddress": "10.0.0.0/8" },
      { "permission": "allow", "action": "publish", "topics": ["t"], "username": "u", "clientId": "c" },
    ]));
    assert_eq!(
      r.decide(Action::Publish, &who(None, "x", "10.1.2.3"), "t"),
      Some(true)
    );
    assert_eq!(
      r.decide(Action::Publish, &who(None, "x", "::ffff:10.1.2.3"), "t"),
      Some(true)
    );
    assert_eq!(
      r.decide(Action::Publish, &who(None, "x", "11.0.0.1"), "t"),
      None
    );
    assert_eq!(
      r.decide(Action::Publish, &who(Some("u"), "c", "1.1.1.1"), "t"),
      Some(true)
    );
    assert_eq!(
      r.decide(Action::Publish, &who(Some("u"), "d", "1.1.1.1"), "t"),
      None
    );
    assert_eq!(
      r.decide(Action::Subscribe, &who(Some("u"), "c", "1.1.1.1"), "t"),
      None
    );
  }

  /// The index only skips rules that cannot match: every request gets the
  /// answer of walking all rules in order.
  #[test]
  fn first_level_index_answers_as_the_full_walk() {
    // Wildcard-first rules before, between and after literal ones; answers
    // alternate so that skipping or reordering a rule changes one.
    let levels = ["+", "a", "%u", "b", "$SYS", "#", "x%c", ""];
    let mut list = Vec::new();
    for (i, first) in levels.iter().enumerate() {
      for second in ["+", "#", "k"] {
        let permission = if list.len() % 2 == 1 { "deny" } else { "allow" };
        let topics = if *first == "#" {
          vec!["#".to_string()]
        } else {
          vec![format!("{first}/{second}"), format!("q{i}/{second}")]
        };
        list
          .push(serde_json::json!({ "permission": permission, "action": "all", "topics": topics }));
      }
    }
    let r = rules(serde_json::Value::Array(list));
    let w = who(Some("u"), "c", "127.0.0.1");
    let walk = |action, request: &str| {
      let levels: Vec<&str> = request.split('/').collect();
      r.rules
        .iter()
        .find(|r| {
          r.applies(action, &w) && r.filters.iter().any(|f| matches(f, &levels, &w, r.allow))
        })
        .map(|r| r.allow)
    };
    let mut decided = 0;
    for first in ["a", "b", "$SYS", "+", "#", "u", "xc", "", "q3", "zz"] {
      for rest in ["", "/k", "/+", "/#", "/k/l", "/u/k"] {
        let request = format!("{first}{rest}");
        for action in [Action::Publish, Action::Subscribe] {
          let got = r.decide(action, &w, &request);
          assert_eq!(got, walk(action, &request), "{request} ({action:?})");
          decided += usize::from(got.is_some());
        }
      }
    }
    assert!(decided > 40, "the rules decide most requests: {decided}");
  }

  #[test]
  fn deep_topics_are_matched_past_the_stack_levels() {
    let r = rules(serde_json::json!([
      { "permission": "allow", "action": "all", "topics": ["a/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/z"] },
    ]));
    let w = who(None, "c", "127.0.0.1");
    let deep = format!("a{}/z", "/x".repeat(17));
    assert_eq!(r.decide(Action::Publish, &w, &deep), Some(true));
    assert_eq!(
      r.decide(Action::Publish, &w, &format!("a{}/z", "/x".repeat(16))),
      None
    );
  }

  #[test]
  fn errors_name_the_field() {
    let bad = |list: serde_json::Value| {
      let list: Vec<AclRule> = serde_json::from_value(list).expect("shape");
      Rules::parse(&list, "acl").expect_err("invalid").reason
    };
    let ok = serde_json::json!({ "permission": "allow", "action": "all", "topics": ["a"] });
    let e = bad(
      serde_json::json!([ok, { "permission": "allow", "action": "all", "topics": ["a", "a/#/b"] }]),
    );
    assert!(e.starts_with("acl[1].topics[1]: "), "{e}");
    let e = bad(
      serde_json::json!([{ "permission": "allow", "action": "all", "topics": ["a"], "ipAddress": "10.0.0.0/33" }]),
    );
    assert!(e.starts_with("acl[0].ipAddress: "), "{e}");
    let e = bad(serde_json::json!([{ "permission": "maybe", "action": "all", "topics": ["a"] }]));
    assert!(e.starts_with("acl[0].permission: "), "{e}");
  }
}
