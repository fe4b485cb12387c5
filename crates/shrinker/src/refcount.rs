//! The active reference count of a shrinker (DESIGN.md §2, steps 2–4).
//!
//! * `register` sets the count to 1 (the *initial* reference).
//! * A walker calls [`ActiveRef::try_get`]: increment unless zero. Success
//!   means the shrinker is registered and cannot finish freeing until the
//!   matching [`ActiveRef::put`].
//! * `free` drops the initial reference with `put` and then
//!   [`ActiveRef::wait_for_zero`]: once it returns no callback is running and,
//!   since the count can never leave zero again, none will start.
//!
//! The count only ever goes 0 → 1 once (in `register`); afterwards increments
//! happen only from a non-zero value, so "zero" is terminal. The last `put`
//! signals a condition variable; only the freeing thread waits on it, so a
//! free waits for *its own* in-flight callbacks and nothing else.

use crate::sync::{AtomicUsize, Condvar, Mutex};
use std::sync::atomic::Ordering;

/// Active reference count plus the completion the freeing thread waits on.
pub struct ActiveRef {
    count: AtomicUsize,
    done: Mutex<bool>,
    zero: Condvar,
}

impl ActiveRef {
    /// A count of zero: not yet registered.
    pub fn new() -> Self {
        Self {
            count: AtomicUsize::new(0),
            done: Mutex::new(false),
            zero: Condvar::new(),
        }
    }

    /// Takes the initial reference (registration). Must be called once, while
    /// the count is zero and before anyone can `try_get`.
    pub fn init(&self) {
        // Release: a walker whose try_get succeeds (Acquire) sees everything
        // the registering thread wrote before publishing.
        self.count.store(1, Ordering::Release);
    }

    /// Increments unless zero. Returns whether a reference was taken.
    pub fn try_get(&self) -> bool {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            // Acquire pairs with `init`'s Release; the increment itself needs
            // no stronger ordering because zero is terminal.
            match self.count.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Drops one reference; the last one wakes the freeing thread.
    /// Returns whether this was the last reference.
    pub fn put(&self) -> bool {
        // AcqRel: the callbacks' effects happen-before whatever the freeing
        // thread does after wait_for_zero returns.
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            *done = true;
            self.zero.notify_all();
            true
        } else {
            false
        }
    }

    /// Blocks until the count has reached zero (after the initial reference
    /// was dropped with `put`).
    pub fn wait_for_zero(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.zero.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}
