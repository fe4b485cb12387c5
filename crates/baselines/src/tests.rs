//! Unit tests of the three baselines.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::rwsem::Rwsem;
use crate::split::Split;
use crate::srcu::Srcu;
use crate::{
    from_fns, memcg_cache as cache, Callbacks, Count, Design, DesignConfig, Scan, ShrinkerSpec,
};

/// Worked example: in a child memcg, A holds 1000 objects, B 200, C 50; the
/// bits of A and B are set, C's is not. A global shrinker G holds 77 at the root.
/// At priority 0 the child frees 1000 + 200 (C is invisible without its bit;
/// the bitmap-less kernel visits it: 1250) and the root frees 77.
fn worked_example<D: Design>(d: D, expect_child: u64) {
    let child = d.create_memcg(&d.root()).unwrap();
    let cid = d.memcg_id(&child);
    let mc = ShrinkerSpec::new("mc").memcg_aware(true);
    let a = d.register(&mc, cache(cid, 1000)).unwrap();
    let b = d.register(&mc, cache(cid, 200)).unwrap();
    let c = d.register(&mc, cache(cid, 50)).unwrap();
    let g = d
        .register(&ShrinkerSpec::new("g"), cache(d.memcg_id(&d.root()), 77))
        .unwrap();
    d.set_shrinker_bit(&child, 0, &a).unwrap();
    d.set_shrinker_bit(&child, 0, &b).unwrap();
    assert_eq!(
        d.shrink_slab(&child, 0, 0).unwrap(),
        expect_child,
        "{}",
        d.name()
    );
    assert_eq!(
        d.shrink_slab(&child, 0, 0).unwrap(),
        0,
        "{}: drained",
        d.name()
    );
    assert_eq!(
        d.shrink_slab(&d.root(), 0, 0).unwrap(),
        77,
        "{}: root",
        d.name()
    );
    assert_eq!(d.shrinker_id(&a), Some(0));
    if d.name() != "unified" {
        // Only the unified design gives global shrinkers an id.
        assert_eq!(d.shrinker_id(&g), None);
    }
    for s in [a, b, c, g] {
        d.free(s).unwrap();
    }
    assert_eq!(d.shrink_slab(&d.root(), 0, 0).unwrap(), 0);
}

#[test]
fn rwsem_frees_worked_example() {
    worked_example(Rwsem::new(DesignConfig::default()).unwrap(), 1200);
}

#[test]
fn nobitmap_frees_worked_example() {
    worked_example(Rwsem::nobitmap(DesignConfig::default()).unwrap(), 1250);
}

#[test]
fn srcu_frees_worked_example() {
    worked_example(Srcu::new(DesignConfig::default()).unwrap(), 1200);
}

#[test]
fn split_frees_worked_example() {
    worked_example(Split::new(DesignConfig::default()).unwrap(), 1200);
}

#[cfg(feature = "unified")]
#[test]
fn unified_frees_worked_example() {
    worked_example(
        crate::unified::Unified::new(DesignConfig::default()).unwrap(),
        1200,
    );
}

#[test]
fn bad_arguments_are_errors() {
    let d = Split::new(DesignConfig::default()).unwrap();
    assert_eq!(
        d.shrink_slab(&d.root(), 0, 13),
        Err(crate::Error::BadPriority(13))
    );
    assert_eq!(
        d.shrink_slab(&d.root(), 1, 0),
        Err(crate::Error::BadNode(1))
    );
    let other = Split::new(DesignConfig::default()).unwrap();
    let s = other
        .register(&ShrinkerSpec::new("x"), cache(0, 1))
        .unwrap();
    assert!(matches!(
        d.set_shrinker_bit(&d.root(), 0, &s),
        Err(crate::Error::ForeignHandle)
    ));
    other.free(s).unwrap();
}

/// Ids are lowest-free and shrinker_info grows for a memcg created earlier.
#[test]
fn ids_reuse_and_info_grows() {
    let d = Split::new(DesignConfig::default()).unwrap();
    let child = d.create_memcg(&d.root()).unwrap();
    let spec = ShrinkerSpec::new("mc").memcg_aware(true);
    let v: Vec<_> = (0..130)
        .map(|_| d.register(&spec, cache(1, 5)).unwrap())
        .collect();
    assert_eq!(d.shrinker_id(&v[129]), Some(129));
    d.set_shrinker_bit(&child, 0, &v[129]).unwrap();
    assert_eq!(d.shrink_slab(&child, 0, 0).unwrap(), 5);
    // root + child, 192 ids each.
    assert_eq!(d.info_bytes(), 2 * crate::FlatInfo::bytes_for(192));
    let mut it = v.into_iter();
    let first = it.next().unwrap();
    d.free(first).unwrap();
    let again = d.register(&spec, cache(1, 5)).unwrap();
    assert_eq!(d.shrinker_id(&again), Some(0));
}

