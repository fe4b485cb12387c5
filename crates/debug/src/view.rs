//! The debug view and its serializable snapshots.

use std::fmt;

use serde::{Deserialize, Serialize};
use unishrink_shrinker::{
    Memcg, MemcgId, Registry, ShrinkerFlags, ShrinkerId, ShrinkerSnapshot, StatsSnapshot,
};

use crate::error::DebugError;
use crate::parse::ScanRequest;

/// A shrinker's flags, one boolean per kernel `SHRINKER_*` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagsView {
    /// `SHRINKER_MEMCG_AWARE` (dropped when memcgs are off or disabled).
    pub memcg_aware: bool,
    /// `SHRINKER_NUMA_AWARE`.
    pub numa_aware: bool,
    /// `SHRINKER_NONSLAB`.
    pub nonslab: bool,
}

impl From<ShrinkerFlags> for FlagsView {
    fn from(f: ShrinkerFlags) -> Self {
        Self {
            memcg_aware: f.contains(ShrinkerFlags::MEMCG_AWARE),
            numa_aware: f.contains(ShrinkerFlags::NUMA_AWARE),
            nonslab: f.contains(ShrinkerFlags::NONSLAB),
        }
    }
}

/// A shrinker's counters (mirror of [`StatsSnapshot`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    /// `do_shrink_slab` calls (and manual scans).
    pub calls: u64,
    /// Objects scanned.
    pub scanned: u64,
    /// Objects freed.
    pub freed: u64,
    /// SHRINK_EMPTY results.
    pub empty: u64,
    /// Callback panics caught.
    pub panics: u64,
    /// Bits set back after a SHRINK_EMPTY clear found objects on recount.
    pub bit_restores: u64,
}

impl From<StatsSnapshot> for StatsView {
    fn from(s: StatsSnapshot) -> Self {
        Self {
            calls: s.calls,
            scanned: s.scanned,
            freed: s.freed,
            empty: s.empty,
            panics: s.panics,
            bit_restores: s.bit_restores,
        }
    }
}

/// One shrinker as listed by [`DebugView::shrinkers`] (the kernel's debugfs
/// directory, plus counters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkerEntry {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// `<name>-<id>`, the kernel's debugfs directory name.
    pub dir_name: String,
    /// Effective flags.
    pub flags: FlagsView,
    /// Seeks (0: free half of freeable).
    pub seeks: u32,
    /// Objects per `scan_objects` call.
    pub batch: u64,
    /// Registered (else only allocated: not called yet).
    pub registered: bool,
    /// Counters.
    pub stats: StatsView,
}

impl From<&ShrinkerSnapshot> for ShrinkerEntry {
    fn from(s: &ShrinkerSnapshot) -> Self {
        Self {
            id: s.id.0,
            name: s.name.clone(),
            dir_name: format!("{}-{}", s.name, s.id.0),
            flags: s.flags.into(),
            seeks: s.seeks,
            batch: s.batch,
            registered: s.registered,
            stats: s.stats.into(),
        }
    }
}

/// One line of a [`CountTable`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    /// Memcg id.
    pub memcg: u32,
    /// `count_objects` per node, index = nid (SHRINK_EMPTY shown as 0).
    pub counts: Vec<u64>,
}

/// The kernel's debugfs `count` file for one shrinker: one row per online
/// memcg with a non-zero count. `Display` renders the text form, one
/// `<memcg id> <count per node…>` line per row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTable {
    /// The shrinker.
    pub shrinker: u32,
    /// Node count (length of every row's `counts`).
    pub nr_nodes: usize,
    /// Rows in pre-order of the memcg tree (root first).
    pub rows: Vec<CountRow>,
}

impl fmt::Display for CountTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for row in &self.rows {
            write!(f, "{}", row.memcg)?;
            for c in &row.counts {
                write!(f, " {c}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What a manual scan did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// The shrinker.
    pub shrinker: u32,
    /// The memcg actually passed to `scan_objects` (the root for a shrinker
    /// that is not memcg-aware).
    pub memcg: u32,
    /// Node.
    pub nid: usize,
    /// Objects asked for.
    pub nr_to_scan: u64,
    /// Objects freed (0 when stopped or not called).
    pub freed: u64,
    /// `scan_objects` returned SHRINK_STOP (or panicked).
    pub stopped: bool,
}

/// One online memcg, as listed by [`DebugView::memcgs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemcgEntry {
    /// Id.
    pub id: u32,
    /// Parent id (`None` for the root).
    pub parent: Option<u32>,
}

/// A debugfs-like view over a [`Registry`]; see the crate docs. Cheap to
/// clone (it holds a registry clone).
#[derive(Clone, Debug)]
pub struct DebugView {
    registry: Registry,
}

impl DebugView {
    /// A view over `registry` (which it keeps alive).
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// The registry viewed.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every live shrinker (allocated or registered), by id.
    pub fn shrinkers(&self) -> Vec<ShrinkerEntry> {
        self.registry
            .shrinkers()
            .iter()
            .map(ShrinkerEntry::from)
            .collect()
    }

