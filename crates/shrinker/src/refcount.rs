//! The active reference count of a shrinker (DESIGN.md §2, steps 2–4).
//!
//! * `register` sets the count to 1 (the *initial* reference).
//! * A walker calls [`ActiveRef::try_get`]: increment unless zero. Success
//!   means the shrinker is registered and cannot finish freeing until the
//!   matching [`ActiveRef::put`].
//! * `free` calls [`ActiveRef::release_initial`]: it drops the initial
//!   reference and, if walkers still hold references, waits until the last
//!   of them puts. Once it returns no callback is running and, since the
//!   count can never leave zero again, none will start.
//!
//! The count only ever goes 0 → 1 once (in `register`); afterwards increments
//! happen only from a non-zero value, so "zero" is terminal. Only the freeing
//! thread ever waits, so a free waits for *its own* in-flight callbacks and
//! nothing else. The common case — no walker inside — costs one atomic
//! decrement: no lock, no wake-up. A walker's last `put` takes the small
//! mutex and signals only if the freer is actually waiting.

use crate::sync::{AtomicUsize, Condvar, Mutex};
use std::sync::atomic::Ordering;

#[derive(Default)]
struct Completion {
    /// The count reached zero through a walker's `put`.
    done: bool,
    /// The freeing thread is (about to be) blocked on the condvar.
    waiting: bool,
}

/// Active reference count plus the completion the freeing thread waits on.
pub struct ActiveRef {
    count: AtomicUsize,
    completion: Mutex<Completion>,
    zero: Condvar,
}

impl Default for ActiveRef {
    fn default() -> Self {
        Self::new()
    }
}

impl ActiveRef {
    /// A count of zero: not yet registered.
    pub fn new() -> Self {
        Self {
            count: AtomicUsize::new(0),
            completion: Mutex::new(Completion::default()),
            zero: Condvar::new(),
        }
    }

    /// Back to the state of [`ActiveRef::new`], for a shell being reused
    /// (`&mut`: nobody else can see it).
    pub fn reset(&mut self) {
        self.count.store(0, Ordering::Relaxed);
        let c = self.completion.get_mut().unwrap_or_else(|e| e.into_inner());
        *c = Completion::default();
    }

    /// Takes the initial reference (registration). Must be called once, while
    /// the count is zero and before anyone can `try_get`.
    pub fn init(&self) {
        // Release: a walker whose try_get succeeds (Acquire) sees everything
        // the registering thread wrote before publishing.
        self.count.store(1, Ordering::Release);
    }

    /// Increments unless zero. Returns whether a reference was taken.
    #[inline]
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

    /// Drops a walker's reference; the last one completes the free.
    /// Returns whether this was the last reference.
    #[inline]
    pub fn put(&self) -> bool {
        // AcqRel: the callbacks' effects happen-before whatever the freeing
        // thread does after `release_initial` returns.
        if self.count.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        self.complete();
        true
    }

    /// The last put: wakes a `release_initial` waiting for it.
    #[cold]
    fn complete(&self) {
        let mut c = self.completion.lock().unwrap_or_else(|e| e.into_inner());
        c.done = true;
        if c.waiting {
            self.zero.notify_one();
        }
    }

    /// Drops the initial reference and waits until every walker's reference
    /// is gone. Returns whether the initial reference was the last one (no
    /// walker was inside).
    pub fn release_initial(&self) -> bool {
        // AcqRel as in `put`: if we are last, we must see the effects of
        // every earlier `put`.
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            return true;
        }
        // Callbacks are usually short: spin a little before sleeping, so the
        // common race with a walk costs no futex wait/wake. Leaving the spin
        // early is only an optimization — completion is still decided under
        // the mutex below, which also orders the walker's last touch of this
        // memory (its unlock) before our return.
        #[cfg(not(loom))]
        {
            let backoff = crossbeam_utils::Backoff::new();
            while self.count.load(Ordering::Acquire) != 0 && !backoff.is_completed() {
                backoff.snooze();
            }
        }
        let mut c = self.completion.lock().unwrap_or_else(|e| e.into_inner());
        // `done` and `waiting` are both under the mutex: a last `put`
        // either ran before we locked (done is set) or will see `waiting`.
        while !c.done {
            c.waiting = true;
            c = self.zero.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        drop(c);
        // The mutex already orders the last walker's callbacks before us; this
        // Acquire load of the zero its `put` wrote says so in the atomics too
        // (ThreadSanitizer cannot see inside the uninstrumented std mutex).
        let zero = self.count.load(Ordering::Acquire);
        debug_assert_eq!(zero, 0);
        false
    }
}
