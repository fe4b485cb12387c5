//! Integration tests of the unified core through the facade, for both
//! feature configurations (`cargo test` and `cargo test --no-default-features`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use unishrink::shrinker::*;

/// Deadlock guard only: converts a hang into a failure. Never a performance bound.
const HANG: Duration = Duration::from_secs(120);

fn registry(nodes: usize) -> Registry {
    Registry::new(MemcgConfig {
        nr_nodes: nodes,
        ..MemcgConfig::default()
    })
}

/// A cache with `objects` objects that frees what it is asked to and counts calls.
#[derive(Default)]
struct Cache {
    objects: AtomicU64,
    counts: AtomicUsize,
    scans: AtomicUsize,
}

impl Cache {
    fn with(n: u64) -> Arc<Self> {
        let c = Arc::new(Self::default());
        c.objects.store(n, Ordering::SeqCst);
        c
    }
}

impl Shrink for Cache {
    fn count_objects(&self, _sc: &ShrinkControl<'_>) -> Count {
        self.counts.fetch_add(1, Ordering::SeqCst);
        match self.objects.load(Ordering::SeqCst) {
            0 => Count::Empty,
            n => Count::Objects(n),
        }
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        self.scans.fetch_add(1, Ordering::SeqCst);
        let have = self.objects.load(Ordering::SeqCst);
        let n = sc.nr_to_scan.min(have);
        self.objects.fetch_sub(n, Ordering::SeqCst);
        Scan::Freed(n)
    }
}

fn memcg_aware() -> ShrinkerFlags {
    ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE
}

#[test]
fn global_shrinker_is_reached_from_the_root_and_freed_cleanly() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let cache = Cache::with(1000);
    let s = reg
        .alloc(ShrinkerConfig::new("g"), cache.clone())
        .unwrap()
        .register();
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert_eq!(r.visited, 1);
    assert_eq!(r.freed, 1000, "priority 0 scans everything");
    // Global bit is sticky: an empty count does not clear it.
    reg.shrink_slab(&root, 0, 0).unwrap();
    assert!(root.shrinker_info(0).unwrap().test_bit(s.id().0 as usize));
    s.free().unwrap();
    let before = cache.counts.load(Ordering::SeqCst);
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0);
    assert_eq!(
        cache.counts.load(Ordering::SeqCst),
        before,
        "no callback after free returned"
    );
    assert!(reg.is_empty());
}

#[test]
fn ids_are_lowest_free_and_reused() {
    let reg = registry(1);
    let a = reg.alloc(ShrinkerConfig::new("a"), Cache::with(0)).unwrap();
    let b = reg.alloc(ShrinkerConfig::new("b"), Cache::with(0)).unwrap();
    let c = reg.alloc(ShrinkerConfig::new("c"), Cache::with(0)).unwrap();
    assert_eq!((a.id().0, b.id().0, c.id().0), (0, 1, 2));
    drop(b);
    let d = reg.alloc(ShrinkerConfig::new("d"), Cache::with(0)).unwrap();
    assert_eq!(d.id().0, 1);
}

#[test]
fn id_space_exhaustion_is_a_typed_error() {
    let reg = Registry::with_max_id(
        MemcgConfig {
            nr_nodes: 1,
            ..MemcgConfig::default()
        },
        1,
    );
    let _a = reg.alloc(ShrinkerConfig::new("a"), Cache::with(0)).unwrap();
    let _b = reg.alloc(ShrinkerConfig::new("b"), Cache::with(0)).unwrap();
    let err = reg
        .alloc(ShrinkerConfig::new("c"), Cache::with(0))
        .unwrap_err();
    assert_eq!(err, Error::IdSpaceExhausted);
    assert_eq!(reg.len(), 2);
}

