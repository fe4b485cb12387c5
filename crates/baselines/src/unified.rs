//! `unified`: an adapter from [`Design`] to the project's `unishrink-shrinker`
//! [`Registry`] — not a copy: every call goes to the real crate.
//!
//! * [`Design::register`] is `Registry::alloc` + `AllocatedShrinker::register`;
//!   [`Design::free`] is `RegisteredShrinker::free`.
//! * Callbacks are wrapped so they see the same [`ShrinkCtl`] as in the
//!   baselines (`memcg` = the memcg's `MemcgId`); `nr_scanned` written by the
//!   callback is passed back. The wrapper is generic over the callbacks'
//!   type, so typed callbacks cost one dynamic call per callback, as in the
//!   baselines (see [`Design::register`]).
//! * `set_shrinker_bit` on the root is *not* a no-op here: the root has a
//!   bitmap like every memcg (global shrinkers have sticky bits there).
//! * [`Design::info_bytes`] is `MemcgTree::shrinker_info_bytes`, i.e. the sum
//!   of `ShrinkerInfo::bytes()` over every online memcg.
//! * The registry is built with per-shrinker counters off (`RegistryOptions::
//!   stats`), since no baseline (and no kernel) keeps them; `unified+stats`
//!   ([`Unified::with_stats`]) measures the default, counters on.

use std::sync::Arc;

use unishrink_shrinker::{
    self as us, MemcgConfig, Registry, RegistryOptions, ShrinkerConfig, ShrinkerFlags,
};

use crate::{
    Callbacks, Count, Design, DesignConfig, Error, IntoDynCallbacks, Scan, ShrinkCtl, ShrinkerSpec,
};

/// The unified design (see the module docs).
pub struct Unified {
    reg: Registry,
    root: us::Memcg,
    stats: bool,
}

/// The bench's callbacks as a registry [`us::Shrink`]. Generic over the
/// callbacks' type: with typed callbacks (`C` sized, as every workload
/// passes) the registry's one dynamic call lands in `Adapter<C>`, which
/// calls `C` statically, so a visit costs one indirect call per callback
/// as in the baselines. Only `C = dyn Callbacks` pays a second one.
struct Adapter<C: ?Sized>(Arc<C>);

fn ctl(sc: &us::ShrinkControl<'_>) -> ShrinkCtl {
    // Field by field (volatile reads are never merged): one 16-byte load
    // across `nid` and the `nr_to_scan` that do_shrink_slab has just stored
    // cannot be forwarded from the store buffer, a stall of ~10 ns per
    // callback that is this adapter's, not the design's. (`black_box` did the
    // same, but through a store and a reload of each value.)
    // SAFETY: plain reads of two initialized fields of a live reference.
    let (nid, nr_to_scan) = unsafe {
        (
            std::ptr::read_volatile(&sc.nid),
            std::ptr::read_volatile(&sc.nr_to_scan),
        )
    };
    ShrinkCtl {
        memcg: sc.memcg.id().0 as usize,
        nid,
        nr_to_scan,
        nr_scanned: sc.nr_scanned,
    }
}

impl<C: Callbacks + ?Sized + 'static> us::Shrink for Adapter<C> {
    fn count_objects(&self, sc: &us::ShrinkControl<'_>) -> us::Count {
        match self.0.count_objects(&ctl(sc)) {
            Count::Objects(n) => us::Count::Objects(n),
            Count::Empty => us::Count::Empty,
        }
    }

    fn scan_objects(&self, sc: &mut us::ShrinkControl<'_>) -> us::Scan {
        let mut c = ctl(sc);
        let r = self.0.scan_objects(&mut c);
        sc.nr_scanned = c.nr_scanned;
        match r {
            Scan::Freed(n) => us::Scan::Freed(n),
            Scan::Stop => us::Scan::Stop,
        }
    }
}

fn ue<E: std::fmt::Display>(e: E) -> Error {
    Error::Unified(e.to_string())
}

impl Unified {
    /// The design with the registry's per-shrinker counters on (`true`, the
    /// registry's default; named `unified+stats`) or off (`false`; what
    /// [`Design::new`] builds, named `unified`). The baselines, like the
    /// kernel, keep no such counters, so the comparison proper runs without.
    pub fn with_stats(cfg: DesignConfig, stats: bool) -> Result<Self, Error> {
        if cfg.nr_nodes == 0 {
            return Err(Error::NoNodes);
        }
        let reg = Registry::with_options(
            MemcgConfig {
                nr_nodes: cfg.nr_nodes,
                ..MemcgConfig::default()
            },
            RegistryOptions {
                stats,
                ..RegistryOptions::default()
            },
        );
        let root = reg.online_root().map_err(ue)?;
        Ok(Self { reg, root, stats })
    }

    /// The underlying registry.
    pub fn registry(&self) -> &Registry {
        &self.reg
    }
}

impl Design for Unified {
    type Memcg = us::Memcg;
    type Shrinker = us::RegisteredShrinker;

    fn new(cfg: DesignConfig) -> Result<Self, Error> {
        Self::with_stats(cfg, false)
    }

    fn name(&self) -> &'static str {
        if self.stats {
            "unified+stats"
        } else {
            "unified"
        }
    }

    fn root(&self) -> us::Memcg {
        self.root.clone()
    }

    fn create_memcg(&self, parent: &us::Memcg) -> Result<us::Memcg, Error> {
        self.reg.create_memcg(parent).map_err(ue)
    }

    fn memcg_id(&self, memcg: &us::Memcg) -> usize {
        memcg.id().0 as usize
    }

    fn register<C: IntoDynCallbacks + ?Sized>(
        &self,
        spec: &ShrinkerSpec,
        cb: Arc<C>,
    ) -> Result<us::RegisteredShrinker, Error> {
        let mut flags = ShrinkerFlags::NONE;
        if spec.memcg_aware {
            flags = flags | ShrinkerFlags::MEMCG_AWARE;
        }
        if spec.numa_aware {
            flags = flags | ShrinkerFlags::NUMA_AWARE;
        }
        let cfg = ShrinkerConfig::new(spec.name.as_str())
            .flags(flags)
            .seeks(spec.seeks)
            .batch(spec.batch);
        Ok(self.reg.alloc(cfg, Adapter(cb)).map_err(ue)?.register())
    }

    fn shrinker_id(&self, s: &us::RegisteredShrinker) -> Option<usize> {
        Some(s.id().0 as usize)
    }

    fn set_shrinker_bit(
        &self,
        memcg: &us::Memcg,
        nid: usize,
        s: &us::RegisteredShrinker,
    ) -> Result<(), Error> {
        self.reg.set_shrinker_bit(memcg, nid, s.id()).map_err(ue)
    }

    fn free(&self, s: us::RegisteredShrinker) -> Result<(), Error> {
        s.free().map_err(ue)
    }

    fn shrink_slab(&self, memcg: &us::Memcg, nid: usize, priority: u32) -> Result<u64, Error> {
        self.reg
            .shrink_slab(memcg, nid, priority)
            .map(|r| r.freed)
            .map_err(ue)
    }

    fn info_bytes(&self) -> usize {
        self.reg.memcgs().shrinker_info_bytes()
    }
}
