//! `cargo xtask asan`: everything that soaks under AddressSanitizer.
//!
//! 1. the `stress` integration tests (`tests/stress.rs`) of the crates that
//!    have one among xarray, shrinker-info, list-lru and shrinker, in one
//!    cargo invocation (optimized, debug assertions on);
//! 2. the stress binary for 20 s (`cargo xtask stress --seconds 20 --asan`).
//!
//! Crates without a `tests/stress.rs` yet are listed as skipped.

use crate::stress::{cargo, run_stress, status, workspace_root, Sanitizer, SANITIZER_TARGET};

const CRATES: [(&str, &str); 4] = [
    ("xarray", "unishrink-xarray"),
    ("shrinker-info", "unishrink-shrinker-info"),
    ("list-lru", "unishrink-list-lru"),
    ("shrinker", "unishrink-shrinker"),
];

/// Entry point of `cargo xtask asan`.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("xtask asan takes no arguments (got {a:?})"));
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
    eprintln!(
        "xtask asan: ok ({} stress test crates, stress binary 20 s)",
        with.len()
    );
    Ok(())
}