#[test]
fn boot_path_shrinkers_before_root() {
    let reg = registry(2);
    let global = Cache::with(100);
    let numa_global = Cache::with(100);
    let g = reg
        .alloc(ShrinkerConfig::new("rcu-kfree"), global.clone())
        .unwrap()
        .register();
    let n = reg
        .alloc(
            ShrinkerConfig::new("numa").flags(ShrinkerFlags::NUMA_AWARE),
            numa_global.clone(),
        )
        .unwrap()
        .register();
    // Many ids before the root exists: it must come up sized for all of them.
    let fillers: Vec<_> = (0..200)
        .map(|i| {
            reg.alloc(ShrinkerConfig::new(format!("f{i}")), Cache::with(0))
                .unwrap()
        })
        .collect();
    let root = reg.online_root().unwrap();
    for nid in 0..2 {
        assert!(root.shrinker_info(nid).unwrap().map_nr_max() >= reg.len());
    }
    let info0 = root.shrinker_info(0).unwrap();
    let info1 = root.shrinker_info(1).unwrap();
    assert!(info0.test_bit(g.id().0 as usize));
    assert!(
        !info1.test_bit(g.id().0 as usize),
        "NUMA-unaware state lives on node 0"
    );
    assert!(info0.test_bit(n.id().0 as usize) && info1.test_bit(n.id().0 as usize));
    // Allocated-but-unregistered fillers are skipped; the two registered ones run.
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 2);
    assert_eq!(reg.shrink_slab(&root, 1, 0).unwrap().visited, 1);
    drop(fillers);
    g.free().unwrap();
    n.free().unwrap();
}

#[test]
fn bad_input_gets_typed_errors() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    assert_eq!(
        reg.shrink_slab(&root, 0, 13).unwrap_err(),
        Error::InvalidPriority(13)
    );
    assert_eq!(
        reg.shrink_slab(&root, 1, 0).unwrap_err(),
        Error::Memcg(MemcgError::NodeOutOfRange {
            nid: 1,
            nr_nodes: 1
        })
    );
    let other = registry(1);
    let other_root = other.online_root().unwrap();
    assert_eq!(
        reg.shrink_slab(&other_root, 0, 0).unwrap_err(),
        Error::Memcg(MemcgError::ForeignMemcg)
    );
    assert_eq!(
        reg.set_shrinker_bit(&root, 0, ShrinkerId(42)).unwrap_err(),
        Error::NoSuchShrinker(ShrinkerId(42))
    );
    assert_eq!(
        reg.online_root().unwrap_err(),
        Error::Memcg(MemcgError::RootAlreadyOnline)
    );
}

#[test]
fn panicking_callback_is_reported_and_the_walk_goes_on() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let bad = reg
        .alloc(
            ShrinkerConfig::new("bad"),
            from_fns(|_| Count::Objects(10), |_| panic!("boom")),
        )
        .unwrap()
        .register();
    let good_cache = Cache::with(10);
    let good = reg
        .alloc(ShrinkerConfig::new("good"), good_cache.clone())
        .unwrap()
        .register();
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert_eq!(r.visited, 2);
    assert_eq!(
        r.freed, 10,
        "the shrinker after the panicking one still ran"
    );
    assert_eq!(r.panics.len(), 1);
    assert_eq!(r.panics[0].id, bad.id());
    assert_eq!(r.panics[0].message, "boom");
    assert_eq!(bad.stats().panics, 1);
    // The reference was put: free returns (would hang otherwise).
    bad.free().unwrap();
    good.free().unwrap();
}

#[test]
fn self_free_is_an_error_not_a_deadlock_and_drop_frees_asynchronously() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let slot: Arc<Mutex<Option<RegisteredShrinker>>> = Arc::default();
    let outcome: Arc<Mutex<Option<String>>> = Arc::default();
    let (s2, o2) = (slot.clone(), outcome.clone());
    let h = reg
        .alloc(
            ShrinkerConfig::new("suicidal"),
            from_fns(
                |_| Count::Objects(1),
                move |_| {
                    if let Some(me) = s2.lock().unwrap().take() {
                        match me.free() {
                            Ok(()) => *o2.lock().unwrap() = Some("freed".into()),
                            Err(FreeError::SelfFree(me)) => {
                                *o2.lock().unwrap() = Some("self-free refused".into());
                                drop(me); // asynchronous free
                            }
                        }
                    }
                    Scan::Freed(1)
                },
            ),
        )
        .unwrap()
        .register();
    let id = h.id();
    *slot.lock().unwrap() = Some(h);
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert_eq!(r.visited, 1);
    assert_eq!(
        outcome.lock().unwrap().as_deref(),
        Some("self-free refused")
    );
    // The walk held the last reference and unpublished the shrinker.
    assert!(reg.is_empty());
    assert!(reg.shrinkers().iter().all(|s| s.id != id));
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0);
}

