//! The designs `cargo xtask bench` compares, behind one trait so every
//! workload runs on each of them.
//!
//! # What is compared
//!
//! A *design* is a complete shrinker infrastructure: a registry of shrinkers,
//! per-memcg/per-node shrinker_info (bitmap + `nr_deferred`), and a
//! `shrink_slab(memcg, nid, priority)` walk. Four designs implement [`Design`]:
//!
//! | design | module | what it reproduces |
//! | --- | --- | --- |
//! | `rwsem` | [`rwsem`] | Linux ≤ 6.6: one reader-writer lock over the shrinker list and the IDR. Reclaim takes it with *try*-read and bails out (0 freed) if a writer holds it or waits for it, and stops its walk when a writer starts waiting. Register/unregister take it for write. Memcg-aware shrinkers are found through a per-memcg flat bitmap; the root walks the whole list. [`rwsem::Rwsem::nobitmap`] is the pre-4.19 kernel (no bitmap: every memcg walks every shrinker). |
//! | `srcu` | [`srcu`] | the reverted 2023 attempt: lockless readers inside an SRCU read section that spans the whole walk (callbacks included); unregister waits a full SRCU grace period, i.e. for **every** walk in flight, whatever shrinker it is busy in. |
//! | `split` | [`split`] | Linux ≥ 6.7: global list under RCU (crossbeam-epoch), a refcount per shrinker (`try_get`/`put`), `free` waits only for its own refcount and defers the memory; memcg-aware shrinkers in per-memcg flat, eagerly allocated bitmaps + `nr_deferred` arrays grown by copy under a mutex. |
//! | `unified` | `unified` (feature `unified`) | an adapter over the project's `unishrink-shrinker` registry. |
//!
//! The three baselines share the kernel's `do_shrink_slab` arithmetic
//! ([`scan::do_shrink_slab`]); `unified` uses its own copy in the shrinker crate.
//!
//! # Invariants every baseline keeps
//!
//! * After [`Design::free`] returns, no callback of that shrinker runs or starts.
//! * A walker never touches freed memory: shrinker nodes are freed after an
//!   epoch grace period (`split`), after `synchronize_srcu` (`srcu`), or are
//!   reference counted and only reached under the read lock (`rwsem`).
//! * Shrinker ids are the lowest free id (like `idr_alloc`); shrinker_info
//!   capacity (`map_nr_max`) only grows, in multiples of 64.
//!
//! Memcgs are never taken offline here: no workload needs it, so the
//! baselines do not model reparenting.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use unishrink_baselines::{split::Split, Design, DesignConfig, ShrinkerSpec, Count, Scan};
//!
//! let d = Split::new(DesignConfig::default()).unwrap();
//! let child = d.create_memcg(&d.root()).unwrap();
//! let cb = unishrink_baselines::from_fns(|_| Count::Objects(1000), |sc| Scan::Freed(sc.nr_to_scan));
//! let s = d.register(&ShrinkerSpec::new("demo").memcg_aware(true), cb).unwrap();
//! d.set_shrinker_bit(&child, 0, &s).unwrap();
//! // Priority 0: scan target 1000 * 4 / seeks(2) = 2000 (the 2 * freeable cap),
//! // 15 batches of 128 are scanned, the last 80 are deferred to the next pass.
//! assert_eq!(d.shrink_slab(&child, 0, 0).unwrap(), 1920);
//! d.free(s).unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

use std::fmt;
use std::sync::Arc;

mod flat;
mod ids;
mod memcg;
mod rculist;
mod refs;
mod registrar;
pub mod rwsem;
pub mod scan;
pub mod split;
pub mod srcu;
mod srcu_lock;
mod table;
#[cfg(feature = "unified")]
pub mod unified;

pub use flat::FlatInfo;
pub use memcg::Memcg;

/// Reclaim priority of the gentlest pass (`DEF_PRIORITY`).
pub const DEF_PRIORITY: u32 = 12;
/// Default scan batch (`SHRINK_BATCH`).
pub const SHRINK_BATCH: u64 = 128;

/// What a reclaim pass tells a callback (the kernel's `struct shrink_control`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShrinkCtl {
    /// Id of the memcg being reclaimed ([`Design::memcg_id`]); the root is 0.
    pub memcg: usize,
    /// NUMA node being reclaimed (0 for shrinkers that are not NUMA aware).
    pub nid: usize,
    /// How many objects `scan_objects` should look at.
    pub nr_to_scan: u64,
    /// How many it did look at; preset to `nr_to_scan`, a callback may lower it.
    pub nr_scanned: u64,
}

