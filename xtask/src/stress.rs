//! `cargo xtask stress --seconds N [--threads T] [--seed S] [--asan | --tsan]`
//!
//! Builds the `unishrink-stress` binary (plain release, or with a sanitizer
//! in its own target directory so normal builds are not invalidated) and
//! runs it with the remaining arguments. The binary prints one line,
//! `stress: <ops> ops, <T> threads, <secs> s, <V> violations`, and exits
//! non-zero when V > 0; so does this command.
//!
//! Sanitizer builds use the stable toolchain with `RUSTC_BOOTSTRAP=1` and
//! `--target x86_64-unknown-linux-gnu` (so `RUSTFLAGS` reach only the target
//! crates, not build scripts or proc macros). The standard library is *not*
//! instrumented (that needs `-Zbuild-std` and the `rust-src` component):
//! fine for AddressSanitizer, a source of false positives for
//! ThreadSanitizer — see `crates/stress/tsan.supp`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The instrumentation of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sanitizer {
    /// A plain release build.
    None,
    /// AddressSanitizer (+ LeakSanitizer at exit).
    Address,
    /// ThreadSanitizer, with uninstrumented std.
    Thread,
}

pub(crate) const SANITIZER_TARGET: &str = "x86_64-unknown-linux-gnu";

impl Sanitizer {
    fn dir(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Address => Some("asan"),
            Self::Thread => Some("tsan"),
        }
    }

    fn rustflags(self) -> Option<&'static str> {
        // Debug assertions and overflow checks stay on in these optimized
        // builds: a wrapped counter is a bug we want to hear about.
        match self {
            Self::None => None,
            Self::Address => Some(
                "-Zsanitizer=address -Cforce-frame-pointers=yes \
                 -Cdebug-assertions=on -Coverflow-checks=on",
            ),
            Self::Thread => Some(
                "-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer \
                 -Cforce-frame-pointers=yes -Cdebug-assertions=on -Coverflow-checks=on",
            ),
        }
    }
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR`, or `<root>/target`.
pub(crate) fn target_root() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// A `cargo` command in the workspace root, set up for `san`. With a
/// sanitizer, pass `--target` [`SANITIZER_TARGET`] to the subcommand.
pub(crate) fn cargo(san: Sanitizer) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    if let (Some(dir), Some(flags)) = (san.dir(), san.rustflags()) {
        c.env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", flags)
            .env("CARGO_TARGET_DIR", target_root().join(dir));
        set_sanitizer_options(&mut c, san);
    }
    c
}

/// Runtime options of the sanitizers (for the programs cargo runs, too).
pub(crate) fn set_sanitizer_options(c: &mut Command, san: Sanitizer) {
    match san {
        Sanitizer::None => {}
        Sanitizer::Address => {
            c.env(
                "ASAN_OPTIONS",
                "detect_leaks=1:halt_on_error=1:abort_on_error=0",
            );
        }
        Sanitizer::Thread => {
            let supp = workspace_root().join("crates/stress/tsan.supp");
            c.env(
                "TSAN_OPTIONS",
                format!(
                    "suppressions={}:halt_on_error=0:second_deadlock_stack=1",
                    supp.display()
                ),
            );
        }
    }
}

/// Runs `c`, failing with a message naming `what` on a non-zero status.
pub(crate) fn status(mut c: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: {what}: {c:?}");
    let st = c.status().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({st})"))
    }
}

/// Builds the stress binary for `san` and returns its path.
pub(crate) fn build_stress(san: Sanitizer) -> Result<PathBuf, String> {
    let mut c = cargo(san);
    c.args([
        "build",
        "--release",
        "-p",
        "unishrink-stress",
        "--bin",
        "unishrink-stress",
    ]);
    let bin = match san.dir() {
        None => target_root().join("release"),
        Some(dir) => {
            c.args(["--target", SANITIZER_TARGET]);
            target_root()
                .join(dir)
                .join(SANITIZER_TARGET)
                .join("release")
        }
    }
    .join("unishrink-stress");
    status(c, "build unishrink-stress")?;
    Ok(bin)
}

/// Builds and runs the stress binary with `args` under `san`.
pub(crate) fn run_stress(san: Sanitizer, args: &[String]) -> Result<(), String> {
    let bin = build_stress(san)?;
    let mut c = Command::new(&bin);
    c.args(args);
    set_sanitizer_options(&mut c, san);
    status(c, &format!("stress ({san:?} sanitizer)"))
}

/// Entry point of `cargo xtask stress`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut san = Sanitizer::None;
    let mut rest = Vec::new();
    for a in args {
        match a.as_str() {
            "--asan" | "--tsan" if san != Sanitizer::None => {
                return Err("choose one of --asan and --tsan".into())
            }
            "--asan" => san = Sanitizer::Address,
            "--tsan" => san = Sanitizer::Thread,
            _ => rest.push(a.clone()),
        }
    }
    run_stress(san, &rest)
}
