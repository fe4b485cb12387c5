//! Criterion benchmarks: XArray lookups vs `RwLock<BTreeMap>` / `RwLock<HashMap>`,
//! reader throughput under a churning writer, and IDR alloc+erase at 1M entries.
//!
//! `cargo bench -p unishrink-xarray -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};
use unishrink_xarray::{pin, XArray};

type BTree = RwLock<BTreeMap<u64, Arc<u64>>>;
type Hash = RwLock<HashMap<u64, Arc<u64>>>;

/// Deterministic pseudo-random ids below `n` (xorshift).
fn order(n: usize, len: usize) -> Vec<u64> {
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

fn build(n: usize) -> (XArray<u64>, BTree, Hash) {
    let xa = XArray::new();
    let mut bt = BTreeMap::new();
    let mut hm = HashMap::new();
    for i in 0..n as u64 {
        let v = Arc::new(i);
        xa.store(i, v.clone()).unwrap();
        bt.insert(i, v.clone());
        hm.insert(i, v);
    }
    (xa, RwLock::new(bt), RwLock::new(hm))
}

fn xa_load(xa: &XArray<u64>, i: u64) -> bool {
    let g = pin();
    black_box(xa.load(i, &g)).is_some()
}
fn bt_load(m: &BTree, i: u64) -> bool {
    black_box(m.read().unwrap().get(&i)).is_some()
}
fn hm_load(m: &Hash, i: u64) -> bool {
    black_box(m.read().unwrap().get(&i)).is_some()
}

fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Elements(1));
    for n in [64usize, 4096, 1 << 20] {
        let (xa, bt, hm) = build(n);
        let ord = order(n, 1 << 16);
        let mask = ord.len() - 1;
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("xarray", n), |b| {
            b.iter(|| {
                k = (k + 1) & mask;
                xa_load(&xa, ord[k])
            })
        });
        g.bench_function(BenchmarkId::new("xarray_guard_reused", n), |b| {
            let guard = pin();
            b.iter(|| {
                k = (k + 1) & mask;
                black_box(xa.load(ord[k], &guard)).is_some()
            })
        });
        g.bench_function(BenchmarkId::new("rwlock_btreemap", n), |b| {
            b.iter(|| {
                k = (k + 1) & mask;
                bt_load(&bt, ord[k])
            })
        });
        g.bench_function(BenchmarkId::new("rwlock_hashmap", n), |b| {
            b.iter(|| {
                k = (k + 1) & mask;
                hm_load(&hm, ord[k])
            })
        });
    }
    g.finish();
}

/// Times `iters` reader lookups while a second thread idles (`churn == None`) or
/// runs `churn` in a loop.
fn reader_with_writer(
    iters: u64,
    ord: &[u64],
    read: &(dyn Fn(u64) -> bool + Sync),
    churn: Option<&(dyn Fn(u64) + Sync)>,
) -> Duration {
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            ready.wait();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match churn {
                    Some(f) => f(ord[(k * 7 + 3) % ord.len()]),
                    None => std::thread::yield_now(),
                }
                k += 1;
            }
        });
        ready.wait();
        let start = Instant::now();
        for i in 0..iters as usize {
            black_box(read(ord[i % ord.len()]));
        }
        let el = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        el
    })
}

