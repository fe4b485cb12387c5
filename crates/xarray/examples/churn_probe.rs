//! Probe: what a second thread costs a reader that pins per load, and one that
//! holds a guard for 64 loads. Not a benchmark of record (see `benches/xarray.rs`).
//!
//! `cargo run --release -p unishrink-xarray --example churn_probe [entries]`
//! (rounded up to a power of two).
//!
//! Writer modes, from "shares nothing" to "churns the reader's own ids":
//! - `quiet`: spins; `busy`: allocates and frees, touching no tree or epoch;
//! - `pin-only`: pins and unpins the epoch; `defer-noop`: also defers a no-op;
//! - `disjoint`: erase+store in a subtree the reader never visits;
//! - `same`: erase+store over the reader's ids;
//! - `replace`: stores a fresh value over the reader's ids (one freed value per op).
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use unishrink_xarray::{pin, XArray};

const MODES: [&str; 8] = [
    "quiet",
    "busy",
    "pin-only",
    "defer-noop",
    "disjoint",
    "same",
    "replace",
    "quiet",
];
const DISJOINT: u64 = 1 << 30;

/// Next pseudo-random id below `n` (a power of two, so no division).
fn next(k: u64, n: u64) -> u64 {
    k.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        & (n - 1)
}

fn writer(mode: &str, xa: &XArray<u64>, n: u64, stop: &AtomicBool) {
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        k = next(k, n);
        match mode {
            "busy" => drop(black_box(vec![k; 64])),
            "pin-only" => drop(black_box(pin())),
            "defer-noop" => pin().defer(|| ()),
            "disjoint" => {
                if let Some(v) = xa.erase(DISJOINT | k) {
                    let _ = xa.store(DISJOINT | k, v);
                }
            }
            "same" => {
                if let Some(v) = xa.erase(k) {
                    let _ = xa.store(k, v);
                }
            }
            "replace" => drop(xa.store(k, Arc::new(k))),
            _ => std::hint::spin_loop(),
        }
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096u64)
        .next_power_of_two();
    let loads = 10_000_000u64;
    println!("{n} entries, {loads} loads per figure, ns per load");
    println!("{:>12} {:>10} {:>10}", "writer", "pin/load", "guard/64");
    for mode in MODES {
        let xa = XArray::<u64>::new();
        for i in 0..n {
            xa.store(i, Arc::new(i)).unwrap();
            xa.store(DISJOINT | i, Arc::new(i)).unwrap();
        }
        let stop = AtomicBool::new(false);
        let (per_load, batched) = std::thread::scope(|s| {
            s.spawn(|| writer(mode, &xa, n, &stop));
            let mut k = 1u64;
            let t = Instant::now();
            for _ in 0..loads {
                k = next(k, n);
                let g = pin();
                black_box(xa.load(k, &g));
            }
            let per_load = t.elapsed().as_nanos() as f64 / loads as f64;
            let t = Instant::now();
            let mut g = pin();
            for i in 0..loads {
                k = next(k, n);
                if i % 64 == 0 {
                    g.repin();
                }
                black_box(xa.load(k, &g));
            }
            drop(g);
            let batched = t.elapsed().as_nanos() as f64 / loads as f64;
            stop.store(true, Ordering::Relaxed);
            (per_load, batched)
        });
        println!("{mode:>12} {per_load:>10.1} {batched:>10.1}");
    }
}
