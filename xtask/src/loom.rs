//! `cargo xtask loom`: runs every loom model of the workspace.
//!
//! Finds `crates/*/tests/loom_*.rs`, and builds and runs them all in **one**
//! cargo invocation (`--release`, `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"`, target directory
//! `<target>/loom` so normal builds keep their cache): one build of the
//! dependency graph instead of one per crate, which is what keeps CI short
//! on two cores. Prints each model's result and the totals; fails if any
//! model fails or if no model ran.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::stress::{cargo, target_root, workspace_root, Sanitizer};

/// `name = "..."` of the `[package]` section of a manifest.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("name") {
                let v = v.trim_start().strip_prefix('=')?.trim();
                return Some(v.trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// `(package, test target)` of every loom model file, sorted.
fn find_models() -> Result<Vec<(String, String)>, String> {
    let crates = workspace_root().join("crates");
    let mut found = Vec::new();
    let dirs = std::fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))?;
    for dir in dirs.flatten() {
        let tests = dir.path().join("tests");
        let Ok(files) = std::fs::read_dir(&tests) else {
            continue;
        };
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml"))
            .map_err(|e| format!("{}: {e}", dir.path().display()))?;
        let pkg = package_name(&manifest)
            .ok_or_else(|| format!("{}: no package name", dir.path().display()))?;
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".rs") {
                if stem.starts_with("loom_") {
                    found.push((pkg.clone(), stem.to_owned()));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Entry point of `cargo xtask loom`.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("xtask loom takes no arguments (got {a:?})"));
    }
    let models = find_models()?;
    if models.is_empty() {
        return Err("no tests/loom_*.rs found under crates/".into());
    }
    let mut c = cargo(Sanitizer::None);
    // `crossbeam_loom` switches crossbeam-epoch to loom's primitives: without
    // it every simulated thread would share one epoch participant and the
    // xarray models would check nothing about deferred frees.
    c.env("RUSTFLAGS", "--cfg loom --cfg crossbeam_loom")
        .env("CARGO_TARGET_DIR", target_root().join("loom"))
        .args(["test", "--release"]);
    let mut pkgs: Vec<&str> = models.iter().map(|(p, _)| p.as_str()).collect();
    pkgs.dedup();
    for p in &pkgs {
        c.args(["-p", p]);
    }
    for (_, t) in &models {
        c.args(["--test", t]);
    }
    eprintln!(
        "xtask loom: {} model files in {}: {:?}",
        models.len(),
        pkgs.join(", "),
        models.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>()
    );
    eprintln!("xtask loom: {c:?}");
    c.stdout(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        // libtest: "test <name> ... ok" / "... FAILED".
        if let Some(rest) = line.strip_prefix("test ") {
            if rest.ends_with("... ok") {
                passed += 1;
            } else if rest.ends_with("... FAILED") {
                failed += 1;
            }
        }
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    println!(
        "loom: {} models ran, {passed} passed, {failed} failed",
        passed + failed
    );
    if !st.success() || failed > 0 {
        return Err(format!("loom models failed ({st})"));
    }
    if passed == 0 {
        return Err("no loom model ran (were they compiled without --cfg loom?)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::package_name;

    #[test]
    fn reads_the_package_name() {
        let m = "[package]\nname = \"unishrink-x\"\n[dependencies]\nname = \"no\"\n";
        assert_eq!(package_name(m).as_deref(), Some("unishrink-x"));
        assert_eq!(package_name("[workspace]\nname = \"w\"\n"), None);
    }
}
