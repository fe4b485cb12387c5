//! Loom models of the shrinker lifecycle (DESIGN.md §2), on the crate's real
//! `ActiveRef` (built against loom's atomics, mutex and condvar).
//!
//! Run: `cargo xtask loom` (it sets `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"`).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use unishrink_shrinker::loom_support::ActiveRef;

struct Shrinker {
    active: ActiveRef,
    running: AtomicUsize,
    free_returned: AtomicBool,
}

impl Shrinker {
    fn registered() -> Self {
        let s = Self {
            active: ActiveRef::new(),
            running: AtomicUsize::new(0),
            free_returned: AtomicBool::new(false),
        };
        s.active.init();
        s
    }

    /// What a walker does once it has found the shrinker.
    fn walk(&self) -> bool {
        if !self.active.try_get() {
            return false;
        }
        self.running.fetch_add(1, SeqCst);
        assert!(
            !self.free_returned.load(SeqCst),
            "callback ran after free returned"
        );
        self.running.fetch_sub(1, SeqCst);
        self.active.put();
        true
    }

    /// `RegisteredShrinker::free`: drop the initial reference, wait for zero.
    fn free(&self) {
        self.active.release_initial();
        assert_eq!(
            self.running.load(SeqCst),
            0,
            "free returned while a callback ran"
        );
        self.free_returned.store(true, SeqCst);
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// try_get/put racing free: no callback after free returns, and free returns
/// once the last in-flight callback ends (with two walkers).
#[test]
fn try_get_put_racing_free() {
    builder().check(|| {
        let s = Arc::new(Shrinker::registered());
        let walkers: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.walk())
            })
            .collect();
        s.free();
        for w in walkers {
            w.join().unwrap();
        }
        // Zero is terminal: nobody gets a reference any more.
        assert!(!s.active.try_get());
    });
}

/// Lookup racing unpublish: the IDR slot is an atomic pointer; `free` waits,
/// then unpublishes; the memory is reclaimed only after every reader is done
/// (the grace period, here: after join). A reader that found the pointer
/// either gets a reference before the count drops to zero, or fails.
#[test]
fn lookup_racing_unpublish() {
    builder().check(|| {
        let boxed = Box::into_raw(Box::new(Shrinker::registered()));
        let slot = Arc::new(AtomicPtr::new(boxed));
        let reader = {
            let slot = slot.clone();
            thread::spawn(move || {
                let p = slot.load(Acquire);
                if p.is_null() {
                    return false;
                }
                // SAFETY: the box is freed only after this thread is joined
                // (the model's grace period).
                unsafe { &*p }.walk()
            })
        };
        // SAFETY: as above; the freeing thread owns the box.
        let s = unsafe { &*boxed };
        s.free();
        slot.store(std::ptr::null_mut(), Release);
        reader.join().unwrap();
        // SAFETY: every reader has finished: the grace period has elapsed.
        drop(unsafe { Box::from_raw(boxed) });
    });
}

/// Registration publishes the count before the state: a walker that sees the
/// shrinker registered can take a reference.
#[test]
fn register_publishes_the_count() {
    builder().check(|| {
        let s = Arc::new(Shrinker {
            active: ActiveRef::new(),
            running: AtomicUsize::new(0),
            free_returned: AtomicBool::new(false),
        });
        let registered = Arc::new(AtomicBool::new(false));
        let w = {
            let (s, registered) = (s.clone(), registered.clone());
            thread::spawn(move || {
                if registered.load(Acquire) {
                    assert!(s.walk(), "registered shrinker refused a reference");
                }
            })
        };
        s.active.init();
        registered.store(true, Release);
        w.join().unwrap();
        s.free();
    });
}
