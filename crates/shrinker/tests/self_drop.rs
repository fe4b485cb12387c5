//! A handle dropped inside its own callback while other threads walk.
//!
//! Handles hold their shrinker without a reference count (the IDR's is the
//! only one), so the asynchronous free — the handle asks, whichever walk puts
//! the last reference unpublishes — must never touch the shrinker after that
//! walk may have let it go. Run under AddressSanitizer by
//! `cargo xtask asan --lifetime`; here it checks that every shrinker is
//! unpublished and its callbacks dropped exactly once, and that the shells
//! are reused afterwards.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use unishrink_shrinker::*;

/// Callbacks that drop their own handle on their first scan, and count
/// their own drops.
struct SelfDropping {
    me: Arc<Mutex<Option<RegisteredShrinker>>>,
    drops: Arc<AtomicUsize>,
}

impl Shrink for SelfDropping {
    fn count_objects(&self, _: &ShrinkControl<'_>) -> Count {
        Count::Objects(64)
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        // Dropping it here is a free from inside the shrinker's own callback:
        // refused as a wait, done asynchronously by the last walk.
        drop(self.me.lock().unwrap().take());
        Scan::Freed(sc.nr_to_scan)
    }
}

impl Drop for SelfDropping {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handles_dropped_in_their_own_callback_under_concurrent_walks() {
    const ROUNDS: usize = 300;
    const PER_ROUND: usize = 8;
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Two walkers keep walking the root: any of them may run a callback that
    // drops its handle, and any of them may hold the last reference.
    let walkers: Vec<_> = (0..2)
        .map(|_| {
            let (reg, root, stop) = (reg.clone(), root.clone(), stop.clone());
            thread::spawn(move || {
                let mut walks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    reg.shrink_slab(&root, 0, 0).unwrap();
                    walks += 1;
                }
                walks
            })
        })
        .collect();
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            let me = Arc::new(Mutex::new(None));
            let h = reg
                .alloc(
                    ShrinkerConfig::new(format!("self-drop-{round}-{i}")),
                    SelfDropping {
                        me: me.clone(),
                        drops: drops.clone(),
                    },
                )
                .unwrap()
                .register();
            *me.lock().unwrap() = Some(h);
        }
        // Walk here too, so that the round ends whatever the walkers do: a
        // walk that finds a shrinker calls its scan, which drops the handle;
        // the walk holding the last reference unpublishes it. Every visited
        // shrinker is gone when the walk that visited it returns.
        // (The walk that unpublishes drops the callbacks just after, so a
        // drop may still be under way when the registry looks empty; the
        // count is checked once the walkers are joined.)
        while !reg.is_empty() {
            reg.shrink_slab(&root, 0, 0).unwrap();
        }
        assert!(
            drops.load(Ordering::SeqCst) <= (round + 1) * PER_ROUND,
            "round {round}: a callback dropped twice"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let walks: u64 = walkers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(walks > 0);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        ROUNDS * PER_ROUND,
        "every callback dropped exactly once"
    );
    assert!(reg.is_empty());
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0);
}