    /// One shrinker by id.
    pub fn shrinker(&self, id: ShrinkerId) -> Result<ShrinkerEntry, DebugError> {
        self.registry
            .shrinkers()
            .iter()
            .find(|s| s.id == id)
            .map(ShrinkerEntry::from)
            .ok_or(DebugError::NoSuchShrinker(id.0))
    }

    /// Every online memcg, in pre-order (root first).
    pub fn memcgs(&self) -> Vec<MemcgEntry> {
        self.registry
            .memcgs()
            .iter()
            .map(|m| MemcgEntry {
                id: m.id().0,
                parent: m.parent().map(|p| p.id().0),
            })
            .collect()
    }

    /// The debugfs `count` file of shrinker `id`: `count_objects` for every
    /// online memcg (only the root if the shrinker is not memcg-aware) and
    /// every node (only node 0 is asked if it is not NUMA-aware), all-zero
    /// rows left out. Before the root is online the table is empty.
    pub fn count(&self, id: ShrinkerId) -> Result<CountTable, DebugError> {
        let entry = self.shrinker(id)?;
        if !entry.registered {
            return Err(DebugError::NoSuchShrinker(id.0));
        }
        let tree = self.registry.memcgs();
        let nr_nodes = tree.nr_nodes();
        let memcgs: Vec<Memcg> = if entry.flags.memcg_aware {
            tree.iter().collect()
        } else {
            self.registry.root().into_iter().collect()
        };
        let mut rows = Vec::new();
        for memcg in memcgs {
            // Offline since the iterator saw it: skipped, as the kernel does.
            if !memcg.is_online() {
                continue;
            }
            let mut counts = vec![0; nr_nodes];
            let asked = if entry.flags.numa_aware { nr_nodes } else { 1 };
            for (nid, slot) in counts.iter_mut().enumerate().take(asked) {
                *slot = match self.registry.count_one(id, &memcg, nid) {
                    Ok(n) => n.unwrap_or(0),
                    // Went offline mid-row: the row is dropped below.
                    Err(unishrink_shrinker::Error::Memcg(_)) if !memcg.is_online() => 0,
                    Err(e) => return Err(e.into()),
                };
            }
            if counts.iter().any(|&c| c > 0) {
                rows.push(CountRow {
                    memcg: memcg.id().0,
                    counts,
                });
            }
        }
        Ok(CountTable {
            shrinker: id.0,
            nr_nodes,
            rows,
        })
    }

    /// The debugfs `scan` file of shrinker `id`: one `scan_objects` call with
    /// `req.nr_to_scan` objects on `(req.memcg, req.nid)`, outside the
    /// reclaim arithmetic (deferred work is neither taken nor added). A
    /// `nr_to_scan` of 0 calls nothing.
    pub fn scan(&self, id: ShrinkerId, req: ScanRequest) -> Result<ScanResult, DebugError> {
        let entry = self.shrinker(id)?;
        if !entry.registered {
            return Err(DebugError::NoSuchShrinker(id.0));
        }
        let tree = self.registry.memcgs();
        let nr_nodes = tree.nr_nodes();
        if req.nid >= nr_nodes {
            return Err(DebugError::NodeOutOfRange {
                nid: req.nid,
                nr_nodes,
            });
        }
        let root = self.registry.root().ok_or(DebugError::NoRoot)?;
        let memcg = if entry.flags.memcg_aware {
            tree.lookup(MemcgId(req.memcg))
                .filter(Memcg::is_online)
                .ok_or(DebugError::NoSuchMemcg(req.memcg))?
        } else if req.memcg == 0 || req.memcg == root.id().0 {
            root
        } else {
            return Err(DebugError::NotMemcgAware {
                shrinker: id.0,
                memcg: req.memcg,
            });
        };
        let mut result = ScanResult {
            shrinker: id.0,
            memcg: memcg.id().0,
            nid: req.nid,
            nr_to_scan: req.nr_to_scan,
            freed: 0,
            stopped: false,
        };
        if req.nr_to_scan == 0 {
            return Ok(result);
        }
        match self
            .registry
            .scan_one(id, &memcg, req.nid, req.nr_to_scan)?
        {
            Some(freed) => result.freed = freed,
            None => result.stopped = true,
        }
        Ok(result)
    }

    /// [`DebugView::scan`] with the text input of the `scan` file,
    /// `<memcg id> <nid> <nr_to_scan>`.
    pub fn scan_str(&self, id: ShrinkerId, input: &str) -> Result<ScanResult, DebugError> {
        self.scan(id, input.parse()?)
    }
}
