//! A walk nobody watches (no tracing subscriber, per-shrinker counters off)
//! keeps the scan figures in registers instead of a `ScanTrace`. It must
//! compute exactly what the recorded walk computes: the same objects freed,
//! the same deferred work left behind, pass after pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use unishrink_shrinker::*;

/// A cache of `objects` that frees up to `nr_to_scan`, and can be told to
/// report fewer scanned objects than asked (as real caches do).
struct Cache {
    objects: AtomicU64,
    scanned_ratio: u64,
}

impl Shrink for Cache {
    fn count_objects(&self, _: &ShrinkControl<'_>) -> Count {
        match self.objects.load(Ordering::Relaxed) {
            0 => Count::Empty,
            n => Count::Objects(n),
        }
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        let have = self.objects.load(Ordering::Relaxed);
        let freed = sc.nr_to_scan.min(have);
        self.objects.store(have - freed, Ordering::Relaxed);
        sc.nr_scanned = sc.nr_to_scan * self.scanned_ratio / 4;
        Scan::Freed(freed)
    }
}

#[derive(Clone, Debug)]
struct Setup {
    objects: u64,
    seeks: u32,
    batch: u64,
    scanned_ratio: u64,
    refill: u64,
    priorities: Vec<u32>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0u64..5_000,
        0u32..5,
        prop_oneof![Just(0u64), 1u64..300],
        1u64..=4,
        0u64..500,
        prop::collection::vec(0u32..=12, 1..12),
    )
        .prop_map(
            |(objects, seeks, batch, scanned_ratio, refill, priorities)| Setup {
                objects,
                seeks,
                batch,
                scanned_ratio,
                refill,
                priorities,
            },
        )
}

/// Runs the passes on a registry with counters on or off; returns, per
/// pass, what was freed and the deferred count left at the root.
fn run(s: &Setup, stats: bool) -> Vec<(u64, u64)> {
    let reg = Registry::with_options(
        MemcgConfig {
            nr_nodes: 1,
            ..MemcgConfig::default()
        },
        RegistryOptions {
            stats,
            ..RegistryOptions::default()
        },
    );
    let root = reg.online_root().unwrap();
    let cache = Arc::new(Cache {
        objects: AtomicU64::new(s.objects),
        scanned_ratio: s.scanned_ratio,
    });
    let h = reg
        .alloc(
            ShrinkerConfig::new("cache").seeks(s.seeks).batch(s.batch),
            cache.clone(),
        )
        .unwrap()
        .register();
    let id = h.id().0 as usize;
    let info = root.shrinker_info(0).unwrap();
    let out = s
        .priorities
        .iter()
        .map(|&p| {
            let freed = reg.shrink_slab(&root, 0, p).unwrap().freed;
            cache.objects.fetch_add(s.refill, Ordering::Relaxed);
            (freed, info.nr_deferred(id))
        })
        .collect();
    h.free().unwrap();
    out
}

proptest! {
    #[test]
    fn quiet_and_recorded_walks_agree(s in setup()) {
        prop_assert_eq!(run(&s, false), run(&s, true));
    }
}
