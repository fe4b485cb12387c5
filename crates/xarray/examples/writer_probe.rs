//! Probe: what a reader looking up *other* ids of the same leaf costs a
//! writer that allocates and takes one id in a loop (the shrinker registry's
//! register/free cycle under reclaim). Not a benchmark of record.
//!
//! `writer_probe [iters] [idle|same|other]` (env `OTHERS`, default 100; env
//! `SPACED`: trees with [`LINE_SPACING`] instead of dense slots): the tree
//! holds ids `0..OTHERS`; the writer cycles the next free id; the reader
//! (`same`: this tree, `other`: a second one alike) loads `0..OTHERS`, one
//! pin per load, as `shrink_slab` does. With dense slots and the default
//! `OTHERS`, the cycling id 100 shares a cache line with ids 96..99.
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use unishrink_xarray::{pin, XArray, LINE_SPACING};

fn filled<const S: usize>(n: u64) -> Arc<XArray<u64, (), S>> {
    let xa = Arc::new(XArray::default());
    for i in 0..n {
        xa.store(i, Arc::new(i)).unwrap();
    }
    xa
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iters: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let mode = args.next().unwrap_or_default();
    let n: u64 = std::env::var("OTHERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    if std::env::var_os("SPACED").is_some() {
        probe::<LINE_SPACING>(iters, &mode, n);
    } else {
        probe::<1>(iters, &mode, n);
    }
}

fn probe<const S: usize>(iters: u64, mode: &str, n: u64) {
    let xa = filled::<S>(n);
    let other = filled::<S>(n);
    let stop = Arc::new(crossbeam_utils::CachePadded::new(AtomicBool::new(false)));
    std::thread::scope(|scope| {
        if mode == "same" || mode == "other" {
            let read = if mode == "same" {
                xa.clone()
            } else {
                other.clone()
            };
            let stop = stop.clone();
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..n {
                        let g = pin();
                        black_box(read.load(i, &g));
                    }
                }
            });
        }
        let v = Arc::new(u64::MAX);
        let t = Instant::now();
        for _ in 0..iters {
            // Two lock sections, as alloc and free are.
            let id = xa.lock().alloc(v.clone(), 0..=u64::from(u32::MAX)).unwrap();
            let unlinked = xa.lock().take(id).unwrap();
            // SAFETY: the reader never loads `id` (it loads `0..n`, and `id`
            // is `n`), so no reader can hold the value.
            let (arc, nodes) = unsafe { unlinked.into_arc() };
            if !nodes.is_empty() {
                nodes.defer(&pin());
            }
            drop(arc);
        }
        let el = t.elapsed();
        println!(
            "{:.0} cycles/s, {:.1} ns/cycle",
            iters as f64 / el.as_secs_f64(),
            el.as_nanos() as f64 / iters as f64
        );
        stop.store(true, Ordering::Relaxed);
    });
}