/// A callback that runs a nested walk: inside the inner shrinker's callback,
/// freeing the outer one (still running further out on this thread) is a
/// self-free; once the nested walk is over, the outer callback may free the
/// inner shrinker.
#[cfg(feature = "memcg")]
#[test]
fn self_free_is_detected_through_a_nested_walk() {
    type Slot = Arc<Mutex<Option<RegisteredShrinker>>>;
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let child = reg.create_memcg(&root).unwrap();
    let (outer_slot, inner_slot): (Slot, Slot) = Default::default();
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();

    let (os, s1) = (outer_slot.clone(), seen.clone());
    let inner = reg
        .alloc(
            ShrinkerConfig::new("inner").flags(ShrinkerFlags::MEMCG_AWARE),
            from_fns(
                |_| Count::Objects(1),
                move |_| {
                    let outer = os.lock().unwrap().take().expect("outer handle");
                    match outer.free() {
                        Ok(()) => s1.lock().unwrap().push("outer freed from inner"),
                        Err(FreeError::SelfFree(h)) => {
                            s1.lock().unwrap().push("outer refused");
                            *os.lock().unwrap() = Some(h);
                        }
                    }
                    Scan::Freed(1)
                },
            ),
        )
        .unwrap()
        .register();
    inner.set_bit(&child, 0).unwrap();
    let inner_id = inner.id();
    *inner_slot.lock().unwrap() = Some(inner);

    let (is, s2, reg2, child2) = (inner_slot.clone(), seen.clone(), reg.clone(), child.clone());
    let outer = reg
        .alloc(
            ShrinkerConfig::new("outer"),
            from_fns(
                |_| Count::Objects(1),
                move |_| {
                    if let Some(inner) = is.lock().unwrap().take() {
                        let nested = reg2.shrink_slab(&child2, 0, 0).unwrap();
                        assert_eq!(nested.visited, 1);
                        match inner.free() {
                            Ok(()) => s2.lock().unwrap().push("inner freed from outer"),
                            Err(FreeError::SelfFree(_)) => s2.lock().unwrap().push("inner refused"),
                        }
                    }
                    Scan::Freed(1)
                },
            ),
        )
        .unwrap()
        .register();
    *outer_slot.lock().unwrap() = Some(outer);

    // On a thread, so that a missed self-free (a wait for itself) fails the
    // test instead of hanging it.
    let (done_tx, done_rx) = mpsc::channel();
    let (reg3, root3) = (reg.clone(), root.clone());
    std::thread::spawn(move || done_tx.send(reg3.shrink_slab(&root3, 0, 0).unwrap().visited));
    assert_eq!(done_rx.recv_timeout(HANG).unwrap(), 1);
    assert_eq!(
        *seen.lock().unwrap(),
        ["outer refused", "inner freed from outer"]
    );
    assert!(reg.shrinkers().iter().all(|s| s.id != inner_id));
    // Outside every callback the outer shrinker frees normally.
    outer_slot.lock().unwrap().take().unwrap().free().unwrap();
    assert!(reg.is_empty());
}

/// A shrinker whose scan is parked inside a reclaim walk on another thread.
struct Parked {
    handle: RegisteredShrinker,
    release: mpsc::Sender<()>,
    walker: std::thread::JoinHandle<ShrinkReport>,
}

