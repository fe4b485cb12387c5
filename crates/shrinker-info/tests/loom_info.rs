//! Loom models of the bit/summary protocol (see the crate docs).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p unishrink-shrinker-info
//! --release --test loom_info`.
//!
//! Under `cfg(loom)` the crate publishes arrays through a loom `AtomicPtr`
//! with a retire list freed on drop (arc-swap has no loom support), so these
//! models check the bit protocol, not arc-swap's reclamation.
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use unishrink_shrinker_info::ShrinkerInfo;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn ids(info: &ShrinkerInfo) -> Vec<usize> {
    info.iter_set_bits().collect()
}

/// (a) set_bit racing expand, unit absent at first: the set must install its
/// unit in the array expand copies from, or in the new one.
#[test]
fn set_bit_vs_expand_new_unit() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        let i2 = info.clone();
        let t = thread::spawn(move || i2.set_bit(10).unwrap());
        info.expand(128).unwrap();
        t.join().unwrap();
        assert!(info.test_bit(10));
        assert_eq!(ids(&info), vec![10]);
    });
}

/// (a') set_bit racing expand racing a walker of whichever array is current,
/// with the unit present but its summary stale (word 0): the set bit must be
/// found after all finish, whichever array the setter marked.
#[test]
fn set_bit_vs_expand_vs_walk() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        info.set_bit(5).unwrap();
        info.clear_bit(5);
        let (i1, i2) = (info.clone(), info.clone());
        let setter = thread::spawn(move || i1.set_bit(5).unwrap());
        let walker = thread::spawn(move || {
            // Walk whatever array is current; the result is unconstrained.
            let _ = i2.iter_set_bits().count();
        });
        info.expand(128).unwrap();
        let _ = ids(&info);
        setter.join().unwrap();
        walker.join().unwrap();
        assert!(info.test_bit(5));
        assert_eq!(ids(&info), vec![5]);
    });
}

/// (b) SHRINK_EMPTY: cache = "add object; set_bit", walker = "clear_bit;
/// fence; re-count; set_bit if non-zero". No lost bit.
#[test]
fn shrink_empty_no_lost_bit() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        info.set_bit(7).unwrap(); // stale bit from earlier objects
        let objects = Arc::new(AtomicUsize::new(0));
        let (i1, o1) = (info.clone(), objects.clone());
        let cache = thread::spawn(move || {
            // Relaxed on purpose: set_bit's leading fence must order it.
            o1.store(1, Ordering::Relaxed);
            i1.set_bit(7).unwrap();
        });
        info.clear_bit(7);
        fence(Ordering::SeqCst);
        if objects.load(Ordering::Relaxed) > 0 {
            info.set_bit(7).unwrap();
        }
        cache.join().unwrap();
        if objects.load(Ordering::Relaxed) == 1 {
            assert!(info.test_bit(7), "lost bit");
            assert_eq!(ids(&info), vec![7]);
        }
    });
}

/// (c) The walker's summary clear (unit word 0 → clear level 1 and level 2)
/// racing a set_bit: a later walk finds the bit.
#[test]
fn summary_clear_vs_set_bit() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        info.set_bit(5).unwrap();
        info.clear_bit(5); // unit present, word 0, summary still set
        let i1 = info.clone();
        let setter = thread::spawn(move || i1.set_bit(9).unwrap());
        let _ = ids(&info);
        setter.join().unwrap();
        assert_eq!(ids(&info), vec![9]);
    });
}

/// (c') Two walkers cleaning concurrently with a setter (the restore path of
/// one walker racing the clear of the other).
#[test]
fn two_walkers_vs_set_bit() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        info.set_bit(5).unwrap();
        info.clear_bit(5);
        let (i1, i2) = (info.clone(), info.clone());
        let setter = thread::spawn(move || i1.set_bit(5).unwrap());
        let walker = thread::spawn(move || {
            let _ = i2.iter_set_bits().count();
        });
        let _ = ids(&info);
        setter.join().unwrap();
        walker.join().unwrap();
        assert_eq!(ids(&info), vec![5]);
    });
}

/// Deferred counters: concurrent first adds race to install the counter
/// block (CAS, loser frees its own) and an xchg; nothing is lost.
#[test]
fn deferred_install_race() {
    model(|| {
        let info = Arc::new(ShrinkerInfo::new(64).unwrap());
        let i1 = info.clone();
        let t = thread::spawn(move || {
            i1.add_nr_deferred(3, 2).unwrap();
        });
        info.add_nr_deferred(3, 5).unwrap();
        let taken = info.xchg_nr_deferred(3);
        t.join().unwrap();
        assert_eq!(taken + info.nr_deferred(3), 7);
    });
}
