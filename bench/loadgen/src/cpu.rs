//! CPU time this process used, to show whether the load generator itself
//! was the bottleneck (close to 100% of its threads means it may have been).

/// User + system CPU seconds so far, from /proc (Linux only; 0 elsewhere).
pub fn seconds() -> f64 {
  let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
    return 0.0;
  };
  // Fields after the command name, which is in parentheses and may hold spaces.
  let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
    return 0.0;
  };
  let f: Vec<&str> = rest.split_whitespace().collect();
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks;
  // Linux reports them in USER_HZ, which is 100 on every mainstream build.
  let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
  (ticks(11) + ticks(12)) / 100.0
}
