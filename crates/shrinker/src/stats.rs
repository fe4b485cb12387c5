//! Per-shrinker counters, sharded so concurrent walkers do not bounce one
//! cache line (the kernel keeps such counters per CPU).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crossbeam_utils::CachePadded;

use crate::scan::ScanTrace;

const SHARDS: usize = 4;

#[derive(Default)]
struct Shard {
    calls: AtomicU64,
    scanned: AtomicU64,
    freed: AtomicU64,
    empty: AtomicU64,
    panics: AtomicU64,
    bit_restores: AtomicU64,
}

/// Counters of one shrinker. The shards are allocated on first use, so a
/// shrinker that never runs costs one pointer.
#[derive(Default)]
pub(crate) struct ShrinkerStats {
    shards: OnceLock<Box<[CachePadded<Shard>; SHARDS]>>,
}

thread_local! {
    static SHARD_ANCHOR: u8 = const { 0 };
}

fn shard_index() -> usize {
    // Threads' TLS blocks live at different addresses: a cheap per-thread
    // spread without any shared counter.
    SHARD_ANCHOR.with(|a| (a as *const u8 as usize >> 12) % SHARDS)
}

impl ShrinkerStats {
    /// Back to all zeros (a reused shell): the shards go, if any.
    pub(crate) fn reset(&mut self) {
        self.shards.take();
    }

    fn shard(&self) -> &Shard {
        &self
            .shards
            .get_or_init(|| Box::new(std::array::from_fn(|_| CachePadded::new(Shard::default()))))
            [shard_index()]
    }

    pub(crate) fn record(&self, t: &ScanTrace) {
        let s = self.shard();
        s.calls.fetch_add(1, Ordering::Relaxed);
        // Skipping zero adds saves two locked instructions on idle passes.
        if t.scanned != 0 {
            s.scanned.fetch_add(t.scanned, Ordering::Relaxed);
        }
        if t.freed != 0 {
            s.freed.fetch_add(t.freed, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_empty(&self) {
        let s = self.shard();
        s.calls.fetch_add(1, Ordering::Relaxed);
        s.empty.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_panic(&self) {
        self.shard().panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_bit_restore(&self) {
        self.shard().bit_restores.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let mut out = StatsSnapshot::default();
        if let Some(shards) = self.shards.get() {
            for s in shards.iter() {
                out.calls += s.calls.load(Ordering::Relaxed);
                out.scanned += s.scanned.load(Ordering::Relaxed);
                out.freed += s.freed.load(Ordering::Relaxed);
                out.empty += s.empty.load(Ordering::Relaxed);
                out.panics += s.panics.load(Ordering::Relaxed);
                out.bit_restores += s.bit_restores.load(Ordering::Relaxed);
            }
        }
        out
    }
}

/// A point-in-time sum of a shrinker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `do_shrink_slab` calls.
    pub calls: u64,
    /// Objects scanned.
    pub scanned: u64,
    /// Objects freed.
    pub freed: u64,
    /// SHRINK_EMPTY results (each may clear a bit).
    pub empty: u64,
    /// Callback panics caught.
    pub panics: u64,
    /// Bits set back after a SHRINK_EMPTY clear found objects on recount.
    pub bit_restores: u64,
}
