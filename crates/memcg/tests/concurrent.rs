//! Concurrency: growth racing creation (no window in which a new memcg is too
//! small), and walks racing creation/offlining (stable memcgs visited once).
#![cfg(feature = "memcg")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use unishrink_memcg::{Config, Memcg, MemcgId, MemcgTree};

const NODES: usize = 2;

fn tree(max_id: u32) -> MemcgTree {
    MemcgTree::new(Config {
        nr_nodes: NODES,
        max_id,
        ..Config::default()
    })
}

/// Checks "capacity ≥ the map_nr_max observed before looking at it". Valid at
/// any instant: expand_all grows every online memcg before publishing the new
/// map_nr_max, and create sizes from the published value under the lock.
fn assert_big_enough(m: &Memcg, seen_map_nr_max: usize) {
    for nid in 0..NODES {
        let cap = m.shrinker_info(nid).unwrap().map_nr_max();
        assert!(
            cap >= seen_map_nr_max,
            "{} node {nid}: capacity {cap} < map_nr_max {seen_map_nr_max}",
            m.id()
        );
    }
}

#[test]
fn expansion_racing_creation_leaves_no_small_memcg() {
    const STEPS: usize = 300;
    let t = tree(65_535);
    let root = t.online_root().unwrap();
    let start = Barrier::new(3);
    let done = AtomicBool::new(false);
    let created = AtomicUsize::new(0);

    thread::scope(|s| {
        // Grower: ids keep being handed out, so the capacity keeps rising.
        s.spawn(|| {
            start.wait();
            for i in 1..=STEPS {
                t.expand_all(i * 37).unwrap();
            }
        });
        // Creator: builds a random tree and offlines some leaves.
        s.spawn(|| {
            let mut rng = StdRng::seed_from_u64(1);
            let mut live = vec![root.clone()];
            start.wait();
            for _ in 0..STEPS {
                let parent = live[rng.gen_range(0..live.len())].clone();
                let child = t.create(&parent).unwrap();
                created.fetch_add(1, Ordering::Relaxed);
                let seen = t.map_nr_max();
                assert_big_enough(&child, seen);
                live.push(child);
                if rng.gen_bool(0.3) {
                    let i = rng.gen_range(1..live.len());
                    if live[i].children().is_empty() {
                        t.offline(&live.swap_remove(i)).unwrap();
                    }
                }
            }
            done.store(true, Ordering::Release);
        });
        // Checker: anything reachable by lookup or walk is big enough.
        s.spawn(|| {
            let mut rng = StdRng::seed_from_u64(2);
            start.wait();
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                rounds += 1;
                let seen = t.map_nr_max();
                for m in t.iter() {
                    assert_big_enough(&m, seen);
                }
                let seen = t.map_nr_max();
                let id = MemcgId(rng.gen_range(1..=(STEPS as u32 + 1)));
                if let Some(m) = t.lookup(id) {
                    assert_big_enough(&m, seen);
                }
            }
        });
    });

    assert_eq!(created.load(Ordering::Relaxed), STEPS);
    let final_max = t.map_nr_max();
    assert_eq!(final_max, STEPS * 37);
    let mut n = 0;
    for m in t.iter() {
        assert_big_enough(&m, final_max);
        n += 1;
    }
    assert_eq!(n, t.nr_online());
    assert!(n > 1);
}

