//! Unit tests: allocation corner cases, fault injection, structural invariants.
#![allow(clippy::reversed_empty_ranges)] // empty ranges are the point of some tests

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `pin().flush()` until `done()` holds, a bounded number of times (no sleeps):
/// with no other thread pinned the epoch advances on every flush.
fn flush_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..10_000 {
        if done() {
            return true;
        }
        pin().flush();
        std::thread::yield_now();
    }
    done()
}

/// Walks the whole tree (writer lock held) and checks the structural invariants.
/// Returns the number of entries found.
fn check_invariants<T: Send + Sync + 'static, const S: usize>(xa: &XArray<T, (), S>) -> usize {
    let st = xa.lock();
    let spare = st.st.spare_leaf;
    let root = xa.root.load(Relaxed);
    if root.is_null() {
        assert_eq!(spare, None, "a spare leaf in an empty tree");
        return 0;
    }
    /// Returns (entries, free word, marks below, first indexes of empty leaves).
    fn rec<const S: usize>(
        n: &Node<S>,
        base: u64,
        is_root: bool,
        empty: &mut Vec<u64>,
    ) -> (usize, u64, [bool; MARKS]) {
        let mut entries = 0;
        let mut count = 0;
        let mut marks_any = [false; MARKS];
        for s in 0..SLOTS {
            let p = n.slot(s).load(Relaxed);
            let bit = 1u64 << s;
            if p.is_null() {
                if valid_mask(n.shift) & bit != 0 {
                    assert!(
                        n.free.load(Relaxed) & bit != 0,
                        "empty slot without free bit"
                    );
                }
                for m in 0..MARKS {
                    assert_eq!(n.marks[m].load(Relaxed) & bit, 0, "mark on empty slot");
                }
                continue;
            }
            count += 1;
            if n.shift == 0 {
                entries += 1;
                assert_eq!(
                    n.free.load(Relaxed) & bit,
                    0,
                    "full leaf slot with free bit"
                );
                for (m, any) in marks_any.iter_mut().enumerate() {
                    *any |= n.marks[m].load(Relaxed) & bit != 0;
                }
            } else {
                // SAFETY: the test owns the tree (no concurrent writer), so
                // every node reachable from the root is live.
                let c = unsafe { &*p.cast::<Node<S>>() };
                assert_eq!(c.shift + CHUNK_SHIFT, n.shift);
                let child_base = base + ((s as u64) << n.shift);
                let (e, cfree, cm) = rec(c, child_base, false, empty);
                entries += e;
                assert_eq!(n.free.load(Relaxed) & bit != 0, cfree != 0, "free summary");
                for m in 0..MARKS {
                    assert_eq!(n.marks[m].load(Relaxed) & bit != 0, cm[m], "mark summary");
                    marks_any[m] |= cm[m];
                }
            }
        }
        assert_eq!(count, n.count.load(Relaxed), "count");
        if count == 0 {
            assert!(!is_root, "empty root reachable");
            assert_eq!(n.shift, 0, "empty interior node reachable");
            empty.push(base);
        }
        (entries, n.free.load(Relaxed), marks_any)
    }
    let mut empty = Vec::new();
    // SAFETY: as above; the root is live while the test holds the tree.
    let (e, _, _) = rec(unsafe { &*root }, 0, true, &mut empty);
    // At most one empty node: the spare leaf the writer state names.
    assert!(empty.len() <= 1, "empty leaves reachable: {empty:?}");
    if let Some(&b) = empty.first() {
        assert_eq!(Some(b), spare, "an empty leaf that is not the spare");
    }
    e
}

#[test]
fn height_for_boundaries() {
    assert_eq!(height_for(0), 1);
    assert_eq!(height_for(63), 1);
    assert_eq!(height_for(64), 2);
    assert_eq!(height_for(4095), 2);
    assert_eq!(height_for(4096), 3);
    assert_eq!(height_for(1 << 60), 11);
    assert_eq!(height_for((1 << 60) - 1), 10);
    assert_eq!(height_for(u64::MAX), 11);
    assert_eq!(valid_mask(60), 0xFFFF);
    assert_eq!(max_index(54), (1 << 60) - 1);
    assert_eq!(max_index(60), u64::MAX);
}

