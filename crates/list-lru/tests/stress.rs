//! Bounded concurrent stress: adds, deletes, shrinker walks and memcg
//! offlines race; every item must be accounted for exactly once. Run under
//! AddressSanitizer too (see the crate README in the report).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use unishrink_list_lru::{ListLru, LruShrinker, LruWalk};
use unishrink_shrinker::{Memcg, MemcgConfig, Registry, ShrinkerConfig, DEF_PRIORITY};

const ADDERS: usize = 3;
const ADDS_PER_THREAD: u64 = 4_000;

#[test]
fn concurrent_add_del_walk_offline_loses_nothing() {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let disposed = Arc::new(AtomicU64::new(0));
    let d = disposed.clone();
    let cache = LruShrinker::new(
        ListLru::<Box<u64>>::new(&reg),
        ShrinkerConfig::new("stress"),
        // Rotate odd values once in a while so all verdicts are exercised.
        |v| {
            if **v % 7 == 0 {
                LruWalk::Rotate
            } else {
                LruWalk::Removed
            }
        },
        move |_| {
            d.fetch_add(1, Ordering::Relaxed);
        },
    )
    .unwrap();
    let lru = cache.lru().clone();
    let memcgs: Arc<Mutex<Vec<Memcg>>> = Arc::new(Mutex::new(vec![root.clone()]));
    let added = Arc::new(AtomicU64::new(0));
    let deleted = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(ADDERS + 3));
    let (tx, rx) = mpsc::channel();
    let mut joins = Vec::new();

    for t in 0..ADDERS {
        let (lru, memcgs, added, start, tx) = (
            lru.clone(),
            memcgs.clone(),
            added.clone(),
            start.clone(),
            tx.clone(),
        );
        joins.push(thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
            start.wait();
            for i in 0..ADDS_PER_THREAD {
                let m = {
                    let v = memcgs.lock();
                    v[rng.gen_range(0..v.len())].clone()
                };
                // The memcg may be offline by now: the add goes to an ancestor.
                let h = lru.add(&m, rng.gen_range(0..2), Box::new(i)).unwrap();
                added.fetch_add(1, Ordering::Relaxed);
                if i % 3 == 0 {
                    let _ = tx.send(h);
                }
            }
        }));
    }
    drop(tx);
    {
        let (lru, deleted, start) = (lru.clone(), deleted.clone(), start.clone());
        joins.push(thread::spawn(move || {
            start.wait();
            for h in rx {
                if lru.del(&h).is_some() {
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    {
        let (reg, memcgs, done, start) = (reg.clone(), memcgs.clone(), done.clone(), start.clone());
        joins.push(thread::spawn(move || {
            start.wait();
            let mut prio = DEF_PRIORITY;
            while !done.load(Ordering::Relaxed) {
                let snapshot = memcgs.lock().clone();
                for m in snapshot {
                    for nid in 0..2 {
                        reg.shrink_slab(&m, nid, prio).unwrap();
                    }
                }
                prio = if prio == 0 { DEF_PRIORITY } else { prio - 1 };
            }
        }));
    }
    {
        let (reg, memcgs, start) = (reg.clone(), memcgs.clone(), start.clone());
        joins.push(thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(99);
            start.wait();
            for _ in 0..200 {
                let len = memcgs.lock().len();
                if len < 8 || rng.gen_bool(0.5) {
                    let parent = {
                        let v = memcgs.lock();
                        v[rng.gen_range(0..v.len())].clone()
                    };
                    if let Ok(m) = reg.create_memcg(&parent) {
                        memcgs.lock().push(m);
                    }
                } else {
                    let i = rng.gen_range(1..len);
                    let m = memcgs.lock()[i].clone();
                    // Refused while it has children; keep it then.
                    if reg.offline_memcg(&m).is_ok() {
                        memcgs.lock().retain(|x| *x != m);
                    }
                }
                thread::yield_now();
            }
        }));
    }
    let offliner = joins.pop().unwrap();
    let walker = joins.pop().unwrap();
    let deleter = joins.pop().unwrap();
    for j in joins {
        j.join().unwrap();
    }
    offliner.join().unwrap();
    deleter.join().unwrap();
    done.store(true, Ordering::Relaxed);
    walker.join().unwrap();

    // Every non-empty list of an online memcg has its bit set.
    let id = cache.id().0 as usize;
    for m in reg.memcgs().iter() {
        for nid in 0..2 {
            if lru.count(&m, nid).unwrap() > 0 {
                assert!(
                    m.shrinker_info(nid).unwrap().test_bit(id),
                    "{:?} node {nid} has items but no bit",
                    m.id()
                );
            }
        }
    }
    let online_total: u64 = reg
        .memcgs()
        .iter()
        .map(|m| lru.count(&m, 0).unwrap() + lru.count(&m, 1).unwrap())
        .sum();
    assert_eq!(online_total, lru.total(), "no items left on dead memcgs");
    // Take the rest offline, leaves first (memcgs link parents and children):
    // their items move up, nothing is lost on the way.
    let mut left: Vec<Memcg> = memcgs.lock().iter().skip(1).cloned().collect();
    while !left.is_empty() {
        left.retain(|m| reg.offline_memcg(m).is_err());
    }
    assert_eq!(
        lru.total(),
        lru.count(&root, 0).unwrap() + lru.count(&root, 1).unwrap()
    );
    let remaining = lru.drain().len() as u64;
    let added = added.load(Ordering::Relaxed);
    assert_eq!(added, ADDERS as u64 * ADDS_PER_THREAD);
    assert_eq!(
        added,
        disposed.load(Ordering::Relaxed) + deleted.load(Ordering::Relaxed) + remaining,
        "added = disposed + deleted + remaining"
    );
}
