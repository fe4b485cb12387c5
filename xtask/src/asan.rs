//! `cargo xtask asan`: everything that soaks under AddressSanitizer.
//!
//! 1. the `stress` integration tests (`tests/stress.rs`) of the crates that
//!    have one among xarray, shrinker-info, list-lru and shrinker, in one
//!    cargo invocation (optimized, debug assertions on);
//! 2. the stress binary for 20 s (`cargo xtask stress --seconds 20 --asan`);
//! 3. the shrinker's lifetime tests (shell reuse, handles keeping the registry,
//!    panicking callbacks and subscribers, handles dropped inside their own
//!    callback under concurrent walks), where LeakSanitizer also checks
//!    that a freed shrinker's memory and a dropped registry are really given
//!    back. `cargo xtask asan --lifetime` runs only this part (CI does).
//!
//! Crates without a `tests/stress.rs` yet are listed as skipped.

use crate::stress::{cargo, run_stress, status, workspace_root, Sanitizer, SANITIZER_TARGET};

const CRATES: [(&str, &str); 4] = [
    ("xarray", "unishrink-xarray"),
    ("shrinker-info", "unishrink-shrinker-info"),
    ("list-lru", "unishrink-list-lru"),
    ("shrinker", "unishrink-shrinker"),
];

/// The shrinker's integration tests about memory lifetime.
const LIFETIME_TESTS: [&str; 4] = [
    "shell_reuse",
    "handles_keep_registry",
    "subscriber_panic",
    "self_drop",
];

fn lifetime_tests() -> Result<(), String> {
    let mut c = cargo(Sanitizer::Address);
    c.args([
        "test",
        "--release",
        "--target",
        SANITIZER_TARGET,
        "-p",
        "unishrink-shrinker",
    ]);
    for t in LIFETIME_TESTS {
        c.args(["--test", t]);
    }
    status(c, "ASan lifetime tests of unishrink-shrinker")
}

/// Entry point of `cargo xtask asan`.
pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        None => {}
        Some("--lifetime") if args.len() == 1 => {
            lifetime_tests()?;
            eprintln!("xtask asan: ok (lifetime tests)");
            return Ok(());
        }
        Some(a) => {
            return Err(format!(
                "xtask asan takes no arguments but `--lifetime` (got {a:?})"
            ))
        }
    }
    let root = workspace_root();
    let mut c = cargo(Sanitizer::Address);
    c.args(["test", "--release", "--target", SANITIZER_TARGET]);
    let mut with = Vec::new();
    for (dir, pkg) in CRATES {
        if root
            .join("crates")
            .join(dir)
            .join("tests/stress.rs")
            .is_file()
        {
            c.args(["-p", pkg]);
            with.push(pkg);
        } else {
            eprintln!("xtask asan: {pkg}: no tests/stress.rs, skipped");
        }
    }
    if !with.is_empty() {
        c.args(["--test", "stress"]);
        status(c, &format!("ASan stress tests of {}", with.join(", ")))?;
    }
    run_stress(Sanitizer::Address, &["--seconds".into(), "20".into()])?;
    lifetime_tests()?;
    eprintln!(
        "xtask asan: ok ({} stress test crates, stress binary 20 s, lifetime tests)",
        with.len()
    );
    Ok(())
}