struct Blocker {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

/// Callbacks whose first scan signals `entered` and blocks until released;
/// `finished` is set just before that scan returns; `calls` counts scans.
struct Blocking {
    cb: Arc<dyn Callbacks>,
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    finished: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

fn blocking(memcg: usize) -> Blocking {
    let (etx, erx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let blk = parking_lot::Mutex::new(Some(Blocker {
        entered: etx,
        release: rrx,
    }));
    let finished = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (f2, c2) = (finished.clone(), calls.clone());
    let cb = from_fns(
        move |sc| {
            if sc.memcg == memcg {
                Count::Objects(1000)
            } else {
                Count::Objects(0)
            }
        },
        move |_| {
            c2.fetch_add(1, Ordering::SeqCst);
            if let Some(b) = blk.lock().take() {
                b.entered.send(()).unwrap();
                b.release.recv().unwrap();
                f2.store(true, Ordering::SeqCst);
                return Scan::Stop;
            }
            Scan::Freed(0)
        },
    );
    Blocking {
        cb,
        entered: erx,
        release: rtx,
        finished,
        calls,
    }
}

/// Generous bound to turn a deadlock into a failure (not a performance check).
const HANG: Duration = Duration::from_secs(60);

#[test]
fn split_free_waits_for_running_callback() {
    let d = Arc::new(Split::new(DesignConfig::default()).unwrap());
    let child = d.create_memcg(&d.root()).unwrap();
    let Blocking {
        cb,
        entered,
        release,
        finished,
        calls,
    } = blocking(d.memcg_id(&child));
    let s = d
        .register(&ShrinkerSpec::new("blk").memcg_aware(true), cb)
        .unwrap();
    d.set_shrinker_bit(&child, 0, &s).unwrap();
    let walker = {
        let (d, child) = (d.clone(), child.clone());
        thread::spawn(move || d.shrink_slab(&child, 0, 0).unwrap())
    };
    entered.recv_timeout(HANG).unwrap();
    let f_done = Arc::new(AtomicBool::new(false));
    let freer = {
        let (d, f_done, finished) = (d.clone(), f_done.clone(), finished.clone());
        thread::spawn(move || {
            d.free(s).unwrap();
            let seen = finished.load(Ordering::SeqCst);
            f_done.store(true, Ordering::SeqCst);
            seen
        })
    };
    // Wait until the freer dropped the initial reference (or wrongly returned).
    while d.waiting_frees_for_test() == 0 && !f_done.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    release.send(()).unwrap();
    assert!(
        freer.join().unwrap(),
        "free returned while the callback was running"
    );
    walker.join().unwrap();
    let before = calls.load(Ordering::SeqCst);
    d.shrink_slab(&child, 0, 0).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "callback ran after free"
    );
}

/// `split`: freeing another shrinker is not delayed by a blocked callback.
#[test]
fn split_free_ignores_other_shrinkers() {
    let d = Arc::new(Split::new(DesignConfig::default()).unwrap());
    let child = d.create_memcg(&d.root()).unwrap();
    let Blocking {
        cb,
        entered,
        release,
        ..
    } = blocking(d.memcg_id(&child));
    let s = d
        .register(&ShrinkerSpec::new("blk").memcg_aware(true), cb)
        .unwrap();
    d.set_shrinker_bit(&child, 0, &s).unwrap();
    let walker = {
        let (d, child) = (d.clone(), child.clone());
        thread::spawn(move || d.shrink_slab(&child, 0, 0).unwrap())
    };
    entered.recv_timeout(HANG).unwrap();
    let (tx, rx) = mpsc::channel();
    let d2 = d.clone();
    thread::spawn(move || {
        let other = d2
            .register(&ShrinkerSpec::new("other").memcg_aware(true), cache(1, 1))
            .unwrap();
        d2.free(other).unwrap();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(HANG)
        .expect("free of another shrinker blocked behind a callback");
    release.send(()).unwrap();
    walker.join().unwrap();
    d.free(s).unwrap();
}

#[test]
fn srcu_free_waits_for_every_reader() {
    let d = Arc::new(Srcu::new(DesignConfig::default()).unwrap());
    let child = d.create_memcg(&d.root()).unwrap();
    let Blocking {
        cb,
        entered,
        release,
        finished,
        ..
    } = blocking(d.memcg_id(&child));
    let s = d
        .register(&ShrinkerSpec::new("blk").memcg_aware(true), cb)
        .unwrap();
    d.set_shrinker_bit(&child, 0, &s).unwrap();
    // An unrelated shrinker: its free must still wait for the blocked walk.
    let other = d
        .register(&ShrinkerSpec::new("other"), cache(0, 1))
        .unwrap();
    let idx0 = d.srcu_idx_for_test();
    let walker = {
        let (d, child) = (d.clone(), child.clone());
        thread::spawn(move || d.shrink_slab(&child, 0, 0).unwrap())
    };
    entered.recv_timeout(HANG).unwrap();
    let f_done = Arc::new(AtomicBool::new(false));
    let freer = {
        let (d, f_done, finished) = (d.clone(), f_done.clone(), finished.clone());
        thread::spawn(move || {
            d.free(other).unwrap();
            let seen = finished.load(Ordering::SeqCst);
            f_done.store(true, Ordering::SeqCst);
            seen
        })
    };
    // Wait until the freer started its grace period (or wrongly returned).
    while d.srcu_idx_for_test() == idx0 && !f_done.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    release.send(()).unwrap();
    assert!(
        freer.join().unwrap(),
        "synchronize_srcu did not wait for the walk in another shrinker"
    );
    walker.join().unwrap();
    d.free(s).unwrap();
}

#[test]
fn rwsem_try_read_bails_out_when_writer_waits() {
    let d = Arc::new(Rwsem::new(DesignConfig::default()).unwrap());
    let child = d.create_memcg(&d.root()).unwrap();
    let cid = d.memcg_id(&child);
    let Blocking {
        cb,
        entered,
        release,
        ..
    } = blocking(cid);
    let s = d
        .register(&ShrinkerSpec::new("blk").memcg_aware(true), cb)
        .unwrap();
    d.set_shrinker_bit(&child, 0, &s).unwrap();
    // A second shrinker with objects; a walk that got the lock would free them.
    let full = d
        .register(
            &ShrinkerSpec::new("full").memcg_aware(true),
            cache(cid, 500),
        )
        .unwrap();
    d.set_shrinker_bit(&child, 0, &full).unwrap();
    let walker = {
        let (d, child) = (d.clone(), child.clone());
        thread::spawn(move || d.shrink_slab(&child, 0, 0).unwrap())
    };
    entered.recv_timeout(HANG).unwrap();
    let writer = {
        let d = d.clone();
        thread::spawn(move || {
            let x = d.register(&ShrinkerSpec::new("w"), cache(0, 1)).unwrap();
            d.free(x).unwrap();
        })
    };
    while !d.writer_waiting() {
        thread::yield_now();
    }
    assert_eq!(
        d.shrink_slab(&child, 0, 0).unwrap(),
        0,
        "reclaim did not bail out"
    );
    assert_eq!(
        d.shrink_slab(&d.root(), 0, 0).unwrap(),
        0,
        "root reclaim did not bail out"
    );
    release.send(()).unwrap();
    // The blocked walk sees the waiting writer and stops early, reporting >= 1.
    assert!(walker.join().unwrap() >= 1);
    writer.join().unwrap();
    assert_eq!(d.shrink_slab(&child, 0, 0).unwrap(), 500);
    d.free(full).unwrap();
    d.free(s).unwrap();
}

/// Bounded concurrent churn: walkers on root and child while shrinkers come
/// and go; every object registered is accounted for and nothing crashes.
fn churn<D: Design>(d: Arc<D>) {
    let child = d.create_memcg(&d.root()).unwrap();
    let cid = d.memcg_id(&child);
    let stop = Arc::new(AtomicBool::new(false));
    let walkers: Vec<_> = [d.root(), child.clone()]
        .into_iter()
        .map(|m| {
            let (d, stop) = (d.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += d.shrink_slab(&m, 0, 0).unwrap();
                }
                n
            })
        })
        .collect();
    let spec = ShrinkerSpec::new("c").memcg_aware(true);
    for i in 0..2000u64 {
        let s = d.register(&spec, cache(cid, i % 7)).unwrap();
        d.set_shrinker_bit(&child, 0, &s).unwrap();
        d.free(s).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let freed: u64 = walkers.into_iter().map(|w| w.join().unwrap()).sum();
    // Root walks free nothing (objects are in the child); the child frees at most what existed.
    assert!(freed <= (0..2000u64).map(|i| i % 7).sum::<u64>());
}

#[test]
fn churn_split() {
    churn(Arc::new(Split::new(DesignConfig::default()).unwrap()));
}

#[test]
fn churn_srcu() {
    churn(Arc::new(Srcu::new(DesignConfig::default()).unwrap()));
}

#[test]
fn churn_rwsem() {
    churn(Arc::new(Rwsem::new(DesignConfig::default()).unwrap()));
}
