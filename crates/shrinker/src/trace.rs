//! `tracing` events mirroring the kernel's `mm_shrink_slab_start`/`_end`.
//!
//! `shrink_slab` asks once per walk whether a subscriber wants
//! `unishrink::shrink_slab` events at TRACE level. When none does, the walk
//! skips the per-shrinker span and events entirely: even a disabled callsite
//! costs a few branches per visit, and keeping them out of the visit lets the
//! compiler inline it (about 10 ns per visited shrinker on the bench
//! machine). A subscriber installed during a walk sees the next walk.
//!
//! * `"shrink_slab start"` is emitted by [`do_shrink_slab`](crate::do_shrink_slab)
//!   once the scan target is known and before any `scan_objects` call (not
//!   for an empty or zero count, as in the kernel): memcg_id, nid, priority,
//!   seeks, batch, nr_deferred, freeable, delta, total_scan. It does not know
//!   the shrinker's name and id; the `"shrink_slab"` end event that follows
//!   on the same thread does, and a start without its end is a callback that
//!   is still running.
//! * `"shrink_slab"` (the end) carries the shrinker's name and id, the
//!   numbers above and scanned, freed, new_nr_deferred, stopped.
//! * `"shrink_slab empty"`: `count_objects` returned SHRINK_EMPTY.

use unishrink_memcg::Memcg;

use crate::registry::ShrinkerId;
use crate::scan::{ScanParams, ScanTrace};

/// Target of every event of this crate.
pub const TARGET: &str = "unishrink::shrink_slab";

/// Whether a subscriber wants this module's trace events. A walk asks once
/// and skips the per-shrinker span and events when nobody listens: even a
/// disabled `tracing` callsite costs a few branches and keeps the visit from
/// being inlined.
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::TRACE)
}

pub(crate) fn start(memcg: &Memcg, nid: usize, priority: u32, params: ScanParams, t: &ScanTrace) {
    tracing::trace!(
        target: TARGET,
        memcg_id = memcg.id().0,
        nid,
        priority,
        seeks = params.seeks,
        batch = params.batch,
        nr_deferred = t.nr_deferred,
        freeable = t.freeable,
        delta = t.delta,
        total_scan = t.total_scan,
        "shrink_slab start"
    );
}

pub(crate) fn scanned(
    id: ShrinkerId,
    name: &str,
    memcg: &Memcg,
    nid: usize,
    priority: u32,
    t: &ScanTrace,
) {
    tracing::trace!(
        target: TARGET,
        shrinker = name,
        shrinker_id = id.0,
        memcg_id = memcg.id().0,
        nid,
        priority,
        nr_deferred = t.nr_deferred,
        freeable = t.freeable,
        delta = t.delta,
        total_scan = t.total_scan,
        scanned = t.scanned,
        freed = t.freed,
        new_nr_deferred = t.new_nr_deferred,
        stopped = t.stopped,
        "shrink_slab"
    );
}

pub(crate) fn empty(id: ShrinkerId, name: &str, memcg: &Memcg, nid: usize, priority: u32) {
    tracing::trace!(
        target: TARGET,
        shrinker = name,
        shrinker_id = id.0,
        memcg_id = memcg.id().0,
        nid,
        priority,
        "shrink_slab empty"
    );
}
