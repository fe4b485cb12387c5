//! A small SRCU: sleepable read sections and a `synchronize` that waits for
//! every section that started before it.
//!
//! Readers increment a counter of the current index (`idx & 1`) in a slot
//! chosen by thread, then issue a full fence; `unlock` decrements the same
//! counter. `synchronize` (serialized) flips the index and waits for the old
//! index's counters to sum to zero, twice, so it also catches a reader that
//! read the index just before a flip and counted itself on the other side.
//! The fence pairing (reader: increment, fence, read data; updater: unlink,
//! fence, read counters) guarantees that a reader the updater does not see
//! sees the unlink.

use std::sync::atomic::{fence, AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::{Backoff, CachePadded};
use parking_lot::Mutex;

const SLOTS: usize = 32;

pub(crate) struct Srcu {
    idx: AtomicUsize,
    slots: Box<[CachePadded<[AtomicIsize; 2]>]>,
    gp: Mutex<()>,
}

pub(crate) struct ReadGuard<'a> {
    srcu: &'a Srcu,
    slot: usize,
    idx: usize,
}

fn thread_slot() -> usize {
    thread_local!(static ANCHOR: u8 = const { 0 });
    // The address of a thread-local identifies the thread; hash it to a slot.
    let a = ANCHOR.with(|a| a as *const u8 as usize);
    (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) % SLOTS
}

impl Srcu {
    pub(crate) fn new() -> Self {
        Self {
            idx: AtomicUsize::new(0),
            slots: (0..SLOTS)
                .map(|_| CachePadded::new([AtomicIsize::new(0), AtomicIsize::new(0)]))
                .collect(),
            gp: Mutex::new(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn idx_for_test(&self) -> usize {
        self.idx.load(Ordering::SeqCst)
    }

    pub(crate) fn read_lock(&self) -> ReadGuard<'_> {
        let slot = thread_slot();
        let idx = self.idx.load(Ordering::Relaxed) & 1;
        self.slots[slot][idx].fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        ReadGuard {
            srcu: self,
            slot,
            idx,
        }
    }

    fn readers(&self, idx: usize) -> isize {
        self.slots
            .iter()
            .map(|s| s[idx].load(Ordering::SeqCst))
            .sum()
    }

    /// Wait until every read section that started before this call has ended.
    pub(crate) fn synchronize(&self) {
        let _g = self.gp.lock();
        fence(Ordering::SeqCst);
        for _ in 0..2 {
            let old = self.idx.fetch_add(1, Ordering::SeqCst) & 1;
            fence(Ordering::SeqCst);
            let backoff = Backoff::new();
            let mut nap = Duration::from_micros(20);
            while self.readers(old) != 0 {
                if backoff.is_completed() {
                    // Long waits (a blocked reader) sleep instead of burning a core.
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(1));
                } else {
                    backoff.snooze();
                }
            }
            fence(Ordering::SeqCst);
        }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.srcu.slots[self.slot][self.idx].fetch_sub(1, Ordering::Release);
    }
}
