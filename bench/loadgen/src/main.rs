//! loadgen: a native MQTT load generator for the benchmark in bench/. It
//! runs one scenario given on the command line against one broker and
//! prints the result as one JSON line on stdout. See `args::USAGE`.

mod args;
mod codec;
mod conn;
mod core_latency;
mod cpu;
mod flow;
mod histogram;
mod idle;
mod open;
mod pacer;
mod payload;
mod publisher;
mod report;
mod shared;
mod subscriber;

use std::process::ExitCode;

fn main() -> ExitCode {
  if std::env::args().nth(1).as_deref() == Some("core-latency") {
    println!("{}", core_latency::run());
    return ExitCode::SUCCESS;
  }
  let a = match args::parse(std::env::args().skip(1)) {
    Ok(a) => a,
    Err(msg) => {
      eprintln!("{msg}");
      return ExitCode::from(2);
    }
  };
  // One thread by default: on a small machine the broker needs the other cores.
  let rt = if a.threads == 1 {
    tokio::runtime::Builder::new_current_thread()
  } else {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(a.threads);
    b
  }
  .enable_all()
  .build()
  .expect("tokio runtime");
  let out = rt.block_on(async move {
    match a.mode {
      args::Mode::Idle => idle::run(a).await,
      _ => flow::run(a).await,
    }
  });
  let line = out.finish();
  println!("{line}");
  // Tasks still blocked on a stuck broker must not keep the process alive.
  rt.shutdown_background();
  if line.contains("\"error\"") {
    ExitCode::from(1)
  } else {
    ExitCode::SUCCESS
  }
}
