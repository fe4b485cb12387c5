//! The priority loop, targeted and global reclaim, charge limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use unishrink_list_lru::{ListLru, LruShrinker, LruWalk};
use unishrink_reclaim::{
    reclaim_global, reclaim_memcg, ChargeConfig, ChargeCounters, ChargeError, ReclaimError,
    DEF_PRIORITY,
};
use unishrink_shrinker::{from_fns, Count, MemcgConfig, Registry, Scan, ShrinkerConfig};

fn registry(nodes: usize) -> (Registry, unishrink_shrinker::Memcg) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: nodes,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    (reg, root)
}

/// A global counting shrinker with `n` objects; returns (shrinker, objects).
fn counting(reg: &Registry, n: u64) -> (unishrink_shrinker::RegisteredShrinker, Arc<AtomicU64>) {
    let objects = Arc::new(AtomicU64::new(n));
    let (c, s) = (objects.clone(), objects.clone());
    let sh = reg
        .alloc(
            ShrinkerConfig::new("count"),
            from_fns(
                move |_| Count::Objects(c.load(Ordering::Relaxed)),
                move |sc| {
                    let take = sc.nr_to_scan.min(s.load(Ordering::Relaxed));
                    s.fetch_sub(take, Ordering::Relaxed);
                    Scan::Freed(take)
                },
            ),
        )
        .unwrap()
        .register();
    (sh, objects)
}

#[test]
fn priority_loop_stops_at_the_goal() {
    let (reg, root) = registry(1);
    let (_sh, objects) = counting(&reg, 1 << 20);
    let r = reclaim_memcg(&reg, &root, 5_000).unwrap();
    assert!(r.freed >= 5_000, "{r:?}");
    // Gentle passes first: the goal is met before priority 0, and the
    // loop stopped there (far less than everything was freed).
    assert!(r.priority > 0 && r.priority < DEF_PRIORITY, "{r:?}");
    assert_eq!(r.passes, DEF_PRIORITY - r.priority + 1);
    assert!(r.freed < 1 << 19, "stopped early: {r:?}");
    assert_eq!((1 << 20) - objects.load(Ordering::Relaxed), r.freed);
    // A goal of 0 does nothing.
    let r0 = reclaim_memcg(&reg, &root, 0).unwrap();
    assert_eq!((r0.freed, r0.passes), (0, 0));
}

#[test]
fn unreachable_goal_runs_every_priority() {
    let (reg, root) = registry(1);
    let (_sh, objects) = counting(&reg, 1_000);
    let r = reclaim_global(&reg, 1_000_000).unwrap();
    assert_eq!(r.passes, DEF_PRIORITY + 1);
    assert_eq!(r.priority, 0);
    assert_eq!(r.freed, 1_000);
    assert_eq!(objects.load(Ordering::Relaxed), 0);
    assert!(!r.met(1_000_000));
    let _ = root;
}

#[test]
fn foreign_memcg_is_refused() {
    let (reg, _root) = registry(1);
    let (_other, foreign) = registry(1);
    assert_eq!(
        reclaim_memcg(&reg, &foreign, 1).unwrap_err(),
        ReclaimError::ForeignMemcg
    );
    let counters = ChargeCounters::new(&reg);
    assert_eq!(counters.charge(&foreign, 1), Err(ChargeError::ForeignMemcg));
    let unborn = Registry::new(MemcgConfig::default());
    assert_eq!(
        reclaim_global(&unborn, 1).unwrap_err(),
        ReclaimError::NoRoot
    );
}

/// An lru cache whose disposals uncharge one unit each.
fn charged_cache(
    reg: &Registry,
    counters: &ChargeCounters,
    isolate: fn(&mut unishrink_shrinker::Memcg) -> LruWalk,
) -> LruShrinker<unishrink_shrinker::Memcg> {
    let c = counters.downgrade();
    LruShrinker::new(
        ListLru::new(reg),
        ShrinkerConfig::new("charged"),
        isolate,
        move |owner: unishrink_shrinker::Memcg| {
            c.uncharge(&owner, 1).unwrap();
        },
    )
    .unwrap()
}

#[test]
fn charge_past_the_limit_reclaims_then_succeeds() {
    let (reg, root) = registry(1);
    let counters = ChargeCounters::new(&reg);
    let cache = charged_cache(&reg, &counters, |_| LruWalk::Removed);
    counters.set_limit(&root, 1_000).unwrap();
    for _ in 0..1_000 {
        counters.charge(&root, 1).unwrap();
        cache.lru().add(&root, 0, root.clone()).unwrap();
    }
    assert_eq!(counters.usage(&root).unwrap(), 1_000);
    // Over the limit: reclaim frees cached objects (which uncharge) first.
    let reclaimed = counters.charge(&root, 100).unwrap();
    assert!(reclaimed >= 100, "reclaimed {reclaimed}");
    assert!(counters.usage(&root).unwrap() <= 1_000);
    assert_eq!(
        counters.usage(&root).unwrap(),
        cache.lru().total() + 100,
        "usage = cached objects + the new charge"
    );
    assert_eq!(counters.watermark(&root).unwrap(), 1_000);
    assert!(counters.failcnt(&root).unwrap() >= 1);
}

