//! `unishrink-stress`: runs the soak test of [`unishrink_stress`] and prints
//! exactly one line on stdout, `stress: <ops> ops, <T> threads, <secs> s,
//! <V> violations`; exits with status 1 when V > 0 (2 on a bad command line).
//! Violations, the seed and per-operation counts go to stderr.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", unishrink_stress::USAGE);
        return ExitCode::SUCCESS;
    }
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cfg = match unishrink_stress::parse_args(&args, clock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unishrink-stress: {e}\n{}", unishrink_stress::USAGE);
            return ExitCode::from(2);
        }
    };
    unishrink_stress::install_quiet_panic_hook();
    eprintln!(
        "stress: seed {}, {} threads, {:.1} s, {} nodes",
        cfg.seed,
        cfg.threads,
        cfg.duration.as_secs_f64(),
        cfg.nr_nodes
    );
    let out = unishrink_stress::run(&cfg);
    for m in &out.messages {
        eprintln!("stress: violation: {m}");
    }
    let per_op: Vec<String> = out
        .per_op
        .iter()
        .map(|(op, n)| format!("{op:?}={n}"))
        .collect();
    eprintln!(
        "stress: {}; {} objects freed; {} list_lru items; {} checked offlines",
        per_op.join(" "),
        out.freed,
        out.lru_items,
        out.checked_offlines
    );
    println!("{}", out.summary_line());
    if out.violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
