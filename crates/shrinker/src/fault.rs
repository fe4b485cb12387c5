//! Fault injection for tests (cargo feature `fault-injection`, off by default).
//!
//! Each [`Registry`](crate::Registry) owns one [`Faults`] value (no global
//! state, so parallel tests do not disturb each other). A test arms a fault
//! with "fail the next N" and the registry's allocation paths consult it at
//! the exact point where a real allocation could fail:
//!
//! | fault | where | defined outcome |
//! | --- | --- | --- |
//! | [`Faults::fail_idr_alloc`] | IDR node allocation in [`Registry::alloc`](crate::Registry::alloc) | `Error::OutOfMemory`; no id consumed |
//! | [`Faults::fail_info_expand`] | growth of every memcg's shrinker_info in `alloc` | `Error::OutOfMemory`; the id is released (the next alloc gets it again); memcgs grown before the failure keep their larger capacity (harmless) and lose no bit or counter |
//! | [`Faults::fail_unit_alloc`] | unit allocation in [`Registry::set_shrinker_bit`](crate::Registry::set_shrinker_bit) | `Error::OutOfMemory`; the bit is not set, nothing else changes; a retry succeeds |
//!
//! The radix tree and shrinker_info have per-instance hooks of their own
//! (`XArray::fail_nth_node_alloc`, `ShrinkerInfo::fail_next_allocations`),
//! but the registry's IDR and the memcgs' infos are private to it, so these
//! faults are injected at the registry's call sites and reproduce the
//! documented failure states of those calls (including a *partial*
//! expansion: [`Faults::fail_info_expand`] first grows the first
//! `grow_first` online memcgs, exactly what `expand_all` leaves behind when
//! an allocation fails midway).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use unishrink_memcg::MemcgTree;

use crate::Error;

/// Armed faults of one registry. All counters start at zero (no faults).
#[derive(Debug, Default)]
pub struct Faults {
    idr_alloc: AtomicU64,
    info_expand: AtomicU64,
    info_expand_grow_first: AtomicUsize,
    unit_alloc: AtomicU64,
    injected: AtomicU64,
}

/// Decrements `n` if it is non-zero; returns whether it was.
fn take(n: &AtomicU64) -> bool {
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
        .is_ok()
}

impl Faults {
    /// The next `n` IDR allocations in `alloc` fail.
    pub fn fail_idr_alloc(&self, n: u64) {
        self.idr_alloc.store(n, Ordering::Release);
    }

    /// The next `n` shrinker_info expansions in `alloc` fail, each after
    /// growing the first `grow_first` online memcgs (pre-order) to the new size.
    pub fn fail_info_expand(&self, n: u64, grow_first: usize) {
        self.info_expand_grow_first
            .store(grow_first, Ordering::Release);
        self.info_expand.store(n, Ordering::Release);
    }

    /// The next `n` unit allocations in `set_shrinker_bit` fail.
    pub fn fail_unit_alloc(&self, n: u64) {
        self.unit_alloc.store(n, Ordering::Release);
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.idr_alloc.store(0, Ordering::Release);
        self.info_expand.store(0, Ordering::Release);
        self.unit_alloc.store(0, Ordering::Release);
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    fn hit(&self, n: &AtomicU64) -> bool {
        let hit = take(n);
        if hit {
            self.injected.fetch_add(1, Ordering::AcqRel);
        }
        hit
    }

    /// Hook: IDR node allocation.
    pub(crate) fn idr_alloc(&self) -> Result<(), Error> {
        if self.hit(&self.idr_alloc) {
            return Err(Error::OutOfMemory);
        }
        Ok(())
    }

    /// Hook: growing every memcg's shrinker_info to `new_nr_max`. On an
    /// injected failure the first `grow_first` memcgs are grown first.
    pub(crate) fn info_expand(&self, tree: &MemcgTree, new_nr_max: usize) -> Result<(), Error> {
        if new_nr_max <= tree.map_nr_max() || !self.hit(&self.info_expand) {
            return Ok(());
        }
        let grow_first = self.info_expand_grow_first.load(Ordering::Acquire);
        for memcg in tree.iter().take(grow_first) {
            for nid in 0..memcg.nr_nodes() {
                if let Ok(info) = memcg.shrinker_info(nid) {
                    // A real failure could also hit here; either way the
                    // caller sees OutOfMemory below.
                    let _ = info.expand(new_nr_max);
                }
            }
        }
        Err(Error::OutOfMemory)
    }

    /// Hook: unit allocation in `set_shrinker_bit`.
    pub(crate) fn unit_alloc(&self) -> Result<(), Error> {
        if self.hit(&self.unit_alloc) {
            return Err(Error::OutOfMemory);
        }
        Ok(())
    }
}