/// Result of `count_objects`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// This many objects could be freed (0 is "nothing now").
    Objects(u64),
    /// `SHRINK_EMPTY`: nothing at all here; bitmap designs clear the bit.
    Empty,
}

/// Result of `scan_objects`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// This many objects were freed.
    Freed(u64),
    /// `SHRINK_STOP`: no progress possible now; stop this shrinker for this pass.
    Stop,
}

/// A shrinker's callbacks, shared by every design (so they all run the same code).
pub trait Callbacks: Send + Sync {
    /// How many objects could be freed for `sc.memcg`/`sc.nid`.
    fn count_objects(&self, sc: &ShrinkCtl) -> Count;
    /// Try to free up to `sc.nr_to_scan` objects.
    fn scan_objects(&self, sc: &mut ShrinkCtl) -> Scan;
}

/// Callbacks made of two closures; see [`from_fns`].
pub struct FnCallbacks<C, S>(C, S);

impl<C, S> fmt::Debug for FnCallbacks<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnCallbacks")
    }
}

impl<C, S> Callbacks for FnCallbacks<C, S>
where
    C: Fn(&ShrinkCtl) -> Count + Send + Sync,
    S: Fn(&mut ShrinkCtl) -> Scan + Send + Sync,
{
    fn count_objects(&self, sc: &ShrinkCtl) -> Count {
        (self.0)(sc)
    }
    fn scan_objects(&self, sc: &mut ShrinkCtl) -> Scan {
        (self.1)(sc)
    }
}

/// A cache of `n` objects charged to memcg `memcg` only (its id as in
/// [`ShrinkCtl::memcg`]): counts `Empty` once drained, frees what it is asked
/// to, and reports nothing for any other memcg. The drop_caches workload's
/// per-memcg shrinker.
pub fn memcg_cache(memcg: usize, n: u64) -> Arc<impl Callbacks> {
    let left = Arc::new(std::sync::atomic::AtomicU64::new(n));
    let l2 = left.clone();
    from_fns(
        move |sc| {
            if sc.memcg != memcg {
                return Count::Objects(0);
            }
            match left.load(std::sync::atomic::Ordering::Relaxed) {
                0 => Count::Empty,
                n => Count::Objects(n),
            }
        },
        move |sc| {
            if sc.memcg != memcg {
                return Scan::Freed(0);
            }
            let cur = l2.load(std::sync::atomic::Ordering::Relaxed);
            let f = cur.min(sc.nr_to_scan);
            l2.store(cur - f, std::sync::atomic::Ordering::Relaxed);
            Scan::Freed(f)
        },
    )
}

/// Callbacks from two closures. The result is typed so that a design can
/// call them without a second dynamic dispatch ([`Design::register`]); it
/// coerces to `Arc<dyn Callbacks>` where one is wanted.
pub fn from_fns<C, S>(count: C, scan: S) -> Arc<FnCallbacks<C, S>>
where
    C: Fn(&ShrinkCtl) -> Count + Send + Sync + 'static,
    S: Fn(&mut ShrinkCtl) -> Scan + Send + Sync + 'static,
{
    Arc::new(FnCallbacks(count, scan))
}

/// `Arc<C>` to `Arc<dyn Callbacks>`, for every sized `C` and for
/// `dyn Callbacks` itself, so [`Design::register`] takes both.
pub trait IntoDynCallbacks: Callbacks + 'static {
    /// Erase the type (a no-op for `dyn Callbacks`).
    fn into_dyn(self: Arc<Self>) -> Arc<dyn Callbacks>;
}

impl<T: Callbacks + 'static> IntoDynCallbacks for T {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn Callbacks> {
        self
    }
}

impl IntoDynCallbacks for dyn Callbacks {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn Callbacks> {
        self
    }
}

/// Static description of a shrinker (name, flags, seeks, batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShrinkerSpec {
    /// Name, for reports only.
    pub name: String,
    /// `SHRINKER_MEMCG_AWARE`: called per memcg, gets an id and bits.
    pub memcg_aware: bool,
    /// `SHRINKER_NUMA_AWARE`: called per node (otherwise always with node 0).
    pub numa_aware: bool,
    /// Cost to recreate an object; 0 means "free half of what is freeable".
    pub seeks: u32,
    /// Scan batch; 0 means [`SHRINK_BATCH`].
    pub batch: u64,
}

impl ShrinkerSpec {
    /// A global, non-NUMA shrinker with `seeks = 2` and the default batch.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            memcg_aware: false,
            numa_aware: false,
            seeks: 2,
            batch: 0,
        }
    }
    /// Set `SHRINKER_MEMCG_AWARE`.
    pub fn memcg_aware(mut self, on: bool) -> Self {
        self.memcg_aware = on;
        self
    }
    /// Set `SHRINKER_NUMA_AWARE`.
    pub fn numa_aware(mut self, on: bool) -> Self {
        self.numa_aware = on;
        self
    }
    /// Set `seeks`.
    pub fn seeks(mut self, seeks: u32) -> Self {
        self.seeks = seeks;
        self
    }
    /// Set the scan batch.
    pub fn batch(mut self, batch: u64) -> Self {
        self.batch = batch;
        self
    }
}

