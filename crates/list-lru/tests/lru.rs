//! Functional tests of the list_lru: lists, walks, bits, reparenting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use unishrink_list_lru::{ListLru, LruError, LruShrinker, LruWalk};
use unishrink_shrinker::{MemcgConfig, Registry, ShrinkerConfig};

fn registry(nodes: usize) -> (Registry, unishrink_shrinker::Memcg) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: nodes,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    (reg, root)
}

#[test]
fn add_del_count_and_handles() {
    let (reg, root) = registry(2);
    let lru = ListLru::new(&reg);
    let a = lru.add(&root, 0, "a").unwrap();
    let b = lru.add(&root, 1, "b").unwrap();
    let c = lru.add(&root, 1, "c").unwrap();
    assert_eq!(lru.count(&root, 0).unwrap(), 1);
    assert_eq!(lru.count(&root, 1).unwrap(), 2);
    assert_eq!(lru.total(), 3);
    assert_eq!(b.location(), Some((root.id(), 1)));
    assert_eq!(lru.del(&b), Some("b"));
    assert_eq!(lru.del(&b), None, "a second del finds nothing");
    assert!(!b.is_listed());
    assert_eq!(lru.count(&root, 1).unwrap(), 1);
    assert_eq!(lru.del(&a), Some("a"));
    assert_eq!(lru.del(&c), Some("c"));
    assert_eq!(lru.total(), 0);
}

#[test]
fn bad_input_is_a_typed_error() {
    let (reg, root) = registry(1);
    let (_other, foreign) = registry(1);
    let lru: ListLru<u8> = ListLru::new(&reg);
    assert_eq!(
        lru.add(&root, 1, 0).unwrap_err(),
        LruError::NodeOutOfRange {
            nid: 1,
            nr_nodes: 1
        }
    );
    assert_eq!(lru.add(&foreign, 0, 0).unwrap_err(), LruError::ForeignMemcg);
    assert_eq!(lru.count(&foreign, 0).unwrap_err(), LruError::ForeignMemcg);
    assert!(lru.walk(&root, 5, 1, |_| LruWalk::Skip).is_err());
    assert!(LruError::ForeignMemcg.to_string().contains("another tree"));
}

#[test]
fn walk_outcomes_follow_the_isolate_verdicts() {
    let (reg, root) = registry(1);
    let lru = ListLru::new(&reg);
    for i in 0..10u32 {
        lru.add(&root, 0, i).unwrap();
    }
    // Remove evens, rotate 1 and 3, skip the rest; stop at 7.
    let out = lru
        .walk(&root, 0, 100, |&mut i| match i {
            7 => LruWalk::Stop,
            i if i % 2 == 0 => LruWalk::Removed,
            1 | 3 => LruWalk::Rotate,
            _ => LruWalk::Skip,
        })
        .unwrap();
    assert_eq!(out.removed, vec![0, 2, 4, 6]);
    assert_eq!(out.walked, 8, "0..=7 shown, 7 stopped the walk");
    assert_eq!(out.rotated, 2);
    assert!(out.stopped);
    // Order now: 5 7 8 9 1 3 (rotated to the tail).
    let order = lru.walk(&root, 0, 100, |_| LruWalk::Skip).unwrap();
    assert_eq!(order.walked, 6);
    let mut seen = Vec::new();
    lru.walk(&root, 0, 100, |&mut i| {
        seen.push(i);
        LruWalk::Skip
    })
    .unwrap();
    assert_eq!(seen, vec![5, 7, 8, 9, 1, 3]);
    // nr_to_walk bounds the walk; rotated items are not shown twice.
    let out = lru.walk(&root, 0, 2, |_| LruWalk::Removed).unwrap();
    assert_eq!(out.removed, vec![5, 7]);
    let out = lru.walk(&root, 0, 100, |_| LruWalk::Rotate).unwrap();
    assert_eq!(out.walked, 4);
    assert_eq!(lru.count(&root, 0).unwrap(), 4);
}

// Without memcgs the shrinker is global: its root bits are sticky.
#[cfg(feature = "memcg")]
#[test]
fn first_add_sets_the_bit_and_empty_clears_it() {
    let (reg, root) = registry(2);
    let freed = Arc::new(AtomicU64::new(0));
    let f = freed.clone();
    let cache = LruShrinker::new(
        ListLru::<u64>::new(&reg),
        ShrinkerConfig::new("t").batch(1),
        |_| LruWalk::Removed,
        move |_| {
            f.fetch_add(1, Ordering::Relaxed);
        },
    )
    .unwrap();
    let id = cache.id().0 as usize;
    let info1 = root.shrinker_info(1).unwrap();
    assert!(!info1.test_bit(id), "nothing added yet");
    cache.lru().add(&root, 1, 1).unwrap();
    assert!(info1.test_bit(id), "first add sets the bit on its node");
    assert!(
        !root.shrinker_info(0).unwrap().test_bit(id),
        "only that node"
    );
    // Priority 0, seeks 0: the whole list goes, then SHRINK_EMPTY clears.
    let r = reg.shrink_slab(&root, 1, 0).unwrap();
    assert_eq!(r.freed, 1);
    assert_eq!(freed.load(Ordering::Relaxed), 1);
    reg.shrink_slab(&root, 1, 0).unwrap();
    assert!(!info1.test_bit(id), "empty list: bit cleared");
    cache.lru().add(&root, 1, 2).unwrap();
    assert!(info1.test_bit(id), "set again by the next first add");
}

