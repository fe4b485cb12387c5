//! Fault injection (feature `fault-injection` of unishrink-shrinker, enabled
//! by this crate's dev-dependency): every fault has a defined outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use parking_lot::Mutex;
use unishrink_shrinker::*;

fn registry() -> (Registry, Memcg) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    (reg, root)
}

fn aware() -> ShrinkerConfig<'static> {
    ShrinkerConfig::new("t").flags(ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE)
}

fn fixed(n: u64) -> impl Shrink {
    from_fns(move |_| Count::Objects(n), |sc| Scan::Freed(sc.nr_to_scan))
}

#[test]
fn idr_alloc_failure_is_oom_and_consumes_no_id() {
    let (reg, _root) = registry();
    let a = reg.alloc(aware(), fixed(1)).unwrap().register();
    reg.faults().fail_idr_alloc(1);
    assert_eq!(
        reg.alloc(aware(), fixed(1)).unwrap_err(),
        Error::OutOfMemory
    );
    assert_eq!(reg.faults().injected(), 1);
    assert_eq!(reg.len(), 1);
    let b = reg.alloc(aware(), fixed(1)).unwrap();
    assert_eq!(b.id(), ShrinkerId(1), "the failed alloc used up an id");
    drop(b);
    a.free().unwrap();
}

/// A failed shrinker_info expansion (after growing some memcgs, as a real
/// mid-way failure would) releases the id, loses no bit and no deferred
/// count, and leaves every memcg at least at the recorded capacity; the
/// retry gets the same id and works in every memcg, old and new.
#[test]
fn info_expand_failure_releases_id_and_keeps_bits() {
    let (reg, root) = registry();
    let kids: Vec<Memcg> = (0..3).map(|_| reg.create_memcg(&root).unwrap()).collect();
    let all: Vec<Memcg> = std::iter::once(root.clone())
        .chain(kids.iter().cloned())
        .collect();
    let first: Vec<RegisteredShrinker> = (0..64)
        .map(|_| reg.alloc(aware(), fixed(0)).unwrap().register())
        .collect();
    assert_eq!(reg.memcgs().map_nr_max(), 64);
    for (i, m) in all.iter().enumerate() {
        for nid in 0..2 {
            for s in first.iter().skip(i).step_by(3) {
                s.set_bit(m, nid).unwrap();
                let info = m.shrinker_info(nid).unwrap();
                info.add_nr_deferred(s.id().0 as usize, 7).unwrap();
            }
        }
    }
    let snapshot = |m: &Memcg| -> Vec<(bool, u64)> {
        (0..2)
            .flat_map(|nid| {
                let info = m.shrinker_info(nid).unwrap();
                (0..64).map(move |id| (info.test_bit(id), info.nr_deferred(id)))
            })
            .collect()
    };
    let before: Vec<_> = all.iter().map(snapshot).collect();

    reg.faults().fail_info_expand(1, 2);
    for flags in [ShrinkerFlags::MEMCG_AWARE, ShrinkerFlags::NONE] {
        reg.faults().fail_info_expand(1, 2);
        let err = reg.alloc(ShrinkerConfig::new("t").flags(flags), fixed(1));
        assert_eq!(err.unwrap_err(), Error::OutOfMemory);
        assert_eq!(reg.len(), 64, "the failed shrinker is still in the IDR");
        assert_eq!(
            reg.memcgs().map_nr_max(),
            64,
            "capacity raised by a failed growth"
        );
    }
    assert_eq!(reg.faults().injected(), 2);
    let grown = all
        .iter()
        .filter(|m| m.shrinker_info(0).unwrap().map_nr_max() > 64)
        .count();
    assert_eq!(
        grown, 2,
        "the injected failure should leave 2 memcgs half-grown"
    );
    for (m, b) in all.iter().zip(&before) {
        assert_eq!(&snapshot(m), b, "{m:?} lost a bit or a deferred count");
        assert!(
            !m.shrinker_info(0).unwrap().test_bit(64),
            "failed global left a sticky bit"
        );
    }

    let late = reg.create_memcg(&root).unwrap();
    let s = reg.alloc(aware(), fixed(1000)).unwrap().register();
    assert_eq!(
        s.id(),
        ShrinkerId(64),
        "the id of the failed alloc was not released"
    );
    for m in all.iter().chain([&late]) {
        for nid in 0..2 {
            s.set_bit(m, nid).unwrap();
        }
        let r = reg.shrink_slab(m, 1, 0).unwrap();
        assert!(r.freed > 0, "{m:?}: the new shrinker was not reached");
    }
    s.free().unwrap();
    for h in first {
        h.free().unwrap();
    }
}

#[test]
fn unit_alloc_failure_in_set_shrinker_bit() {
    let (reg, root) = registry();
    let child = reg.create_memcg(&root).unwrap();
    let s = reg.alloc(aware(), fixed(100)).unwrap().register();
    reg.faults().fail_unit_alloc(1);
    assert_eq!(s.set_bit(&child, 1).unwrap_err(), Error::OutOfMemory);
    let info = child.shrinker_info(1).unwrap();
    assert!(!info.test_bit(s.id().0 as usize));
    assert_eq!(reg.shrink_slab(&child, 1, 0).unwrap().visited, 0);
    s.set_bit(&child, 1).unwrap();
    assert!(info.test_bit(s.id().0 as usize));
    assert_eq!(reg.shrink_slab(&child, 1, 0).unwrap().visited, 1);
    s.free().unwrap();
}