#[test]
fn store_load_erase_grow_shrink() {
    let xa = XArray::new();
    assert_eq!(xa.height(), 0);
    assert_eq!(xa.store(5, Arc::new(5u64)).unwrap(), None);
    assert_eq!(xa.height(), 1);
    xa.store(u64::MAX, Arc::new(u64::MAX)).unwrap();
    assert_eq!(xa.height(), 11);
    assert_eq!(check_invariants(&xa), 2);
    let g = pin();
    assert_eq!(xa.load(u64::MAX, &g), Some(&u64::MAX));
    assert_eq!(xa.load(5, &g), Some(&5));
    assert_eq!(xa.load(6, &g), None);
    assert_eq!(*xa.store(5, Arc::new(50)).unwrap().unwrap(), 5);
    assert_eq!(xa.get(5).as_deref(), Some(&50));
    assert_eq!(*xa.erase(u64::MAX).unwrap(), u64::MAX);
    assert_eq!(xa.height(), 1);
    assert_eq!(check_invariants(&xa), 1);
    assert_eq!(xa.erase(u64::MAX), None);
    assert_eq!(*xa.erase(5).unwrap(), 50);
    assert_eq!(xa.height(), 0);
    assert!(xa.is_empty());
}

#[test]
fn alloc_lowest_free_and_full() {
    let xa = XArray::new();
    for want in 0..200u64 {
        assert_eq!(xa.alloc(Arc::new(want), 0..=199), Ok(want));
    }
    assert_eq!(xa.alloc(Arc::new(0), 0..=199), Err(AllocError::Full));
    assert_eq!(xa.alloc(Arc::new(0), 10..=20), Err(AllocError::Full));
    assert_eq!(xa.alloc(Arc::new(0), 5..=4), Err(AllocError::EmptyRange));
    xa.erase(77);
    xa.erase(3);
    assert_eq!(xa.alloc(Arc::new(0), 10..=199), Ok(77));
    assert_eq!(xa.alloc(Arc::new(0), 0..=199), Ok(3));
    assert_eq!(xa.alloc(Arc::new(0), 0..=u64::MAX), Ok(200));
    assert_eq!(check_invariants(&xa), 201);
}

#[test]
fn alloc_beyond_height_grows() {
    let xa = XArray::new();
    xa.store(0, Arc::new(0u64)).unwrap();
    assert_eq!(xa.alloc(Arc::new(1), (1 << 40)..=u64::MAX), Ok(1 << 40));
    assert_eq!(xa.height(), 7);
    assert_eq!(
        xa.alloc(Arc::new(1), (1 << 40)..=u64::MAX),
        Ok((1 << 40) + 1)
    );
    assert_eq!(check_invariants(&xa), 3);
}

#[test]
fn full_u64_range_is_full() {
    // Fill the top of the index space and ask for it again.
    let xa = XArray::new();
    let lo = u64::MAX - 130;
    for i in lo..=u64::MAX {
        assert_eq!(xa.alloc(Arc::new(i), lo..=u64::MAX), Ok(i));
    }
    assert_eq!(xa.alloc(Arc::new(0), lo..=u64::MAX), Err(AllocError::Full));
    assert_eq!(
        xa.alloc(Arc::new(0), u64::MAX..=u64::MAX),
        Err(AllocError::Full)
    );
    assert_eq!(xa.alloc(Arc::new(0), 0..=u64::MAX), Ok(0));
    assert_eq!(check_invariants(&xa), 132);
}

