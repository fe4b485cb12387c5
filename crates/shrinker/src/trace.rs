//! `tracing` events mirroring the kernel's `mm_shrink_slab_start`/`_end`.
//! With no interested subscriber each event costs one cached interest check.

use unishrink_memcg::Memcg;

use crate::registry::ShrinkerId;
use crate::scan::ScanTrace;

/// Target of every event of this crate.
pub const TARGET: &str = "unishrink::shrink_slab";

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