#[test]
fn charge_past_the_limit_errors_when_reclaim_cannot_help() {
    let (reg, root) = registry(1);
    let counters = ChargeCounters::with_config(
        &reg,
        ChargeConfig {
            max_retries: 3,
            min_reclaim: 1,
            unit: 1,
        },
    );
    // Nothing is reclaimable: every item says Stop.
    let cache = charged_cache(&reg, &counters, |_| LruWalk::Stop);
    counters.set_limit(&root, 10).unwrap();
    for _ in 0..10 {
        counters.charge(&root, 1).unwrap();
        cache.lru().add(&root, 0, root.clone()).unwrap();
    }
    assert_eq!(
        counters.charge(&root, 1),
        Err(ChargeError::OverLimit {
            memcg: root.id(),
            limit: 10,
            usage: 10
        })
    );
    assert_eq!(counters.usage(&root).unwrap(), 10, "failed charge undone");
    assert_eq!(cache.lru().total(), 10);
}

#[test]
fn uncharge_underflow_is_reported_and_clamped() {
    let (reg, root) = registry(1);
    let counters = ChargeCounters::new(&reg);
    counters.charge(&root, 5).unwrap();
    assert_eq!(
        counters.uncharge(&root, 7),
        Err(ChargeError::Underflow {
            memcg: root.id(),
            usage: 5,
            amount: 7
        })
    );
    assert_eq!(counters.usage(&root).unwrap(), 0);
}

#[cfg(feature = "memcg")]
mod memcg {
    use super::*;

    #[test]
    fn targeted_reclaim_frees_only_inside_the_subtree() {
        let (reg, root) = registry(2);
        let a = reg.create_memcg(&root).unwrap();
        let a1 = reg.create_memcg(&a).unwrap();
        let b = reg.create_memcg(&root).unwrap();
        let cache = LruShrinker::new(
            ListLru::<u8>::new(&reg),
            ShrinkerConfig::new("fs"),
            |_| LruWalk::Removed,
            drop,
        )
        .unwrap();
        let lru = cache.lru();
        for m in [&root, &a, &a1, &b] {
            for nid in 0..2 {
                for _ in 0..300 {
                    lru.add(m, nid, 0).unwrap();
                }
            }
        }
        let r = reclaim_memcg(&reg, &a, u64::MAX).unwrap();
        assert_eq!(r.freed, 4 * 300);
        assert_eq!(r.priority, 0);
        for nid in 0..2 {
            assert_eq!(lru.count(&a, nid).unwrap(), 0);
            assert_eq!(lru.count(&a1, nid).unwrap(), 0);
            assert_eq!(lru.count(&b, nid).unwrap(), 300, "sibling untouched");
            assert_eq!(lru.count(&root, nid).unwrap(), 300, "parent untouched");
        }
        // Global reclaim reaches everyone.
        let g = reclaim_global(&reg, u64::MAX).unwrap();
        assert_eq!(g.freed, 4 * 300);
        assert_eq!(lru.total(), 0);
        // Offline everything: memcgs refer to their parents and children.
        for m in [&a1, &a, &b] {
            reg.offline_memcg(m).unwrap();
        }
    }

    #[test]
    fn ancestor_limit_reclaims_the_ancestors_subtree() {
        let (reg, root) = registry(1);
        let parent = reg.create_memcg(&root).unwrap();
        let a = reg.create_memcg(&parent).unwrap();
        let b = reg.create_memcg(&parent).unwrap();
        let counters = ChargeCounters::new(&reg);
        let cache = charged_cache(&reg, &counters, |_| LruWalk::Removed);
        counters.set_limit(&parent, 500).unwrap();
        // Fill through sibling b up to the parent's limit.
        for _ in 0..500 {
            counters.charge(&b, 1).unwrap();
            cache.lru().add(&b, 0, b.clone()).unwrap();
        }
        assert_eq!(counters.usage(&parent).unwrap(), 500);
        assert_eq!(counters.usage(&root).unwrap(), 500, "hierarchical");
        // A charge to a hits the parent's limit: b's cache is reclaimed.
        counters.charge(&a, 50).unwrap();
        assert!(cache.lru().count(&b, 0).unwrap() <= 450);
        assert_eq!(counters.usage(&a).unwrap(), 50);
        assert!(counters.usage(&parent).unwrap() <= 500);
        assert_eq!(
            counters.usage(&parent).unwrap(),
            counters.usage(&root).unwrap()
        );
        for m in [&a, &b, &parent] {
            reg.offline_memcg(m).unwrap();
        }
    }

    #[test]
    fn offline_keeps_charges_in_the_ancestors() {
        let (reg, root) = registry(1);
        let child = reg.create_memcg(&root).unwrap();
        let counters = ChargeCounters::new(&reg);
        counters.charge(&child, 40).unwrap();
        reg.offline_memcg(&child).unwrap();
        assert_eq!(counters.usage(&root).unwrap(), 40);
        assert_eq!(counters.usage(&child).unwrap(), 0, "own counter gone");
        // Uncharging through the dead handle reaches the ancestors.
        counters.uncharge(&child, 40).unwrap();
        assert_eq!(counters.usage(&root).unwrap(), 0);
        // Charging the dead memcg charges the ancestors only.
        counters.charge(&child, 3).unwrap();
        assert_eq!(counters.usage(&root).unwrap(), 3);
    }
}
