//! Reclaim drivers: the priority loop, targeted memcg reclaim, hierarchical
//! charge limits, and Linux PSI pressure triggers.
//!
//! # Concepts
//!
//! * **Priority loop** ([`reclaim_memcg`], [`reclaim_global`]). Reclaim runs
//!   passes at priority 12 ([`DEF_PRIORITY`], gentle: each shrinker is asked
//!   to scan about `freeable >> 12`) down to 0 (scan everything), like the
//!   kernel's `do_try_to_free_pages`. Each pass calls
//!   [`Registry::shrink_slab`](unishrink_shrinker::Registry::shrink_slab) for every online memcg of the target subtree
//!   (pre-order, parents before children) on every node. The loop stops as
//!   soon as `goal` objects were freed: targeted (memcg) reclaim checks after
//!   every `(memcg, node)` — the kernel's cgroup reclaim bails out early too —
//!   while global reclaim finishes each pass so that no cgroup is favoured.
//! * **Charge counters** ([`ChargeCounters`]), the kernel's `page_counter`:
//!   per memcg a lock-free usage counter and a limit. A charge adds to the
//!   memcg and every ancestor; if one would exceed its limit, the charge is
//!   undone, the subtree of *that* ancestor is reclaimed, and the charge is
//!   retried; after the retries it fails with [`ChargeError::OverLimit`].
//!   Caches must uncharge what their shrinkers free, otherwise reclaim cannot
//!   lower the usage.
//! * **Pressure** ([`psi`]): Linux Pressure Stall Information. The parser
//!   reads `/proc/pressure/memory` and cgroup v2 `memory.pressure`; a
//!   [`psi::PsiTrigger`] arms a kernel trigger and polls for `POLLPRI`; a
//!   [`psi::PressureReclaimer`] thread reclaims when the trigger fires, or
//!   when sampled `avg10` crosses a threshold where triggers are unavailable.
//!
//! # Invariants
//!
//! * Targeted reclaim calls shrinkers only for memcgs of the target subtree.
//! * A charge that fails leaves every counter as it found it; usage never
//!   exceeds a limit because of a charge (a limit lowered below the current
//!   usage makes further charges fail until usage drops).
//! * An offline memcg's charges stay accounted in its ancestors (they already
//!   include them); its own counter is dropped, and later uncharges through
//!   its handle decrement only the ancestors.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use unishrink_reclaim::reclaim_memcg;
//! use unishrink_shrinker::*;
//!
//! let reg = Registry::new(MemcgConfig { nr_nodes: 1, ..MemcgConfig::default() });
//! let root = reg.online_root().unwrap();
//! let objects = Arc::new(AtomicU64::new(100_000));
//! let (c, s) = (objects.clone(), objects.clone());
//! let _shrinker = reg
//!     .alloc(
//!         ShrinkerConfig::new("cache"),
//!         from_fns(
//!             move |_| Count::Objects(c.load(Ordering::Relaxed)),
//!             move |sc| {
//!                 s.fetch_sub(sc.nr_to_scan, Ordering::Relaxed);
//!                 Scan::Freed(sc.nr_to_scan)
//!             },
//!         ),
//!     )
//!     .unwrap()
//!     .register();
//! let report = reclaim_memcg(&reg, &root, 1_000).unwrap();
//! assert!(report.freed >= 1_000);
//! assert!(report.priority < DEF_PRIORITY, "needed more than the gentlest pass");
//! ```

mod charge;
mod priority;
pub mod psi;

pub use charge::{ChargeConfig, ChargeCounters, ChargeError, WeakChargeCounters};
pub use priority::{reclaim_global, reclaim_memcg, shrink_subtree, ReclaimError, ReclaimReport};
pub use unishrink_shrinker::DEF_PRIORITY;
