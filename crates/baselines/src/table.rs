//! The shrinker IDR of the baselines: a two-level table of atomic pointers
//! (lookup = two dependent loads, like a shallow radix tree), chunks allocated
//! on first use by the writer and kept until the table is dropped. Entries are
//! not owned: the design frees what they point to.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::Error;

const CHUNK: usize = 1024;
const TOP: usize = 1024;
/// Highest id + 1 the table can hold.
pub(crate) const MAX_IDS: usize = CHUNK * TOP;

type Chunk<T> = [AtomicPtr<T>; CHUNK];

pub(crate) struct IdTable<T> {
    top: Box<[AtomicPtr<Chunk<T>>]>,
}

// SAFETY: the table only stores pointers; what they point to is shared by the
// designs under their own protocol (T: Send + Sync). Chunks are owned.
unsafe impl<T: Send + Sync> Send for IdTable<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for IdTable<T> {}

impl<T> IdTable<T> {
    pub(crate) fn new() -> Self {
        Self {
            top: (0..TOP).map(|_| AtomicPtr::default()).collect(),
        }
    }

    /// The pointer stored at `id` (null if none).
    pub(crate) fn get(&self, id: usize) -> *mut T {
        let Some(c) = self.top.get(id / CHUNK) else {
            return std::ptr::null_mut();
        };
        let c = c.load(Ordering::Acquire);
        if c.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: chunks are never freed before the table (see Drop).
        unsafe { (*c)[id % CHUNK].load(Ordering::Acquire) }
    }

    /// Store `p` at `id`. Writers must be serialized by the caller.
    pub(crate) fn set(&self, id: usize, p: *mut T) -> Result<(), Error> {
        let slot = self.top.get(id / CHUNK).ok_or(Error::IdSpaceFull)?;
        let mut c = slot.load(Ordering::Acquire);
        if c.is_null() {
            let fresh: Box<Chunk<T>> = Box::new(std::array::from_fn(|_| AtomicPtr::default()));
            c = Box::into_raw(fresh);
            slot.store(c, Ordering::Release);
        }
        // SAFETY: chunk pointers stay valid until the table is dropped.
        unsafe { (*c)[id % CHUNK].store(p, Ordering::Release) };
        Ok(())
    }
}

impl<T> Drop for IdTable<T> {
    fn drop(&mut self) {
        for slot in self.top.iter_mut() {
            let c = *slot.get_mut();
            if !c.is_null() {
                // SAFETY: allocated by `set` with Box::into_raw, freed once here.
                drop(unsafe { Box::from_raw(c) });
            }
        }
    }
}