/// Registers `name`, starts a walk on the root, and returns once its scan has
/// entered (and is blocked until `release` is sent). `on_event` sees
/// "callback start" and "callback end".
fn park_in_scan(
    reg: &Registry,
    root: &Memcg,
    name: &str,
    on_event: impl Fn(&'static str) + Send + Sync + 'static,
) -> Parked {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let handle = reg
        .alloc(
            ShrinkerConfig::new(name),
            from_fns(
                |_| Count::Objects(1),
                move |_| {
                    on_event("callback start");
                    entered_tx.send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                    on_event("callback end");
                    Scan::Freed(1)
                },
            ),
        )
        .unwrap()
        .register();
    let walker = {
        let (reg, root) = (reg.clone(), root.clone());
        std::thread::spawn(move || reg.shrink_slab(&root, 0, 0).unwrap())
    };
    entered_rx.recv_timeout(HANG).unwrap();
    Parked {
        handle,
        release: release_tx,
        walker,
    }
}

#[test]
fn free_waits_for_the_in_flight_callback() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let events: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let ev = events.clone();
    let parked = park_in_scan(&reg, &root, "slow", move |e| ev.lock().unwrap().push(e));
    let (freed_tx, freed_rx) = mpsc::channel();
    let ev = events.clone();
    let h = parked.handle;
    let freer = std::thread::spawn(move || {
        h.free().unwrap();
        ev.lock().unwrap().push("free returned");
        freed_tx.send(()).unwrap();
    });
    // free cannot have returned while the callback is parked on our channel.
    assert!(freed_rx.try_recv().is_err());
    parked.release.send(()).unwrap();
    freed_rx.recv_timeout(HANG).unwrap();
    freer.join().unwrap();
    assert_eq!(parked.walker.join().unwrap().freed, 1);
    assert_eq!(
        *events.lock().unwrap(),
        vec!["callback start", "callback end", "free returned"]
    );
}

#[test]
fn blocked_callback_does_not_block_other_registrations() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let parked = park_in_scan(&reg, &root, "blocked", |_| {});
    let still_blocked = Arc::new(AtomicBool::new(true));
    let (done_tx, done_rx) = mpsc::channel();
    let churn = {
        let (reg, still_blocked) = (reg.clone(), still_blocked.clone());
        std::thread::spawn(move || {
            for i in 0..1000 {
                let s = reg
                    .alloc(ShrinkerConfig::new(format!("c{i}")), Cache::with(1))
                    .unwrap()
                    .register();
                s.free().unwrap();
                assert!(
                    still_blocked.load(Ordering::SeqCst),
                    "the blocked callback was released early"
                );
            }
            done_tx.send(()).unwrap();
        })
    };
    // All 1000 cycles complete while the other shrinker's callback is still blocked.
    done_rx
        .recv_timeout(HANG)
        .expect("register/free cycles waited for an unrelated callback");
    churn.join().unwrap();
    still_blocked.store(false, Ordering::SeqCst);
    parked.release.send(()).unwrap();
    parked.walker.join().unwrap();
    parked.handle.free().unwrap();
}

#[test]
fn concurrent_walks_and_churn_keep_refcounts_balanced() {
    let reg = registry(1);
    let root = reg.online_root().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(3));
    let walkers: Vec<_> = (0..2)
        .map(|_| {
            let (reg, root, stop, start) = (reg.clone(), root.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += reg.shrink_slab(&root, 0, 6).unwrap().visited as u64;
                }
                n
            })
        })
        .collect();
    start.wait();
    for i in 0..2000 {
        let freed = Arc::new(AtomicBool::new(false));
        let f2 = freed.clone();
        let s = reg
            .alloc(
                ShrinkerConfig::new(format!("s{i}")),
                from_fns(
                    move |_| {
                        assert!(!f2.load(Ordering::SeqCst), "callback after free returned");
                        Count::Objects(64)
                    },
                    |sc| Scan::Freed(sc.nr_to_scan),
                ),
            )
            .unwrap()
            .register();
        s.free().unwrap();
        freed.store(true, Ordering::SeqCst);
    }
    stop.store(true, Ordering::Relaxed);
    for w in walkers {
        w.join().unwrap();
    }
    assert!(reg.is_empty());
}

#[cfg(feature = "memcg")]
mod with_memcg {
    use super::*;

