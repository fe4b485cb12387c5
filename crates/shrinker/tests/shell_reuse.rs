//! A freed shrinker's memory is parked and reused by a later `alloc` (the
//! registry's shell cache). Whatever memory it sits in, a new shrinker must
//! be new: its own name, flags, scan parameters and callbacks, zeroed
//! counters; and every callback object is dropped exactly once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use unishrink_shrinker::*;

/// Callbacks that report their tag and count their drops.
struct Tagged {
    tag: u64,
    drops: Arc<AtomicUsize>,
    panic_on_drop: bool,
}

impl Shrink for Tagged {
    fn count_objects(&self, _: &ShrinkControl<'_>) -> Count {
        Count::Objects(self.tag + 1)
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        Scan::Freed(sc.nr_to_scan.min(self.tag + 1))
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_drop {
            panic!("callbacks' drop panics");
        }
    }
}

/// Lets grace periods pass so that parked shells become reusable (no sleep:
/// with nobody else pinned, each flush can advance the epoch).
fn let_grace_periods_pass() {
    for _ in 0..8 {
        unishrink_xarray::pin().flush();
    }
}

fn registry() -> (Registry, Memcg) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    (reg, root)
}

#[test]
fn a_reused_shell_is_a_new_shrinker() {
    let (reg, root) = registry();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut reused = 0;
    // Several batches of the shell cache (256 shells each) are sealed and reused.
    const ROUNDS: u64 = 1200;
    for round in 0..ROUNDS {
        let memcg_aware = round % 2 == 0;
        let flags = if memcg_aware {
            ShrinkerFlags::MEMCG_AWARE
        } else {
            ShrinkerFlags::NONE
        };
        let parked_before = reg.parked_shells();
        let a = reg
            .alloc(
                ShrinkerConfig::new(format!("shrinker-{round}"))
                    .flags(flags)
                    .seeks(1 + (round % 4) as u32)
                    .batch(16 + round),
                Tagged {
                    tag: round,
                    drops: drops.clone(),
                    panic_on_drop: false,
                },
            )
            .unwrap();
        if reg.parked_shells() < parked_before {
            reused += 1;
        }
        if round % 5 == 0 {
            // Allocated, never registered: dropped, its callbacks too.
            drop(a);
            assert_eq!(drops.load(Ordering::SeqCst) as u64, round + 1);
            continue;
        }
        let h = a.register();
        assert_eq!(h.name(), format!("shrinker-{round}"));
        assert_eq!(h.stats(), StatsSnapshot::default(), "round {round}");
        let snap = reg
            .shrinkers()
            .into_iter()
            .find(|s| s.id == h.id())
            .unwrap();
        assert_eq!(snap.name, format!("shrinker-{round}"));
        // Effective flags: without memcgs, memcg-aware shrinkers are global.
        let want = if reg.memcgs().is_disabled() {
            flags.without(ShrinkerFlags::MEMCG_AWARE)
        } else {
            flags
        };
        assert_eq!(snap.flags, want);
        assert_eq!(snap.seeks, 1 + (round % 4) as u32);
        assert_eq!(snap.batch, 16 + round);
        assert!(snap.registered);
        // The new callbacks answer, not the shell's previous ones.
        assert_eq!(reg.count_one(h.id(), &root, 0).unwrap(), Some(round + 1));
        if memcg_aware {
            h.set_bit(&root, 0).unwrap();
        }
        reg.shrink_slab(&root, 0, 0).unwrap();
        assert_eq!(h.stats().calls, 1, "round {round}");
        h.free().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst) as u64, round + 1);
        if round % 3 == 0 {
            let_grace_periods_pass();
        }
    }
    assert!(reused > 300, "shells were reused only {reused} times");
    assert_eq!(reg.len(), 0);
    drop(reg);
    assert_eq!(drops.load(Ordering::SeqCst) as u64, ROUNDS);
}

#[test]
fn a_panicking_drop_of_the_callbacks_still_unpublishes() {
    let (reg, _root) = registry();
    let drops = Arc::new(AtomicUsize::new(0));
    let h = reg
        .alloc(
            ShrinkerConfig::new("panics"),
            Tagged {
                tag: 0,
                drops: drops.clone(),
                panic_on_drop: true,
            },
        )
        .unwrap()
        .register();
    let id = h.id();
    assert!(catch_unwind(AssertUnwindSafe(|| h.free())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(reg.len(), 0, "the shrinker must be gone from the IDR");
    // Its memory is parked like any other freed shrinker's.
    assert_eq!(reg.parked_shells(), 1);
    let_grace_periods_pass();
    // Its id serves the next shrinker.
    let again = reg
        .alloc(
            ShrinkerConfig::new("next"),
            from_fns(|_| Count::Empty, |_| Scan::Stop),
        )
        .unwrap()
        .register();
    assert_eq!(again.id(), id);
    assert_eq!(again.name(), "next");
    again.free().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}