/// Configuration shared by every design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesignConfig {
    /// Number of NUMA nodes (at least 1).
    pub nr_nodes: usize,
}

impl Default for DesignConfig {
    fn default() -> Self {
        Self { nr_nodes: 1 }
    }
}

/// Errors of the baseline designs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Priority above [`DEF_PRIORITY`].
    BadPriority(u32),
    /// Node id not below `nr_nodes`.
    BadNode(usize),
    /// `nr_nodes` was 0.
    NoNodes,
    /// No shrinker id left (the id table is full).
    IdSpaceFull,
    /// The handle or memcg belongs to another design instance.
    ForeignHandle,
    /// `set_shrinker_bit` on a shrinker that is not memcg aware.
    NotMemcgAware,
    /// Error from the unified crates, as text.
    Unified(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadPriority(p) => write!(f, "priority {p} is above {DEF_PRIORITY}"),
            Error::BadNode(n) => write!(f, "node {n} does not exist"),
            Error::NoNodes => write!(f, "nr_nodes must be at least 1"),
            Error::IdSpaceFull => write!(f, "no shrinker id left"),
            Error::ForeignHandle => write!(f, "handle belongs to another design instance"),
            Error::NotMemcgAware => write!(f, "shrinker is not memcg aware"),
            Error::Unified(e) => write!(f, "unified: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// One shrinker infrastructure. Every benchmark workload is written against this.
pub trait Design: Send + Sync + Sized + 'static {
    /// A memcg handle (cheap to clone).
    type Memcg: Clone + Send + Sync + 'static;
    /// A registered shrinker; give it back to [`Design::free`].
    type Shrinker: Send + Sync + 'static;

    /// Build an empty instance with its root memcg online.
    fn new(cfg: DesignConfig) -> Result<Self, Error>;
    /// Short name for reports (`"rwsem"`, `"srcu"`, `"split"`, `"unified"`, ...).
    fn name(&self) -> &'static str;
    /// The root memcg.
    fn root(&self) -> Self::Memcg;
    /// Create an online child memcg of `parent`.
    fn create_memcg(&self, parent: &Self::Memcg) -> Result<Self::Memcg, Error>;
    /// The id a callback sees in [`ShrinkCtl::memcg`] for this memcg.
    fn memcg_id(&self, memcg: &Self::Memcg) -> usize;
    /// Allocate and register a shrinker (both steps: `alloc` + `register`).
    ///
    /// Generic so that every design calls the callbacks through exactly one
    /// dynamic dispatch, as the kernel calls `shrinker->count_objects`: the
    /// baselines erase `C` into their `Arc<dyn Callbacks>`; `unified` wraps
    /// the typed `Arc<C>` in its adapter, which the registry stores as its
    /// own trait object (with `C = dyn Callbacks` that adapter would add a
    /// second dispatch, so the workloads pass typed callbacks).
    fn register<C: IntoDynCallbacks + ?Sized>(
        &self,
        spec: &ShrinkerSpec,
        cb: Arc<C>,
    ) -> Result<Self::Shrinker, Error>;
    /// The shrinker's id, if this design gave it one.
    fn shrinker_id(&self, s: &Self::Shrinker) -> Option<usize>;
    /// Tell reclaim that `s` may have objects in `(memcg, nid)`.
    /// For the list-walking root of the baselines this is a no-op.
    fn set_shrinker_bit(
        &self,
        memcg: &Self::Memcg,
        nid: usize,
        s: &Self::Shrinker,
    ) -> Result<(), Error>;
    /// Unregister and free; waits as the design requires.
    fn free(&self, s: Self::Shrinker) -> Result<(), Error>;
    /// One reclaim pass over `(memcg, nid)` at `priority`; returns objects freed.
    fn shrink_slab(&self, memcg: &Self::Memcg, nid: usize, priority: u32) -> Result<u64, Error>;
    /// Bytes of shrinker_info (bitmaps + `nr_deferred`) currently allocated.
    fn info_bytes(&self) -> usize;
}

fn check_args(nr_nodes: usize, nid: usize, priority: u32) -> Result<(), Error> {
    if priority > DEF_PRIORITY {
        return Err(Error::BadPriority(priority));
    }
    if nid >= nr_nodes {
        return Err(Error::BadNode(nid));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
