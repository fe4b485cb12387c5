//! Observability for unishrink: a debugfs-like view of a shrinker
//! [`Registry`], as a Rust API and as serde-serializable snapshots, plus an
//! optional JSON HTTP server (cargo feature `http`).
//!
//! # Concepts
//!
//! The kernel exposes every shrinker under `/sys/kernel/debug/shrinker/` as a
//! directory named `<name>-<id>` with two files:
//!
//! * **`count`** (read): one line per online memcg, `<memcg id> <count on
//!   node 0> <count on node 1> …`, produced by calling the shrinker's
//!   `count_objects` for every (memcg, node). Lines whose counts are all zero
//!   are left out. A shrinker that is not memcg-aware is counted for the root
//!   only; one that is not NUMA-aware is asked about node 0 only and shows 0
//!   on every other node. SHRINK_EMPTY counts as 0.
//! * **`scan`** (write): `<memcg id> <nid> <nr_to_scan>` calls `scan_objects`
//!   once with that many objects to scan, bypassing the priority arithmetic
//!   of a reclaim pass (no deferred work is taken or added).
//!
//! [`DebugView`] provides the same three things over a [`Registry`]:
//! [`DebugView::shrinkers`] (the directory listing with flags, seeks, batch
//! and the per-shrinker counters), [`DebugView::count`] (a [`CountTable`]
//! whose `Display` is the `count` file's text) and [`DebugView::scan`] (input
//! parsed by [`ScanRequest::from_str`](std::str::FromStr) with typed errors).
//! The snapshot types mirror the shrinker crate's and derive serde's traits,
//! so they can be logged or served as JSON; the `http` module (feature `http`) does
//! the latter.
//!
//! # Invariants and caveats
//!
//! * The view holds a [`Registry`] clone and takes no lock of its own: every
//!   call runs the registry's lock-free paths (`count_one` / `scan_one` take
//!   an active reference on the shrinker exactly as a reclaim walk does), so
//!   a debug reader never blocks registration or reclaim, and a shrinker
//!   freed concurrently simply disappears from the answer (or yields
//!   [`DebugError::NoSuchShrinker`]).
//! * A snapshot is not atomic across shrinkers or memcgs: counts are read one
//!   (memcg, node) at a time while caches keep changing, as in the kernel.
//! * Memcg ids are this tree's [`MemcgId`](unishrink_shrinker::MemcgId)s (the
//!   kernel prints cgroup inode numbers). For a shrinker that is not
//!   memcg-aware, `scan` accepts memcg `0` (the kernel's convention) or the
//!   root's id, and refuses any other with [`DebugError::NotMemcgAware`].
//! * A manual scan is user code running on the caller's thread; a panic in
//!   it is caught by the registry and reported as "stopped".
//!
//! Tracing (the kernel's `mm_shrink_slab_start`/`_end` tracepoints) lives in
//! the shrinker crate (`unishrink_shrinker::trace`); this crate's tests check
//! the fields those events carry, and its `trace_overhead` bench measures what
//! they cost with and without a subscriber.
//!
//! # Example
//!
//! ```
//! use unishrink_debug::{DebugView, ScanRequest};
//! use unishrink_shrinker::*;
//!
//! let reg = Registry::new(MemcgConfig { nr_nodes: 2, ..MemcgConfig::default() });
//! let root = reg.online_root().unwrap();
//! let s = reg
//!     .alloc(
//!         ShrinkerConfig::new("dentry").flags(ShrinkerFlags::NUMA_AWARE),
//!         from_fns(|sc| Count::Objects(10 * (sc.nid as u64 + 1)), |sc| Scan::Freed(sc.nr_to_scan)),
//!     )
//!     .unwrap()
//!     .register();
//!
//! let view = DebugView::new(reg.clone());
//! let list = view.shrinkers();
//! assert_eq!(list[0].dir_name, format!("dentry-{}", s.id()));
//!
//! // The `count` file: the root's line, one column per node.
//! let table = view.count(s.id()).unwrap();
//! assert_eq!(table.to_string(), format!("{} 10 20\n", root.id().0));
//!
//! // The `scan` file.
//! let req: ScanRequest = format!("{} 1 5", root.id().0).parse().unwrap();
//! let done = view.scan(s.id(), req).unwrap();
//! assert_eq!((done.freed, done.stopped), (5, false));
//! assert!("1 x 5".parse::<ScanRequest>().is_err());
//! ```

mod error;
#[cfg(feature = "http")]
pub mod http;
mod parse;
mod view;

pub use error::DebugError;
pub use parse::{ParseScanError, ScanField, ScanRequest};
pub use view::{
    CountRow, CountTable, DebugView, FlagsView, MemcgEntry, ScanResult, ShrinkerEntry, StatsView,
};
// The registry types a caller needs to build a view.
pub use unishrink_shrinker::{Registry, ShrinkerId};