#[test]
fn alloc_cyclic_wraps_around() {
    let xa = XArray::new();
    assert_eq!(xa.alloc_cyclic(Arc::new(0u64), 1..=4), Ok(1));
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Ok(2));
    xa.erase(1);
    // Does not reuse 1 while higher ids are free.
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Ok(3));
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Ok(4));
    // Wraps to the start.
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Ok(1));
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Err(AllocError::Full));
    xa.erase(3);
    assert_eq!(xa.alloc_cyclic(Arc::new(0), 1..=4), Ok(3));
    // Wrap past u64::MAX.
    let xb = XArray::new();
    assert_eq!(
        xb.alloc_cyclic(Arc::new(0u64), u64::MAX..=u64::MAX),
        Ok(u64::MAX)
    );
    assert_eq!(xb.alloc_cyclic(Arc::new(0), 0..=u64::MAX), Ok(0));
    assert_eq!(xb.alloc_cyclic(Arc::new(0), 0..=u64::MAX), Ok(1));
    assert_eq!(
        xb.alloc_cyclic(Arc::new(0), 5..=4),
        Err(AllocError::EmptyRange)
    );
}

#[test]
fn oom_leaves_tree_unchanged() {
    let xa = XArray::new();
    for i in 0..10u64 {
        xa.store(i, Arc::new(i)).unwrap();
    }
    xa.set_mark(3, Mark::Mark1);
    // A store at 2^40 needs 6 new top nodes + 6 path nodes; fail each in turn.
    for n in 1..=12 {
        xa.fail_nth_node_alloc(n);
        let v = Arc::new(99u64);
        assert_eq!(xa.store(1 << 40, v.clone()), Err(AllocError::OutOfMemory));
        assert_eq!(Arc::strong_count(&v), 1, "value not consumed on error");
        assert_eq!(xa.height(), 1);
        assert_eq!(xa.len(), 10);
        assert_eq!(check_invariants(&xa), 10);
        let g = pin();
        let got: Vec<u64> = xa.iter(0, &g).map(|(i, v)| *v + i).collect();
        assert_eq!(got, (0..10).map(|i| 2 * i).collect::<Vec<_>>());
        assert!(xa.get_mark(3, Mark::Mark1));
    }
    xa.fail_nth_node_alloc(1);
    assert_eq!(
        xa.alloc(Arc::new(0), 64..=100),
        Err(AllocError::OutOfMemory)
    );
    assert_eq!(
        xa.alloc_cyclic(Arc::new(0), 64..=100),
        Ok(64),
        "injection is one-shot"
    );
    xa.fail_nth_node_alloc(13); // more than needed: store succeeds
    assert_eq!(xa.store(1 << 40, Arc::new(1)), Ok(None));
    xa.fail_nth_node_alloc(0);
    assert_eq!(xa.height(), 7);
    assert_eq!(check_invariants(&xa), 12);
}

#[test]
fn marks_propagate_and_clear_on_erase() {
    let xa = XArray::new();
    for i in [0u64, 70, 5000, 1 << 33] {
        xa.store(i, Arc::new(i)).unwrap();
    }
    assert!(!xa.set_mark(1, Mark::Mark0));
    assert!(xa.set_mark(70, Mark::Mark0));
    assert!(xa.set_mark(1 << 33, Mark::Mark0));
    assert!(xa.set_mark(5000, Mark::Mark2));
    check_invariants(&xa);
    let g = pin();
    let m0: Vec<u64> = xa.iter_marked(0, Mark::Mark0, &g).map(|(i, _)| i).collect();
    assert_eq!(m0, vec![70, 1 << 33]);
    let m0: Vec<u64> = xa
        .iter_marked(71, Mark::Mark0, &g)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(m0, vec![1 << 33]);
    assert_eq!(xa.iter_marked(0, Mark::Mark1, &g).count(), 0);
    // Replace keeps the mark, erase clears it.
    xa.store(70, Arc::new(7)).unwrap();
    assert!(xa.get_mark(70, Mark::Mark0));
    xa.erase(70);
    assert!(!xa.get_mark(70, Mark::Mark0));
    xa.store(70, Arc::new(7)).unwrap();
    assert!(!xa.get_mark(70, Mark::Mark0));
    assert!(xa.clear_mark(1 << 33, Mark::Mark0));
    assert_eq!(xa.iter_marked(0, Mark::Mark0, &g).count(), 0);
    check_invariants(&xa);
}

