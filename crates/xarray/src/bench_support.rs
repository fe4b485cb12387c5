//! Self-timed comparisons of [`XArray`] against `RwLock<BTreeMap>` and
//! `RwLock<HashMap>` (std `RwLock`), for the project's `cargo xtask bench` report.
//! Enabled by the `bench-support` cargo feature. The criterion benchmarks in
//! `benches/xarray.rs` measure the same cases more carefully.
//!
//! Cases (one [`CompareRow`] each per entry count):
//! - `"load"`: single thread, `entries` values at ids `0..entries`, hits in a
//!   precomputed pseudo-random order; ns per lookup. The XArray reader pins per
//!   lookup (a complete read-side section), the maps take the read lock per lookup.
//! - `"load_quiet"` / `"load_churn"`: one reader thread doing the same lookups while a
//!   second thread is idle (`quiet`) or churns (erase a random id, then allocate it
//!   again / re-insert it) as fast as it can (`churn`); ns per reader lookup.
//!
//! ```
//! # #[cfg(feature = "bench-support")] {
//! let rows = unishrink_xarray::bench_support::quick_compare(&[64], 5);
//! assert_eq!(rows.len(), 3);
//! assert!(rows.iter().all(|r| r.xarray_ns > 0.0 && r.btree_ns > 0.0 && r.hash_ns > 0.0));
//! # }
//! ```

use crate::{pin, XArray};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

/// One line of the comparison: the same case timed on the three structures.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareRow {
    /// Case name: `"load"`, `"load_quiet"` or `"load_churn"`.
    pub case: String,
    /// Number of live entries.
    pub entries: usize,
    /// ns per operation on [`XArray`].
    pub xarray_ns: f64,
    /// ns per operation on `RwLock<BTreeMap<u64, Arc<u64>>>`.
    pub btree_ns: f64,
    /// ns per operation on `RwLock<HashMap<u64, Arc<u64>>>`.
    pub hash_ns: f64,
}

/// A lookup structure under test.
trait Subject: Sync {
    fn lookup(&self, i: u64) -> bool;
    /// One writer churn step on id `i` (present before and after).
    fn churn(&self, i: u64);
}

impl Subject for XArray<u64> {
    fn lookup(&self, i: u64) -> bool {
        let g = pin();
        black_box(self.load(i, &g)).is_some()
    }
    fn churn(&self, i: u64) {
        if let Some(v) = self.erase(i) {
            // Lowest free id is `i` again: the IDR hands it back.
            let _ = self.alloc(v, 0..=u64::MAX);
        }
    }
}

impl Subject for RwLock<BTreeMap<u64, Arc<u64>>> {
    fn lookup(&self, i: u64) -> bool {
        let m = self.read().unwrap_or_else(|e| e.into_inner());
        black_box(m.get(&i)).is_some()
    }
    fn churn(&self, i: u64) {
        let mut m = self.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.remove(&i) {
            m.insert(i, v);
        }
    }
}

impl Subject for RwLock<HashMap<u64, Arc<u64>>> {
    fn lookup(&self, i: u64) -> bool {
        let m = self.read().unwrap_or_else(|e| e.into_inner());
        black_box(m.get(&i)).is_some()
    }
    fn churn(&self, i: u64) {
        let mut m = self.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.remove(&i) {
            m.insert(i, v);
        }
    }
}

/// `len` pseudo-random ids below `n` (xorshift; deterministic).
pub(crate) fn lookup_order(n: usize, len: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n as u64
        })
        .collect()
}

/// Runs batches of lookups until `budget` elapsed; ns per lookup.
fn time_lookups(s: &dyn Subject, order: &[u64], budget: Duration) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    let mut k = 0usize;
    loop {
        for _ in 0..1024 {
            black_box(s.lookup(order[k]));
            k = (k + 1) % order.len();
        }
        done += 1024;
        let el = start.elapsed();
        if el >= budget {
            return el.as_nanos() as f64 / done as f64;
        }
    }
}

/// One reader timed while a second thread idles or churns.
fn time_with_writer(
    s: &dyn Subject,
    order: &[u64],
    n: usize,
    budget: Duration,
    churn: bool,
) -> f64 {
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let ids = lookup_order(n, 4096);
            ready.wait();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                if churn {
                    s.churn(ids[k % ids.len()]);
                    k += 1;
                } else {
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
            }
        });
        ready.wait();
        let ns = time_lookups(s, order, budget);
        stop.store(true, Ordering::Relaxed);
        ns
    })
}

/// Times the cases described in the [module docs](self) for each entry count,
/// spending about `millis_per_case` ms per structure and case.
pub fn quick_compare(entries: &[usize], millis_per_case: u64) -> Vec<CompareRow> {
    let budget = Duration::from_millis(millis_per_case.max(1));
    let mut rows = Vec::new();
    for &n in entries {
        let n = n.max(1);
        let xa: XArray<u64> = XArray::new();
        let mut bt = BTreeMap::new();
        let mut hm = HashMap::new();
        for i in 0..n as u64 {
            let v = Arc::new(i);
            let _ = xa.store(i, v.clone());
            bt.insert(i, v.clone());
            hm.insert(i, v);
        }
        let (bt, hm) = (RwLock::new(bt), RwLock::new(hm));
        let order = lookup_order(n, 1 << 16);
        let subjects: [&dyn Subject; 3] = [&xa, &bt, &hm];

        let t: Vec<f64> = subjects
            .iter()
            .map(|s| time_lookups(*s, &order, budget))
            .collect();
        rows.push(row("load", n, &t));
        for (case, churn) in [("load_quiet", false), ("load_churn", true)] {
            let t: Vec<f64> = subjects
                .iter()
                .map(|s| time_with_writer(*s, &order, n, budget, churn))
                .collect();
            rows.push(row(case, n, &t));
        }
    }
    rows
}

fn row(case: &str, entries: usize, t: &[f64]) -> CompareRow {
    CompareRow {
        case: case.to_string(),
        entries,
        xarray_ns: t[0],
        btree_ns: t[1],
        hash_ns: t[2],
    }
}
