//! The per-shrinker refcount of Linux ≥ 6.7: walkers `try_get` (increment
//! unless zero) before leaving the RCU section and `put` after the callbacks;
//! `free` drops the initial reference and waits for zero (the completion).

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct Refs {
    count: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Refs {
    /// Registration: the initial reference.
    pub(crate) fn activate(&self) {
        self.count.store(1, Ordering::Release);
    }

    pub(crate) fn try_get(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return false;
            }
            match self
                .count
                .compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    pub(crate) fn put(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock() = true;
            self.cv.notify_all();
        }
    }

    /// Drop the initial reference and wait until every walker has put its own.
    pub(crate) fn put_and_wait(&self) {
        self.put();
        let mut done = self.done.lock();
        while !*done {
            self.cv.wait(&mut done);
        }
    }
}