#[test]
fn locked_handle_allocates_looks_up_and_removes() {
    let xa = XArray::new();
    // Unmarked erases first (the mark words are skipped), then marked ones.
    for round in 0..2 {
        let guard = pin();
        let mut w = xa.lock();
        let ids: Vec<u64> = (0..200u64)
            .map(|i| w.alloc(Arc::new(i), 0..=u64::MAX).unwrap())
            .collect();
        assert_eq!(ids, (0..200).collect::<Vec<_>>());
        assert_eq!(w.load(150).copied(), Some(150));
        assert_eq!(w.load(200), None);
        assert_eq!(w.len(), 200);
        drop(w);
        if round == 1 {
            for i in (0..200).step_by(3) {
                assert!(xa.set_mark(i, Mark::Mark1));
            }
        }
        check_invariants(&xa);
        let mut w = xa.lock();
        for i in (0..200).filter(|i| i % 2 == 0) {
            assert!(w.remove(i, &guard));
            assert!(!w.remove(i, &guard));
        }
        drop(w);
        check_invariants(&xa);
        let marked: Vec<u64> = xa
            .iter_marked(0, Mark::Mark1, &guard)
            .map(|(i, _)| i)
            .collect();
        let want: Vec<u64> = if round == 1 {
            (0..200).filter(|i| i % 3 == 0 && i % 2 == 1).collect()
        } else {
            Vec::new()
        };
        assert_eq!(marked, want);
        let mut w = xa.lock();
        for i in (0..200).filter(|i| i % 2 == 1) {
            assert!(w.remove(i, &guard));
        }
        assert!(w.is_empty());
        drop(w);
        check_invariants(&xa);
        assert_eq!(xa.height(), 0);
    }
}

#[test]
#[should_panic(expected = "pinned guard")]
fn locked_remove_refuses_an_unprotected_guard() {
    let xa = XArray::new();
    xa.store(3, Arc::new(3u8)).unwrap();
    // SAFETY: the guard is only handed to `remove`, which must refuse it.
    let g = unsafe { crossbeam_epoch::unprotected() };
    xa.lock().remove(3, g);
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn drop_frees_every_value() {
    let drops = Arc::new(AtomicUsize::new(0));
    let xa = XArray::new();
    for i in 0..1000u64 {
        xa.store(i * 7919, Arc::new(Counted(drops.clone())))
            .unwrap();
    }
    for i in 0..100u64 {
        drop(xa.erase(i * 7919));
    }
    drop(xa);
    assert!(flush_until(|| drops.load(Ordering::SeqCst) == 1000));
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
}

#[test]
fn take_hands_over_the_trees_reference() {
    let drops = Arc::new(AtomicUsize::new(0));
    let xa = XArray::new();
    xa.store(5, Arc::new(Counted(drops.clone()))).unwrap();
    xa.store(6, Arc::new(Counted(drops.clone()))).unwrap();
    let g = pin();
    let mut w = xa.lock();
    let five = w.take(5).unwrap();
    assert!(w.take(5).is_none());
    // The last entry: its leaf (the root) is unlinked with it.
    let six = w.take(6).unwrap();
    drop(w);
    assert_eq!(xa.len(), 0);
    check_invariants(&xa);
    assert!(Arc::ptr_eq(&five.get().0, &drops));
    // SAFETY: nobody but this test ever loaded the value.
    let (five, nodes) = unsafe { five.into_arc() };
    assert!(nodes.is_empty(), "taking 5 emptied no node");
    drop(five);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "into_arc: dropped at once");
    drop(six);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "dropping an Unlinked defers"
    );
    drop(g);
    assert!(flush_until(|| drops.load(Ordering::SeqCst) == 2));
}