/// Reader throughput while a writer churns alloc/erase over the same ids.
///
/// Besides the per-structure `quiet`/`churn` pairs, two references separate what
/// the tree costs from what the epoch collector costs (see the crate docs,
/// "Readers under writer churn"):
/// - `xarray_guard64` holds one guard for 64 loads, as a walk does;
/// - writer `epoch_only` touches no tree at all: it pins and defers a no-op
///   closure per op, which is the collector traffic of a writer's retirements.
fn churn(c: &mut Criterion) {
    let n = 4096usize;
    let (xa, bt, hm) = build(n);
    let ord = order(n, 1 << 16);
    let xa_churn = |i: u64| {
        if let Some(v) = xa.erase(i) {
            let _ = xa.alloc(v, 0..=u64::MAX);
        }
    };
    let epoch_only = |_: u64| pin().defer(|| ());
    let bt_churn = |i: u64| {
        let mut m = bt.write().unwrap();
        if let Some(v) = m.remove(&i) {
            m.insert(i, v);
        }
    };
    let hm_churn = |i: u64| {
        let mut m = hm.write().unwrap();
        if let Some(v) = m.remove(&i) {
            m.insert(i, v);
        }
    };
    let mut g = c.benchmark_group("reader_vs_writer");
    g.throughput(Throughput::Elements(1));
    type Read<'a> = &'a (dyn Fn(u64) -> bool + Sync);
    type Write<'a> = &'a (dyn Fn(u64) + Sync);
    let xr = |i| xa_load(&xa, i);
    let br = |i| bt_load(&bt, i);
    let hr = |i| hm_load(&hm, i);
    type Case<'a> = (&'a str, Read<'a>, &'a [(&'a str, Write<'a>)]);
    let cases: [Case; 3] = [
        (
            "xarray",
            &xr,
            &[("churn", &xa_churn), ("epoch_only", &epoch_only)],
        ),
        ("rwlock_btreemap", &br, &[("churn", &bt_churn)]),
        ("rwlock_hashmap", &hr, &[("churn", &hm_churn)]),
    ];
    for (name, read, writers) in cases {
        g.bench_function(BenchmarkId::new(name, "quiet"), |b| {
            b.iter_custom(|iters| reader_with_writer(iters, &ord, read, None))
        });
        for &(wname, write) in writers {
            g.bench_function(BenchmarkId::new(name, wname), |b| {
                b.iter_custom(|iters| reader_with_writer(iters, &ord, read, Some(write)))
            });
        }
    }
    // One guard per 64 loads: the reader repins, so the collector's work and the
    // pin's fence are paid once per batch.
    let batched = |iters: u64, churn: Option<Write>| {
        let batch = |i: u64| {
            let guard = pin();
            let mut hit = false;
            for j in 0..64 {
                let id = ord[(i as usize + j * 61) % ord.len()];
                hit |= black_box(xa.load(id, &guard)).is_some();
            }
            hit
        };
        reader_with_writer(iters.div_ceil(64), &ord, &batch, churn)
    };
    for (wname, write) in [
        ("quiet", None),
        ("churn", Some(&xa_churn as Write)),
        ("epoch_only", Some(&epoch_only as Write)),
    ] {
        g.bench_function(BenchmarkId::new("xarray_guard64", wname), |b| {
            b.iter_custom(|iters| batched(iters, write))
        });
    }
    g.finish();
}

fn alloc_erase(c: &mut Criterion) {
    let n = 1usize << 20;
    let xa = XArray::new();
    for i in 0..n as u64 {
        xa.store(i, Arc::new(i)).unwrap();
    }
    let ord = order(n, 1 << 16);
    let mut k = 0usize;
    let v = Arc::new(0u64);
    c.bench_function("alloc_erase_pair/1048576", |b| {
        b.iter(|| {
            // Punch a hole at a pseudo-random id, then let the IDR find it again.
            k = (k + 1) & (ord.len() - 1);
            let old = xa.erase(ord[k]).unwrap();
            let id = xa.alloc(old, 0..=u64::MAX).unwrap();
            debug_assert_eq!(id, ord[k]);
            black_box(id)
        })
    });
    // The pure pair: alloc at the first free id (1M, the tree's edge) then erase it.
    c.bench_function("alloc_then_erase_at_edge/1048576", |b| {
        b.iter(|| {
            let id = xa.alloc(v.clone(), 0..=u64::MAX).unwrap();
            black_box(xa.erase(id))
        })
    });
}

criterion_group!(benches, load, churn, alloc_erase);
criterion_main!(benches);
