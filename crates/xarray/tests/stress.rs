//! Bounded stress test: reader threads load / iterate while a writer churns
//! alloc / erase / store / marks, growing and shrinking the tree. Every value carries
//! the index it was stored at and a "dropped" canary set by its `Drop`; readers check
//! that whatever they can see is live and sits at its own index. Run it under
//! AddressSanitizer too (see the crate docs) to catch any use-after-free directly.
//! Finally every value must be dropped exactly once after the `XArray` is dropped.

use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use unishrink_xarray::{pin, Mark, XArray};

struct Value {
    index: u64,
    dropped: AtomicBool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Value {
    fn drop(&mut self) {
        assert!(
            !self.dropped.swap(true, Ordering::SeqCst),
            "value dropped twice"
        );
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn check(index: u64, v: &Value) {
    assert!(
        !v.dropped.load(Ordering::SeqCst),
        "reader saw a dropped value at {index}"
    );
    assert_eq!(v.index, index, "value loaded from the wrong index");
}

const WRITER_OPS: usize = 40_000;
const READERS: usize = 2;
/// A far index that forces the tree from height 2 to height 4 and back.
const FAR: u64 = 1 << 20;

#[test]
fn readers_vs_churning_writer() {
    let xa: XArray<Value> = XArray::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let created = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = Barrier::new(READERS + 1);
    let reader_loads = AtomicUsize::new(0);

    let make = |index: u64| {
        created.fetch_add(1, Ordering::SeqCst);
        Arc::new(Value {
            index,
            dropped: AtomicBool::new(false),
            drops: drops.clone(),
        })
    };

    thread::scope(|s| {
        for r in 0..READERS {
            let (xa, stop, start, reader_loads) = (&xa, &stop, &start, &reader_loads);
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(r as u64);
                start.wait();
                let mut n = 0usize;
                while !stop.load(Ordering::Acquire) {
                    let g = pin();
                    let i = if rng.gen_bool(0.9) {
                        rng.gen_range(0..300)
                    } else {
                        FAR
                    };
                    if let Some(v) = xa.load(i, &g) {
                        check(i, v);
                        n += 1;
                    }
                    if let Some(v) = xa.get(i) {
                        check(i, &v);
                    }
                    if rng.gen_ratio(1, 64) {
                        let mut last = None;
                        for (i, v) in xa.iter(rng.gen_range(0..300), &g) {
                            check(i, v);
                            assert!(last < Some(i), "iteration not ascending");
                            last = Some(i);
                        }
                        for (i, v) in xa.iter_marked(0, Mark::Mark1, &g) {
                            check(i, v);
                        }
                    }
                    // Hold the reference across a few more loads before re-checking.
                    if let Some(v) = xa.load(i, &g) {
                        let _ = xa.load(i.wrapping_add(1), &g);
                        let _ = xa.height();
                        check(i, v);
                    }
                }
                reader_loads.fetch_add(n, Ordering::Relaxed);
            });
        }

        // Writer.
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let mut live: Vec<u64> = Vec::new();
        let mut used = [false; 300];
        start.wait();
        for _ in 0..WRITER_OPS {
            match rng.gen_range(0..10) {
                0..=3 => {
                    // Single writer: the lowest free id is known up front, so the
                    // value can carry its index from the start (and alloc is checked).
                    let want = (0..=299u64).find(|&i| !used[i as usize]);
                    match want {
                        Some(id) => {
                            assert_eq!(xa.alloc(make(id), 0..=299), Ok(id));
                            live.push(id);
                            used[id as usize] = true;
                        }
                        None => assert!(xa.alloc(make(0), 0..=299).is_err()),
                    }
                }
                4..=6 if !live.is_empty() => {
                    let k = rng.gen_range(0..live.len());
                    let id = live.swap_remove(k);
                    used[id as usize] = false;
                    let v = xa.erase(id).expect("live id present");
                    assert_eq!(v.index, id);
                }
                7 => {
                    // Grow to height 4 and shrink back right away.
                    if xa.store(FAR, make(FAR)).unwrap().is_none() {
                        let h = xa.height();
                        assert_eq!(h, 4);
                    }
                    if rng.gen_bool(0.5) {
                        xa.erase(FAR).unwrap();
                    }
                }
                8 if !live.is_empty() => {
                    let id = live[rng.gen_range(0..live.len())];
                    xa.set_mark(id, Mark::Mark1);
                    let old = xa.store(id, make(id)).unwrap().unwrap();
                    assert_eq!(old.index, id);
                }
                _ => {
                    if let Some(&id) = live.last() {
                        xa.clear_mark(id, Mark::Mark1);
                    }
                }
            }
        }
        stop.store(true, Ordering::Release);
    });

    assert!(
        reader_loads.load(Ordering::Relaxed) > 0,
        "readers did some work"
    );
    drop(xa);
    let want = created.load(Ordering::SeqCst);
    for _ in 0..10_000 {
        if drops.load(Ordering::SeqCst) == want {
            break;
        }
        pin().flush();
        thread::yield_now();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        want,
        "every value dropped exactly once"
    );
}