#[test]
fn load_survives_erase_until_guard_drops() {
    let drops = Arc::new(AtomicUsize::new(0));
    let xa = XArray::new();
    xa.store(64, Arc::new(Counted(drops.clone()))).unwrap();
    let g = pin();
    let r = xa.load(64, &g).unwrap();
    drop(xa.erase(64));
    // The tree's count is deferred and our guard is still pinned.
    for _ in 0..10 {
        pin().flush();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(Arc::ptr_eq(&r.0, &drops));
    drop(g);
    assert!(flush_until(|| drops.load(Ordering::SeqCst) == 1));
}

#[test]
#[should_panic(expected = "default collector")]
fn foreign_guard_is_rejected() {
    let xa: XArray<u8> = XArray::new();
    let c = crossbeam_epoch::Collector::new();
    let h = c.register();
    let g = h.pin();
    let _ = xa.load(0, &g);
}

#[test]
fn error_display() {
    assert!(AllocError::Full.to_string().contains("no free index"));
    assert!(AllocError::EmptyRange.to_string().contains("empty"));
    assert!(AllocError::OutOfMemory
        .to_string()
        .contains("out of memory"));
}

#[test]
fn line_spacing_gives_every_slot_its_own_line() {
    fn offsets<const S: usize>() -> (usize, Vec<usize>) {
        let n = Node::<S>::new(0);
        let base = std::ptr::from_ref(&n).addr();
        let meta_end = std::ptr::from_ref(&n.shift).addr() + 4 - base;
        let slots = (0..SLOTS)
            .map(|k| std::ptr::from_ref(n.slot(k)).addr() - base)
            .collect();
        (meta_end, slots)
    }
    assert_eq!(LINE_SPACING * std::mem::size_of::<usize>(), 64);
    for (spaced, (meta_end, slots)) in [(false, offsets::<1>()), (true, offsets::<LINE_SPACING>())]
    {
        // Wherever the node starts, a 64-byte line cannot hold both a
        // metadata byte and a slot: more than 63 bytes lie between them.
        assert!(slots[0] - meta_end >= 64, "metadata too close to slot 0");
        let step = if spaced { 64 } else { 8 };
        for k in 1..SLOTS {
            assert_eq!(slots[k] - slots[k - 1], step);
        }
    }
    // No over-alignment: the allocator's default path serves nodes.
    assert_eq!(std::mem::align_of::<Node<LINE_SPACING>>(), 8);
    assert_eq!(std::mem::size_of::<Node<1>>(), 40 + 64 + SLOTS * 8);
}

#[test]
fn line_spaced_tree_grows_shrinks_and_frees() {
    let xa: XArray<u64, (), LINE_SPACING> = XArray::default();
    for want in 0..200u64 {
        assert_eq!(xa.alloc(Arc::new(want), 0..=u64::MAX), Ok(want));
    }
    xa.store(1 << 40, Arc::new(1 << 40)).unwrap();
    assert_eq!(xa.height(), 7);
    assert_eq!(check_invariants(&xa), 201);
    let g = pin();
    assert_eq!(xa.load(150, &g), Some(&150));
    assert_eq!(xa.iter(100, &g).count(), 101);
    drop(g);
    for i in (0..200).step_by(3) {
        assert_eq!(xa.erase(i).as_deref(), Some(&i));
    }
    assert!(xa.remove(1 << 40));
    assert_eq!(xa.height(), 2);
    assert_eq!(check_invariants(&xa), 133);
    assert_eq!(xa.alloc(Arc::new(0), 0..=u64::MAX), Ok(0));
    let mut l = xa.lock();
    let taken = l.take(199).expect("present");
    drop(l);
    assert_eq!(*taken.get(), 199);
    drop(taken);
    assert_eq!(check_invariants(&xa), 133);
}

#[test]
fn emptied_leaf_stays_as_the_spare_and_is_reused() {
    let xa: XArray<u64> = XArray::new();
    for want in 0..128u64 {
        assert_eq!(xa.alloc(Arc::new(want), 0..=u64::MAX), Ok(want));
    }
    // 128 starts a leaf: the first cycle allocates it, the erase keeps it.
    assert_eq!(xa.alloc(Arc::new(128), 0..=u64::MAX), Ok(128));
    assert!(xa.remove(128));
    assert_eq!(xa.lock().st.spare_leaf, Some(128));
    assert_eq!(check_invariants(&xa), 128);
    // Later cycles need no node: an injected allocation failure is not hit.
    for _ in 0..10 {
        xa.fail_nth_node_alloc(1);
        assert_eq!(xa.alloc(Arc::new(128), 0..=u64::MAX), Ok(128));
        assert!(xa.remove(128));
    }
    xa.fail_nth_node_alloc(0);
    assert_eq!(check_invariants(&xa), 128);
    assert_eq!(xa.height(), 2);
}

#[test]
fn a_new_spare_unlinks_the_old_one_unless_refilled() {
    let xa: XArray<u64> = XArray::new();
    for i in 0..256u64 {
        xa.store(i, Arc::new(i)).unwrap();
    }
    for i in 64..128 {
        xa.remove(i);
    }
    assert_eq!(xa.lock().st.spare_leaf, Some(64));
    // Emptying leaf 128..191 unlinks the spare 64..127 and keeps this one.
    for i in 128..192 {
        xa.remove(i);
    }
    assert_eq!(xa.lock().st.spare_leaf, Some(128));
    assert_eq!(check_invariants(&xa), 128);
    // A refilled spare is a leaf like any other: not unlinked later.
    xa.store(130, Arc::new(130)).unwrap();
    for i in 192..256 {
        xa.remove(i);
    }
    assert_eq!(xa.lock().st.spare_leaf, Some(192));
    assert_eq!(check_invariants(&xa), 65);
    let g = pin();
    assert_eq!(xa.load(130, &g), Some(&130));
    drop(g);
    // Emptying the tree frees the spare with the rest.
    for i in (0..64).chain([130]) {
        xa.remove(i);
    }
    assert!(xa.is_empty());
    assert_eq!(xa.height(), 0);
    assert_eq!(check_invariants(&xa), 0);
}

#[test]
fn no_spare_where_it_would_keep_the_tree_tall() {
    // 64 is the first index of height 2: its leaf goes, and the tree
    // collapses back to height 1 (as the kernel's xarray does).
    let xa: XArray<u64> = XArray::new();
    for i in 0..65u64 {
        xa.store(i, Arc::new(i)).unwrap();
    }
    assert_eq!(xa.height(), 2);
    xa.remove(64);
    assert_eq!(xa.height(), 1);
    assert_eq!(xa.lock().st.spare_leaf, None);
    assert_eq!(check_invariants(&xa), 64);
    // Likewise an emptied subtree whose leaf is the only child of its parent.
    xa.store(1 << 20, Arc::new(1 << 20)).unwrap();
    assert_eq!(xa.height(), 4);
    xa.remove(1 << 20);
    assert_eq!(xa.height(), 1);
    assert_eq!(check_invariants(&xa), 64);
}

#[test]
fn random_ops_keep_the_invariants_with_spares() {
    // A deterministic pseudo-random mix over a few leaves, checking the
    // structure (at most one empty leaf, the spare) after every operation.
    let xa: XArray<u64, (), LINE_SPACING> = XArray::default();
    let mut live = std::collections::BTreeSet::new();
    let mut k = 0x9E37_79B9_7F4A_7C15u64;
    for step in 0..4000u64 {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (k >> 33) % 600;
        match (k >> 20) % 3 {
            0 => {
                let got = xa.alloc(Arc::new(step), 0..=599).ok();
                let want = (0..600).find(|j| !live.contains(j));
                assert_eq!(got, want);
                if let Some(j) = want {
                    live.insert(j);
                }
            }
            1 => assert_eq!(xa.remove(i), live.remove(&i)),
            _ => {
                let fresh = xa.store(i, Arc::new(step)).unwrap().is_none();
                assert_eq!(fresh, live.insert(i));
            }
        }
        assert_eq!(check_invariants(&xa), live.len());
        let want_h = live.last().map_or(0, |&m| height_for(m));
        assert_eq!(xa.height(), want_h);
    }
}
