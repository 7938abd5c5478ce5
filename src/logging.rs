//! Where the broker's log output goes.
//!
//! rmqtt logs through the `log` crate; it is bridged into `tracing` and written
//! to **stderr** (never stdout, which belongs to the host application). The
//! filter comes from the `MQTT_SERVER_LOG` environment variable, with the
//! `tracing` `EnvFilter` syntax (`warn`, `debug`, `rmqtt=info,embedded_mqtt_broker=debug`).
//! By default only this addon's own warnings are shown (hook failures and the
//! like) and rmqtt itself is silent.
//!
//! A process has one logger, so this is installed once per process, on the
//! first `MqttServer` constructed. It holds no broker state.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

pub const ENV_VAR: &str = "MQTT_SERVER_LOG";
const DEFAULT_FILTER: &str = "embedded_mqtt_broker=warn";

static INIT: Once = Once::new();

pub fn init() {
  INIT.call_once(|| {
    let filter = std::env::var(ENV_VAR)
      .ok()
      .and_then(|f| EnvFilter::try_new(f).ok())
      .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    // Another library in the process may already own the global logger; then
    // we simply log through it.
    let _ = tracing_subscriber::fmt()
      .with_env_filter(filter)
      .with_writer(|| Redacting(std::io::stderr()))
      .with_ansi(false)
      .try_init();
  });
}

/// stderr with secrets cut out of each line (`redact.rs`): rmqtt and its
/// plugins log their configs, Redis URLs with passwords included. The
/// formatter writes each event in one `write`.
struct Redacting(std::io::Stderr);

impl std::io::Write for Redacting {
  fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
    let text = String::from_utf8_lossy(buf);
    self.0.write_all(crate::redact::redact(&text).as_bytes())?;
    Ok(buf.len())
  }

  fn flush(&mut self) -> std::io::Result<()> {
    self.0.flush()
  }
}