/// Panics in either callback are caught and reported with the shrinker's
/// id; the walk goes on; references stay balanced (free does not hang);
/// the deferred work of the panicking pass is kept.
#[test]
fn panicking_callbacks_are_reported() {
    let (reg, root) = registry();
    let in_count = reg
        .alloc(
            ShrinkerConfig::new("count-panics"),
            from_fns(|_| panic!("count boom"), |_| Scan::Freed(0)),
        )
        .unwrap()
        .register();
    let in_scan = reg
        .alloc(
            ShrinkerConfig::new("scan-panics").seeks(0),
            from_fns(|_| Count::Objects(1000), |_| panic!("scan boom")),
        )
        .unwrap()
        .register();
    let fine = reg
        .alloc(ShrinkerConfig::new("fine").seeks(0), fixed(1000))
        .unwrap()
        .register();
    let r = reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap();
    let mut panics: Vec<_> = r
        .panics
        .iter()
        .map(|p| (p.id, p.message.as_str()))
        .collect();
    panics.sort();
    assert_eq!(
        panics,
        vec![(in_count.id(), "count boom"), (in_scan.id(), "scan boom")]
    );
    assert_eq!(r.visited, 3);
    assert_eq!(r.freed, 384, "the healthy shrinker was not fully served");
    let info = root.shrinker_info(0).unwrap();
    assert_eq!(
        info.nr_deferred(in_scan.id().0 as usize),
        500,
        "deferred work dropped"
    );
    for s in [in_count, in_scan, fine] {
        s.free().unwrap();
    }
    assert!(reg.is_empty());
}

/// A callback that blocks delays its own `free` (until it returns) and
/// nothing else: other shrinkers register and free meanwhile.
#[test]
fn blocked_callback_delays_only_its_own_free() {
    let (reg, root) = registry();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let blocker = reg
        .alloc(
            ShrinkerConfig::new("blocker"),
            from_fns(
                |_| Count::Objects(10),
                move |_| {
                    let _ = entered_tx.send(());
                    let _ = release_rx.lock().recv();
                    Scan::Freed(0)
                },
            ),
        )
        .unwrap()
        .register();
    let blocker_name = blocker.name().to_owned();
    let walker = {
        let (reg, root) = (reg.clone(), root.clone());
        thread::spawn(move || reg.shrink_slab(&root, 0, 0).unwrap())
    };
    entered_rx.recv().unwrap();

    // Registration and free of another shrinker are not blocked by reclaim.
    let other = reg
        .alloc(ShrinkerConfig::new("other"), fixed(5))
        .unwrap()
        .register();
    other.free().unwrap();

    let freed = Arc::new(AtomicBool::new(false));
    let freer = {
        let freed = freed.clone();
        thread::spawn(move || {
            blocker.free().unwrap();
            freed.store(true, Ordering::SeqCst);
        })
    };
    // Wait until the free has started (the shrinker is marked dying, so it
    // left the snapshot): from then on only our callback holds it back.
    while reg.shrinkers().iter().any(|s| s.name == blocker_name) {
        thread::yield_now();
    }
    assert!(
        !freed.load(Ordering::SeqCst),
        "free returned while its callback ran"
    );
    release_tx.send(()).unwrap();
    freer.join().unwrap();
    assert!(freed.load(Ordering::SeqCst));
    let r = walker.join().unwrap();
    assert_eq!(r.visited, 1);
    assert!(reg.is_empty());
}

/// Absurd counts saturate instead of overflowing; a callee reporting zero
/// scanned ends the pass (the kernel would loop forever).
#[test]
fn absurd_counts_saturate() {
    let (reg, root) = registry();
    let greedy = |scanned: u64| {
        from_fns(
            |_| Count::Objects(u64::MAX),
            move |sc| {
                sc.nr_scanned = scanned;
                Scan::Freed(u64::MAX)
            },
        )
    };
    let a = reg
        .alloc(ShrinkerConfig::new("a"), greedy(u64::MAX))
        .unwrap()
        .register();
    let b = reg
        .alloc(ShrinkerConfig::new("b"), greedy(0))
        .unwrap()
        .register();
    let more_than_asked = reg
        .alloc(
            ShrinkerConfig::new("c").seeks(0),
            from_fns(
                |_| Count::Objects(300),
                |sc| {
                    sc.nr_scanned = sc.nr_to_scan * 1000;
                    Scan::Freed(1_000_000)
                },
            ),
        )
        .unwrap()
        .register();
    for priority in [0, DEF_PRIORITY] {
        let r = reg.shrink_slab(&root, 0, priority).unwrap();
        assert_eq!(r.visited, 3);
        assert_eq!(r.freed, u64::MAX, "freed must saturate");
        assert!(r.panics.is_empty(), "{:?}", r.panics);
    }
    let info = root.shrinker_info(0).unwrap();
    assert_eq!(info.nr_deferred(more_than_asked.id().0 as usize), 0);
    for s in [a, b, more_than_asked] {
        s.free().unwrap();
    }
}