    #[test]
    fn memcg_aware_shrinker_reached_only_where_its_bit_is_set() {
        let reg = registry(1);
        let root = reg.online_root().unwrap();
        let a = reg.create_memcg(&root).unwrap();
        let b = reg.create_memcg(&root).unwrap();
        let cache = Cache::with(100);
        let s = reg
            .alloc(ShrinkerConfig::new("m").flags(memcg_aware()), cache.clone())
            .unwrap()
            .register();
        assert_eq!(reg.shrink_slab(&a, 0, 0).unwrap().visited, 0, "no bit yet");
        s.set_bit(&a, 0).unwrap();
        assert_eq!(reg.shrink_slab(&b, 0, 0).unwrap().visited, 0);
        assert_eq!(
            reg.shrink_slab(&root, 0, 0).unwrap().visited,
            0,
            "not charged to the root"
        );
        let r = reg.shrink_slab(&a, 0, 0).unwrap();
        assert_eq!((r.visited, r.freed), (1, 100));
        // Now empty: SHRINK_EMPTY clears the bit (and the recount finds nothing).
        reg.shrink_slab(&a, 0, 0).unwrap();
        assert!(!a.shrinker_info(0).unwrap().test_bit(s.id().0 as usize));
        assert_eq!(reg.shrink_slab(&a, 0, 0).unwrap().visited, 0);
        s.free().unwrap();
    }

    #[test]
    fn shrink_empty_recount_restores_a_bit_when_objects_appear() {
        let reg = registry(1);
        let root = reg.online_root().unwrap();
        let a = reg.create_memcg(&root).unwrap();
        // First count says empty; the recount (after the clear) finds objects,
        // as if a cache added one in between.
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let s = reg
            .alloc(
                ShrinkerConfig::new("racy").flags(memcg_aware()),
                from_fns(
                    move |_| match c2.fetch_add(1, Ordering::SeqCst) {
                        0 => Count::Empty,
                        _ => Count::Objects(1),
                    },
                    |_| Scan::Freed(0),
                ),
            )
            .unwrap()
            .register();
        s.set_bit(&a, 0).unwrap();
        reg.shrink_slab(&a, 0, 12).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(
            a.shrinker_info(0).unwrap().test_bit(s.id().0 as usize),
            "bit restored"
        );
        assert_eq!(s.stats().bit_restores, 1);
        s.free().unwrap();
    }

    #[test]
    fn numa_unaware_shrinkers_use_node_zero() {
        let reg = registry(2);
        let root = reg.online_root().unwrap();
        let a = reg.create_memcg(&root).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let s = reg
            .alloc(
                ShrinkerConfig::new("flat").flags(ShrinkerFlags::MEMCG_AWARE),
                from_fns(
                    move |sc| {
                        s2.lock().unwrap().push(sc.nid);
                        Count::Objects(1)
                    },
                    |_| Scan::Freed(0),
                ),
            )
            .unwrap()
            .register();
        s.set_bit(&a, 1).unwrap();
        assert!(a.shrinker_info(0).unwrap().test_bit(s.id().0 as usize));
        assert!(!a.shrinker_info(1).unwrap().test_bit(s.id().0 as usize));
        assert_eq!(reg.shrink_slab(&a, 1, 0).unwrap().visited, 0);
        assert_eq!(reg.shrink_slab(&a, 0, 0).unwrap().visited, 1);
        assert_eq!(*seen.lock().unwrap(), vec![0]);
        s.free().unwrap();
    }

    #[test]
    fn kmem_off_calls_only_nonslab_shrinkers_below_the_root() {
        let reg = Registry::new(MemcgConfig {
            nr_nodes: 1,
            kmem: false,
            ..MemcgConfig::default()
        });
        let root = reg.online_root().unwrap();
        let a = reg.create_memcg(&root).unwrap();
        let slab = reg
            .alloc(
                ShrinkerConfig::new("slab").flags(memcg_aware()),
                Cache::with(5),
            )
            .unwrap()
            .register();
        let nonslab = reg
            .alloc(
                ShrinkerConfig::new("nonslab").flags(memcg_aware() | ShrinkerFlags::NONSLAB),
                Cache::with(5),
            )
            .unwrap()
            .register();
        slab.set_bit(&a, 0).unwrap();
        nonslab.set_bit(&a, 0).unwrap();
        let r = reg.shrink_slab(&a, 0, 0).unwrap();
        assert_eq!((r.visited, r.freed), (1, 5));
        assert!(
            a.shrinker_info(0).unwrap().test_bit(slab.id().0 as usize),
            "skipped, not cleared"
        );
    }