#[test]
fn walks_visit_every_stable_memcg_exactly_once() {
    const WALKS: usize = 300;
    const CHURNERS: usize = 2;
    const CHURN_OPS: usize = 20_000;
    let t = tree(65_535);
    let root = t.online_root().unwrap();
    // Stable memcgs: online for the whole test, in a tree three levels deep.
    let mut stable = vec![root.clone()];
    for i in 0..15 {
        let parent = stable[i / 3].clone();
        stable.push(t.create(&parent).unwrap());
    }
    let stable_ids: Vec<MemcgId> = stable.iter().map(Memcg::id).collect();
    let start = Barrier::new(CHURNERS + 1);
    let stop = AtomicBool::new(false);
    let churned = AtomicUsize::new(0);

    thread::scope(|s| {
        for seed in 0..CHURNERS as u64 {
            let (t, stable, start, stop, churned) = (&t, &stable, &start, &stop, &churned);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed);
                // Transient memcgs, created under stable or transient parents
                // and offlined leaf-first.
                let mut mine: Vec<Memcg> = Vec::new();
                start.wait();
                for _ in 0..CHURN_OPS {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    if mine.len() < 20 && rng.gen_bool(0.6) {
                        let parent = if mine.is_empty() || rng.gen_bool(0.5) {
                            stable[rng.gen_range(0..stable.len())].clone()
                        } else {
                            mine[rng.gen_range(0..mine.len())].clone()
                        };
                        mine.push(t.create(&parent).unwrap());
                    } else if let Some(i) = (0..mine.len())
                        .rev()
                        .find(|&i| mine[i].children().is_empty())
                    {
                        t.offline(&mine.remove(i)).unwrap();
                    }
                    churned.fetch_add(1, Ordering::Relaxed);
                }
                // Leave only the stable memcgs behind.
                while let Some(m) = mine.pop() {
                    t.offline(&m).unwrap();
                }
            });
        }
        start.wait();
        for _ in 0..WALKS {
            let order: Vec<Memcg> = t.iter().collect();
            let mut pos: HashMap<usize, usize> = HashMap::new();
            for (i, m) in order.iter().enumerate() {
                // Ids identify memcgs here: churn is bounded well below
                // max_id, so no id is handed out twice during the test.
                assert!(
                    pos.insert(m.id().0 as usize, i).is_none(),
                    "{} yielded twice",
                    m.id()
                );
            }
            for (k, id) in stable_ids.iter().enumerate() {
                let at = *pos
                    .get(&(id.0 as usize))
                    .unwrap_or_else(|| panic!("stable {id} not visited"));
                assert_eq!(order[at], stable[k]);
                // Pre-order: the (stable) parent comes first.
                if let Some(p) = stable[k].parent() {
                    assert!(pos[&(p.id().0 as usize)] < at, "{id} before its parent");
                }
            }
            // A subtree walk stays in the subtree and starts at its root.
            let sub = &stable[1];
            let inner: Vec<Memcg> = t.iter_subtree(sub).collect();
            assert_eq!(inner.first(), Some(sub));
            assert!(inner.iter().all(|m| m.is_descendant_of(sub)));
            for k in [4, 5, 6] {
                assert_eq!(inner.iter().filter(|m| **m == stable[k]).count(), 1);
            }
        }
        stop.store(true, Ordering::Release);
    });

    assert!(churned.load(Ordering::Relaxed) > 0);
    let after: Vec<MemcgId> = t.iter().map(|m| m.id()).collect();
    let mut want = Vec::new();
    fn pre(m: &Memcg, out: &mut Vec<MemcgId>) {
        out.push(m.id());
        for c in m.children() {
            pre(&c, out);
        }
    }
    pre(&root, &mut want);
    assert_eq!(after, want);
    assert_eq!(after.len(), stable.len());
}

#[test]
fn racing_offlines_lose_no_counter() {
    const ROUNDS: u64 = 200;
    let t = tree(65_535);
    t.expand_all(64).unwrap();
    let root = t.online_root().unwrap();
    let start = Barrier::new(3);
    let mut want = 0;
    for round in 1..=ROUNDS {
        let p = t.create(&root).unwrap();
        let c = t.create(&p).unwrap();
        c.shrinker_info(1)
            .unwrap()
            .add_nr_deferred(7, round)
            .unwrap();
        p.shrinker_info(1).unwrap().add_nr_deferred(7, 1).unwrap();
        want += round + 1;
        let (r_c1, r_c2, r_p) = thread::scope(|s| {
            let c1 = s.spawn(|| {
                start.wait();
                t.offline(&c)
            });
            let c2 = s.spawn(|| {
                start.wait();
                t.offline(&c)
            });
            start.wait();
            let rp = t.offline(&p);
            (c1.join().unwrap(), c2.join().unwrap(), rp)
        });
        // Exactly one of the two offlines of `c` wins.
        let oks = [r_c1, r_c2].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "{r_c1:?} {r_c2:?}");
        assert!([r_c1, r_c2].contains(&Err(unishrink_memcg::MemcgError::Offline(c.id()))));
        match r_p {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e, unishrink_memcg::MemcgError::HasChildren(p.id()));
                t.offline(&p).unwrap();
            }
        }
        assert_eq!(root.shrinker_info(1).unwrap().nr_deferred(7), want);
        assert_eq!(t.nr_online(), 1);
    }
}
