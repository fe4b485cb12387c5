//! The kernel's `do_shrink_slab` scan arithmetic, shared by the three baselines.
//!
//! Given `freeable` from `count_objects` and the deferred work `nr` taken
//! (exchanged to 0) from the shrinker's counter:
//!
//! * `delta = (freeable >> priority) * 4 / seeks`, or `freeable / 2` when `seeks == 0`;
//! * `total_scan = min((nr >> priority) + delta, 2 * freeable)`;
//! * call `scan_objects` in batches while `total_scan >= batch` or
//!   `total_scan >= freeable` (so small caches are still scanned at low priority);
//! * give back `min(max(nr + delta - scanned, 0), 2 * freeable)` to the counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Callbacks, Count, Scan, ShrinkCtl, ShrinkerSpec, SHRINK_BATCH};

/// Result of one `do_shrink_slab`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `count_objects` said `SHRINK_EMPTY`.
    Empty,
    /// Objects freed (0 when the count was 0).
    Freed(u64),
}

impl Outcome {
    /// Freed objects, with `Empty` as 0.
    pub fn freed(self) -> u64 {
        match self {
            Outcome::Empty => 0,
            Outcome::Freed(n) => n,
        }
    }
}

/// Run one shrinker once: count, compute the scan target, scan in batches,
/// put the remainder back into `deferred`.
///
/// `priority` must be at most 63 (callers validate `<= DEF_PRIORITY`).
/// A callback that reports `nr_scanned == 0` ends the loop (the kernel would
/// spin forever on such a callback).
pub fn do_shrink_slab(
    cb: &dyn Callbacks,
    spec: &ShrinkerSpec,
    sc: &mut ShrinkCtl,
    priority: u32,
    deferred: &AtomicU64,
) -> Outcome {
    let freeable = match cb.count_objects(sc) {
        Count::Empty => return Outcome::Empty,
        Count::Objects(0) => return Outcome::Freed(0),
        Count::Objects(n) => n,
    };
    let nr = deferred.swap(0, Ordering::Relaxed);
    let delta = if spec.seeks != 0 {
        (freeable >> priority).saturating_mul(4) / u64::from(spec.seeks)
    } else {
        freeable / 2
    };
    let cap = freeable.saturating_mul(2);
    let mut total_scan = (nr >> priority).saturating_add(delta).min(cap);
    let batch = if spec.batch == 0 {
        SHRINK_BATCH
    } else {
        spec.batch
    };
    let mut freed = 0u64;
    let mut scanned = 0u64;
    while total_scan >= batch || total_scan >= freeable {
        let n = batch.min(total_scan);
        sc.nr_to_scan = n;
        sc.nr_scanned = n;
        match cb.scan_objects(sc) {
            Scan::Stop => break,
            Scan::Freed(f) => freed = freed.saturating_add(f),
        }
        if sc.nr_scanned == 0 {
            break;
        }
        total_scan = total_scan.saturating_sub(sc.nr_scanned);
        scanned = scanned.saturating_add(sc.nr_scanned);
    }
    let next = nr.saturating_add(delta).saturating_sub(scanned).min(cap);
    deferred.fetch_add(next, Ordering::Relaxed);
    Outcome::Freed(freed)
}

/// What every baseline keeps per shrinker.
pub(crate) struct Core {
    pub(crate) spec: ShrinkerSpec,
    pub(crate) cb: Arc<dyn Callbacks>,
    /// Id (memcg-aware shrinkers only).
    pub(crate) id: Option<usize>,
    /// Per-node deferred work used outside memcg shrinker_info.
    pub(crate) nr_deferred: Box<[AtomicU64]>,
}

impl Core {
    pub(crate) fn new(
        spec: &ShrinkerSpec,
        cb: Arc<dyn Callbacks>,
        id: Option<usize>,
        nr_nodes: usize,
    ) -> Self {
        let n = if spec.numa_aware { nr_nodes } else { 1 };
        Self {
            spec: spec.clone(),
            cb,
            id,
            nr_deferred: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The node index a non-NUMA-aware shrinker is run with.
    pub(crate) fn nid(&self, nid: usize) -> usize {
        if self.spec.numa_aware {
            nid
        } else {
            0
        }
    }

    /// Run with the shrinker's own per-node counter.
    pub(crate) fn run_own(&self, memcg: usize, nid: usize, priority: u32) -> Outcome {
        let nid = self.nid(nid);
        self.run(memcg, nid, priority, &self.nr_deferred[nid])
    }

    pub(crate) fn run(
        &self,
        memcg: usize,
        nid: usize,
        priority: u32,
        deferred: &AtomicU64,
    ) -> Outcome {
        let mut sc = ShrinkCtl {
            memcg,
            nid: self.nid(nid),
            nr_to_scan: 0,
            nr_scanned: 0,
        };
        do_shrink_slab(&*self.cb, &self.spec, &mut sc, priority, deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_fns;

    fn spec() -> ShrinkerSpec {
        ShrinkerSpec::new("t")
    }

    #[test]
    fn priority_zero_scans_all_in_batches() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let cb = from_fns(
            |_| Count::Objects(1000),
            move |sc| {
                c.fetch_add(1, Ordering::Relaxed);
                Scan::Freed(sc.nr_to_scan)
            },
        );
        let d = AtomicU64::new(0);
        let mut sc = ShrinkCtl {
            memcg: 0,
            nid: 0,
            nr_to_scan: 0,
            nr_scanned: 0,
        };
        // delta = 1000*4/2 = 2000 (= the 2*freeable cap): 15 batches of 128;
        // the last 80 are below both batch and freeable, so they are deferred.
        assert_eq!(
            do_shrink_slab(&*cb, &spec(), &mut sc, 0, &d),
            Outcome::Freed(1920)
        );
        assert_eq!(calls.load(Ordering::Relaxed), 15);
        assert_eq!(d.load(Ordering::Relaxed), 80);
    }

    #[test]
    fn small_work_is_deferred() {
        let cb = from_fns(|_| Count::Objects(1000), |sc| Scan::Freed(sc.nr_to_scan));
        let d = AtomicU64::new(0);
        let mut sc = ShrinkCtl {
            memcg: 0,
            nid: 0,
            nr_to_scan: 0,
            nr_scanned: 0,
        };
        // priority 6: delta = (1000>>6)*4/2 = 30 < batch and < freeable: deferred.
        assert_eq!(
            do_shrink_slab(&*cb, &spec(), &mut sc, 6, &d),
            Outcome::Freed(0)
        );
        assert_eq!(d.load(Ordering::Relaxed), 30);
    }

    #[test]
    fn seeks_zero_and_empty_and_stop() {
        let cb = from_fns(|_| Count::Objects(300), |_| Scan::Stop);
        let d = AtomicU64::new(0);
        let mut sc = ShrinkCtl {
            memcg: 0,
            nid: 0,
            nr_to_scan: 0,
            nr_scanned: 0,
        };
        // seeks 0: delta = 150 >= batch, scan stops at once, all 150 deferred.
        assert_eq!(
            do_shrink_slab(&*cb, &spec().seeks(0), &mut sc, 12, &d),
            Outcome::Freed(0)
        );
        assert_eq!(d.load(Ordering::Relaxed), 150);
        let empty = from_fns(|_| Count::Empty, |_| Scan::Freed(1));
        assert_eq!(
            do_shrink_slab(&*empty, &spec(), &mut sc, 0, &d),
            Outcome::Empty
        );
        assert_eq!(d.load(Ordering::Relaxed), 150);
    }
}
