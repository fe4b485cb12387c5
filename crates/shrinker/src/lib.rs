//! The unified shrinker core: one IDR of shrinkers, one bitmap per
//! (memcg, node), one lockless [`Registry::shrink_slab`].
//!
//! # Concepts
//!
//! A *shrinker* is user code ([`Shrink`]) that can count and free objects of
//! a cache. Each shrinker gets an **id** from the registry's RCU radix tree
//! (IDR). Every memcg — the root included — has, per node, a bitmap with one
//! bit per id ("may have objects here") and an `nr_deferred` counter per id
//! (`unishrink-shrinker-info`). A reclaim pass over `(memcg, nid)` walks the
//! set bits, looks each id up in the IDR and calls the shrinker. There is no
//! second path for the root or for global shrinkers:
//!
//! * a **global** shrinker (no `MEMCG_AWARE` flag) has a *sticky* bit in the
//!   root's map, set when it is allocated (or when the root comes online) and
//!   never cleared by SHRINK_EMPTY; its `nr_deferred` lives in the root's info;
//! * a **memcg-aware** shrinker's bit is set by the cache with
//!   [`Registry::set_shrinker_bit`] when it adds the first object to a
//!   `(memcg, nid)`, and cleared by the walker on [`Count::Empty`];
//! * with the `memcg` feature off or memcgs disabled at run time, only the
//!   (dummy) root exists and memcg-aware shrinkers are treated as global.
//!
//! # Lifecycle (refcount + RCU)
//!
//! 1. [`Registry::alloc`] takes the lowest free id and grows every memcg's
//!    shrinker_info if needed (a failure releases the id and is returned).
//! 2. [`AllocatedShrinker::register`] sets the *active* count to 1.
//! 3. For each set bit a walker pins, loads the shrinker by id and calls
//!    `try_get` (increment unless zero), then unpins before the callbacks
//!    (they may block, and a held pin would stall every thread's
//!    reclamation) and `put`s through a guard that also runs on unwind: the
//!    kernel's `rcu_read_lock` around `idr_find` + `shrinker_try_get`. The
//!    bitmap itself needs no pin; the walk holds its array (arc-swap).
//! 4. [`RegisteredShrinker::free`] marks the shrinker dying, drops the initial
//!    reference, **waits** until the count is zero, drops the callbacks, then
//!    erases the id from the IDR and parks the shrinker's memory (a *shell*)
//!    in the registry's shell cache, under the same lock.
//! 5. A later [`Registry::alloc`] reuses the oldest parked shell once its
//!    grace period is over, rewriting it in place. Shells wait in batches of
//!    256 behind one deferred function of crossbeam-epoch, which sets the
//!    batch's flag after a grace period that covers every unlink of the
//!    batch; a free pins only when it closes a batch. The kernel keeps
//!    shrinkers in a slab cache for the same reason: crossbeam-epoch runs
//!    deferred functions on whichever thread collects (under reclaim, the
//!    walker), and one deferred free per shrinker left the registering
//!    thread's allocator cache empty on every cycle and pulled each freed
//!    shrinker's cache line to the walker, which halved the registration
//!    rate while reclaim ran. Each sealed batch costs the walker one flag
//!    store and the freeing thread one bag flush, whose allocation the
//!    collecting thread frees, so batches are large. At most 1,024 shells
//!    (~150 KiB) are parked ([`Registry::parked_shells`]).
//!
//! # Invariants
//!
//! * After `free` returns, no callback of that shrinker runs or starts: zero
//!   is terminal for the active count and `free` waited for it.
//! * `free` waits only for its own callbacks; `alloc` and `free` take one
//!   writer mutex (the IDR's own, through `XArray::lock`) that no walk ever
//!   takes, so registration never waits for reclaim (the rwsem design's
//!   failure); `register` takes none.
//! * A walker never touches freed memory: the IDR entry (and with it the
//!   shrinker) outlives every successful `try_get` (see the `SAFETY` comment
//!   in `shrink_slab`), and IDR nodes are freed after a grace period.
//! * The IDR's reference is the only count a live shrinker has: handles
//!   point to it uncounted, since only the handle's own retirement (or a
//!   walk finishing a free its handle asked for from inside a callback)
//!   takes it out of the IDR.
//! * No set bit is lost: `set_shrinker_bit` fences before setting; every
//!   clear by the walker (SHRINK_EMPTY, or an id whose shrinker is gone) is
//!   followed by a full fence and a recheck that restores the bit.
//! * Callbacks are foreign code: panics are caught and reported in
//!   [`ShrinkReport::panics`] with the reference put and deferred work kept;
//!   any other panic inside a visit (a tracing subscriber's, say) unwinds out
//!   of the walk with the reference put; a callback that frees its own
//!   shrinker, even from a nested walk, gets [`FreeError::SelfFree`].
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use unishrink_shrinker::*;
//!
//! let reg = Registry::new(MemcgConfig { nr_nodes: 1, ..MemcgConfig::default() });
//! let root = reg.online_root().unwrap();
//!
//! // A cache of 1000 objects that frees what it is asked to.
//! let objects = Arc::new(AtomicU64::new(1000));
//! let (c, s) = (objects.clone(), objects.clone());
//! // Free at most what is there (the scan target may exceed it at low priority).
//! let take = move |n: u64| s.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |have| Some(have - have.min(n))).unwrap().min(n);
//! let shrinker = reg
//!     .alloc(
//!         ShrinkerConfig::new("demo-cache").seeks(0),
//!         from_fns(
//!             move |_sc| Count::Objects(c.load(Ordering::Relaxed)),
//!             move |sc| Scan::Freed(take(sc.nr_to_scan)),
//!         ),
//!     )
//!     .unwrap()
//!     .register();
//!
//! // seeks 0: a pass targets half of freeable (500), scanned in whole
//! // batches of 128 (384); the remaining 116 are deferred to the next pass.
//! let report = reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap();
//! assert_eq!(report.freed, 384);
//! assert_eq!(root.shrinker_info(0).unwrap().nr_deferred(shrinker.id().0 as usize), 116);
//! shrinker.free().unwrap();
//! assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 0);
//! ```

#[cfg(feature = "fault-injection")]
pub mod fault;
mod refcount;
mod registry;
mod scan;
mod stats;
mod sync;
pub mod trace;

pub use registry::{
    AllocatedShrinker, CallbackPanic, Error, FreeError, RegisteredShrinker, Registry,
    RegistryOptions, ShrinkReport, ShrinkerConfig, ShrinkerFlags, ShrinkerId, ShrinkerSnapshot,
    WeakRegistry, DEFAULT_MAX_SHRINKER_ID,
};
pub use scan::{
    do_shrink_slab, from_fns, scan_delta, Count, DeferredCounter, FnShrink, Scan, ScanOutcome,
    ScanParams, ScanTrace, Shrink, ShrinkControl, DEFAULT_SEEKS, DEF_PRIORITY, MAX_FREEABLE,
    SHRINK_BATCH,
};
pub use stats::StatsSnapshot;
pub use unishrink_memcg::{Config as MemcgConfig, Memcg, MemcgError, MemcgId, MemcgTree};

#[doc(hidden)]
#[cfg(loom)]
pub mod loom_support {
    //! The refcount protocol, exposed to the loom models only.
    pub use crate::refcount::ActiveRef;
}
