//! `cargo xtask`: project automation.
//!
//! A small dispatcher over plain arguments (no argument-parsing crate):
//! `cargo xtask <subcommand> [options]`. Each subcommand lives in its own
//! module and returns a `Result` so failures become an exit status, not a panic.
//!
//! Subcommands:
//! * `bench [--full] [--quick]`: compare the four shrinker designs
//!   (rwsem, srcu, split, unified) on every workload; tables on stdout,
//!   `target/bench/report.{json,md}` and SVG plots. See [`mod@bench`].
//! * `stress --seconds N [--threads T] [--seed S] [--asan | --tsan]`: the
//!   randomized soak of `crates/stress`, optionally under a sanitizer.
//! * `loom`: every loom model of the workspace (`crates/*/tests/loom_*.rs`).
//! * `asan`: the stress tests and a short soak under AddressSanitizer.

mod asan;
mod bench;
mod loom;
mod stress;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <subcommand> [options]

subcommands:
  bench [--quick|--full]   compare rwsem, srcu, split and unified (default: --quick)
  stress --seconds N [--threads T] [--seed S] [--asan|--tsan]
                           randomized soak with continuous invariant checks
  loom                     run every loom model
  asan                     stress tests + a 20 s soak under AddressSanitizer
  help                     this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::main(&args[1..]),
        Some("stress") => stress::run(&args[1..]),
        Some("loom") => loom::run(&args[1..]),
        Some("asan") => asan::run(&args[1..]),
        Some("help") | Some("-h") | Some("--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown subcommand `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