    #[test]
    fn offline_memcg_is_skipped_and_its_deferred_work_moves_up() {
        let reg = registry(1);
        let root = reg.online_root().unwrap();
        let a = reg.create_memcg(&root).unwrap();
        let s = reg
            .alloc(
                ShrinkerConfig::new("m").flags(memcg_aware()),
                Cache::with(1_000_000),
            )
            .unwrap()
            .register();
        s.set_bit(&a, 0).unwrap();
        reg.shrink_slab(&a, 0, 12).unwrap();
        let id = s.id().0 as usize;
        let deferred = a.shrinker_info(0).unwrap().nr_deferred(id);
        assert_eq!(deferred, 104, "488 targeted, 384 scanned");
        reg.offline_memcg(&a).unwrap();
        assert_eq!(root.shrinker_info(0).unwrap().nr_deferred(id), 104);
        assert_eq!(a.shrinker_info(0).unwrap().nr_deferred(id), 0);
        assert_eq!(reg.shrink_slab(&a, 0, 0).unwrap(), ShrinkReport::default());
        assert_eq!(
            reg.set_shrinker_bit(&a, 0, s.id()).unwrap_err(),
            Error::Memcg(MemcgError::Offline(a.id()))
        );
    }

    #[test]
    fn ids_beyond_capacity_grow_every_memcg() {
        let reg = registry(2);
        let root = reg.online_root().unwrap();
        let kids: Vec<_> = (0..5).map(|_| reg.create_memcg(&root).unwrap()).collect();
        let hs: Vec<_> = (0..300)
            .map(|i| {
                reg.alloc(ShrinkerConfig::new(format!("s{i}")), Cache::with(0))
                    .unwrap()
            })
            .collect();
        for m in kids.iter().chain(std::iter::once(&root)) {
            for nid in 0..2 {
                assert!(m.shrinker_info(nid).unwrap().map_nr_max() >= 300);
            }
        }
        drop(hs);
    }
}

#[cfg(not(feature = "memcg"))]
mod without_memcg {
    use super::*;

    #[test]
    fn dummy_root_holds_every_shrinker() {
        let reg = registry(1);
        let root = reg.online_root().unwrap();
        assert_eq!(
            reg.create_memcg(&root).unwrap_err(),
            Error::Memcg(MemcgError::Disabled)
        );
        let s = reg
            .alloc(
                ShrinkerConfig::new("m").flags(memcg_aware()),
                Cache::with(10),
            )
            .unwrap();
        assert!(
            !s.flags().contains(ShrinkerFlags::MEMCG_AWARE),
            "flag dropped as in the kernel"
        );
        let s = s.register();
        let r = reg.shrink_slab(&root, 0, 0).unwrap();
        assert_eq!((r.visited, r.freed), (1, 10));
        s.free().unwrap();
    }
}

#[test]
fn runtime_disabled_memcg_acts_like_compiled_out() {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        disabled: true,
        ..MemcgConfig::default()
    });
    // Registered before the root: the boot path.
    let s = reg
        .alloc(
            ShrinkerConfig::new("m").flags(memcg_aware()),
            Cache::with(10),
        )
        .unwrap()
        .register();
    assert!(!s.flags().contains(ShrinkerFlags::MEMCG_AWARE));
    let root = reg.online_root().unwrap();
    assert_eq!(
        reg.create_memcg(&root).unwrap_err(),
        Error::Memcg(MemcgError::Disabled)
    );
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert_eq!((r.visited, r.freed), (1, 10));
    s.free().unwrap();
}