#[cfg(feature = "memcg")]
#[test]
fn bind_after_add_sets_bits_of_nonempty_lists() {
    let (reg, root) = registry(2);
    let lru = ListLru::<u8>::new(&reg);
    lru.add(&root, 1, 0).unwrap();
    let cache = LruShrinker::new(
        lru.clone(),
        ShrinkerConfig::new("late"),
        |_| LruWalk::Removed,
        drop,
    )
    .unwrap();
    let id = cache.id().0 as usize;
    assert!(root.shrinker_info(1).unwrap().test_bit(id));
    assert!(!root.shrinker_info(0).unwrap().test_bit(id));
    assert!(matches!(
        lru.bind_shrinker(cache.id()),
        Err(LruError::AlreadyBound(_))
    ));
}

#[test]
fn lru_shrinker_frees_through_shrink_slab_and_stop_is_respected() {
    let (reg, root) = registry(1);
    let cache = LruShrinker::new(
        ListLru::<u32>::new(&reg),
        ShrinkerConfig::new("stopper"),
        |_| LruWalk::Stop,
        drop,
    )
    .unwrap();
    for i in 0..500 {
        cache.lru().add(&root, 0, i).unwrap();
    }
    let r = reg.shrink_slab(&root, 0, 0).unwrap();
    assert_eq!(r.freed, 0);
    assert_eq!(cache.lru().count(&root, 0).unwrap(), 500);
    let lru = cache.into_lru();
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0, "freed");
    assert_eq!(lru.drain().len(), 500);
}

#[cfg(feature = "memcg")]
mod memcg {
    use super::*;

    #[test]
    fn reparent_conserves_items_and_handles_follow() {
        let (reg, root) = registry(2);
        let parent = reg.create_memcg(&root).unwrap();
        let child = reg.create_memcg(&parent).unwrap();
        let freed = Arc::new(AtomicU64::new(0));
        let f = freed.clone();
        let cache = LruShrinker::new(
            ListLru::<(u32, usize)>::new(&reg),
            ShrinkerConfig::new("fs"),
            |_| LruWalk::Removed,
            move |_| {
                f.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        let lru = cache.lru();
        let id = cache.id().0 as usize;
        lru.add(&parent, 0, (0, 0)).unwrap();
        let mut handles = Vec::new();
        for i in 0..50u32 {
            handles.push(lru.add(&child, (i % 2) as usize, (i, 1)).unwrap());
        }
        assert_eq!(lru.count(&child, 0).unwrap(), 25);
        assert!(!parent.shrinker_info(1).unwrap().test_bit(id));
        reg.offline_memcg(&child).unwrap();
        assert_eq!(lru.count(&parent, 0).unwrap(), 26);
        assert_eq!(lru.count(&parent, 1).unwrap(), 25);
        assert_eq!(lru.count(&child, 0).unwrap(), 0);
        assert!(
            parent.shrinker_info(1).unwrap().test_bit(id),
            "parent bit set"
        );
        for h in &handles {
            assert_eq!(h.location().unwrap().0, parent.id());
        }
        // The dead child's items sit at the head: reclaimed first.
        let mut first = None;
        lru.walk(&parent, 0, 1, |&mut item| {
            first = Some(item);
            LruWalk::Skip
        })
        .unwrap();
        assert_eq!(first, Some((0, 1)));
        // del through an old handle still works after the move.
        assert_eq!(lru.del(&handles[3]), Some((3, 1)));
        // Adding to the offline child lands on the parent.
        let h = lru.add(&child, 1, (99, 9)).unwrap();
        assert_eq!(h.location(), Some((parent.id(), 1)));
        // Nothing lost: reclaim everything from the parent.
        let mut total = 0;
        for nid in 0..2 {
            total += reg.shrink_slab(&parent, nid, 0).unwrap().freed;
        }
        assert_eq!(total, 26 + 25 - 1 + 1);
        assert_eq!(freed.load(Ordering::Relaxed), total);
        assert_eq!(lru.total(), 0);
        reg.offline_memcg(&parent).unwrap();
    }

    #[test]
    fn chained_offlines_move_everything_to_the_root() {
        let (reg, root) = registry(1);
        let lru = ListLru::<u32>::new(&reg);
        let mut chain = vec![root.clone()];
        for _ in 0..5 {
            let m = reg.create_memcg(chain.last().unwrap()).unwrap();
            chain.push(m);
        }
        for (i, m) in chain.iter().enumerate() {
            lru.add(m, 0, i as u32).unwrap();
        }
        for m in chain.iter().skip(1).rev() {
            reg.offline_memcg(m).unwrap();
        }
        assert_eq!(lru.count(&root, 0).unwrap(), 6);
        let mut items = lru.drain();
        items.sort_unstable();
        assert_eq!(items, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn targeted_walk_sees_only_its_memcg() {
        let (reg, root) = registry(1);
        let a = reg.create_memcg(&root).unwrap();
        let b = reg.create_memcg(&root).unwrap();
        let lru = ListLru::<char>::new(&reg);
        lru.add(&a, 0, 'a').unwrap();
        lru.add(&b, 0, 'b').unwrap();
        let out = lru.walk(&a, 0, 10, |_| LruWalk::Removed).unwrap();
        assert_eq!(out.removed, vec!['a']);
        assert_eq!(lru.count(&b, 0).unwrap(), 1);
        reg.offline_memcg(&a).unwrap();
        reg.offline_memcg(&b).unwrap();
    }
}

#[cfg(not(feature = "memcg"))]
#[test]
fn without_memcg_only_the_root_exists() {
    let (reg, root) = registry(1);
    assert!(reg.create_memcg(&root).is_err());
    let cache = LruShrinker::new(
        ListLru::<u8>::new(&reg),
        ShrinkerConfig::new("global"),
        |_| LruWalk::Removed,
        drop,
    )
    .unwrap();
    for i in 0..10 {
        cache.lru().add(&root, 0, i).unwrap();
    }
    // Treated as global: sticky root bit, everything reclaimable from root.
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().freed, 10);
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 1, "sticky");
}