/// `free` from inside the shrinker's own callback is refused with
/// `SelfFree` (it would wait for itself); dropping the returned handle there
/// frees the shrinker when the walk puts its reference: it is never called
/// again and its id is reused.
#[test]
fn self_free_is_refused_then_freed_asynchronously() {
    let (reg, root) = registry();
    let slot: Arc<Mutex<Option<RegisteredShrinker>>> = Arc::new(Mutex::new(None));
    let calls = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicBool::new(false));
    let s = {
        let (slot, calls, refused) = (slot.clone(), calls.clone(), refused.clone());
        reg.alloc(
            ShrinkerConfig::new("suicidal"),
            from_fns(
                |_| Count::Objects(10),
                move |sc| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(h) = slot.lock().take() {
                        match h.free() {
                            Err(FreeError::SelfFree(h)) => {
                                refused.store(true, Ordering::SeqCst);
                                drop(h);
                            }
                            Ok(()) => panic!("self-free was not refused"),
                        }
                    }
                    Scan::Freed(sc.nr_to_scan)
                },
            ),
        )
        .unwrap()
        .register()
    };
    let id = s.id();
    *slot.lock() = Some(s);
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert!(r.panics.is_empty());
    assert!(refused.load(Ordering::SeqCst));
    assert!(reg.is_empty(), "the walk's last put did not unpublish it");
    let n = calls.load(Ordering::SeqCst);
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        n,
        "called after its handle was dropped"
    );
    let next = reg.alloc(ShrinkerConfig::new("next"), fixed(1)).unwrap();
    assert_eq!(next.id(), id, "the id was not released");
}

/// A memcg taken offline by a callback in the middle of a walk over it:
/// the offline succeeds (walks hold nothing it waits for), the walk
/// finishes its snapshot of set bits, the deferred work present at the
/// offline moves to the parent, and later walks of the memcg do nothing.
/// Work deferred by the in-flight walk *after* the offline stays in the
/// dead memcg's info (as in the kernel, where reparenting does not wait for
/// walkers).
#[test]
fn memcg_offline_in_the_middle_of_a_walk() {
    let (reg, root) = registry();
    let child = reg.create_memcg(&root).unwrap();
    let offlined = Arc::new(AtomicBool::new(false));
    let a = {
        let (reg, child, offlined) = (reg.clone(), child.clone(), offlined.clone());
        reg.clone()
            .alloc(
                aware().seeks(0),
                from_fns(
                    |_| Count::Objects(1000),
                    move |sc| {
                        if !offlined.swap(true, Ordering::SeqCst) {
                            reg.offline_memcg(&child).unwrap();
                        }
                        Scan::Freed(sc.nr_to_scan)
                    },
                ),
            )
            .unwrap()
            .register()
    };
    let b = reg.alloc(aware().seeks(0), fixed(1000)).unwrap().register();
    assert!(a.id() < b.id(), "a must be walked first");
    a.set_bit(&child, 0).unwrap();
    b.set_bit(&child, 0).unwrap();
    let info = child.shrinker_info(0).unwrap();
    info.add_nr_deferred(b.id().0 as usize, 50).unwrap();

    let r = reg.shrink_slab(&child, 0, DEF_PRIORITY).unwrap();
    assert!(offlined.load(Ordering::SeqCst));
    assert!(!child.is_online());
    assert_eq!(r.visited, 2, "the walk did not finish its snapshot");
    assert!(r.panics.is_empty(), "{:?}", r.panics);
    let parent = root.shrinker_info(0).unwrap();
    assert_eq!(
        parent.nr_deferred(b.id().0 as usize),
        50,
        "deferred work lost at offline"
    );
    assert_eq!(parent.nr_deferred(a.id().0 as usize), 0);
    assert!(child.children().is_empty());
    assert!(
        root.children().is_empty(),
        "offline did not unlink the child"
    );
    assert_eq!(
        reg.shrink_slab(&child, 0, 0).unwrap(),
        ShrinkReport::default()
    );
    a.free().unwrap();
    b.free().unwrap();
}

/// The same outcome with the failure raised by shrinker-info's own
/// allocation hook (its `fault-injection` feature) rather than the
/// registry's: the unit allocation of a fresh (memcg, node) fails.
#[test]
fn unit_alloc_failure_from_shrinker_info_itself() {
    let (reg, root) = registry();
    let child = reg.create_memcg(&root).unwrap();
    let s = reg.alloc(aware(), fixed(100)).unwrap().register();
    let info = child.shrinker_info(1).unwrap();
    info.fail_next_allocations(1);
    assert_eq!(s.set_bit(&child, 1).unwrap_err(), Error::OutOfMemory);
    assert!(!info.test_bit(s.id().0 as usize));
    s.set_bit(&child, 1).unwrap();
    assert!(info.test_bit(s.id().0 as usize));
    assert_eq!(reg.shrink_slab(&child, 1, 0).unwrap().visited, 1);
    s.free().unwrap();
}
