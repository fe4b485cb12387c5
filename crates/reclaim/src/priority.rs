//! The priority loop.

use std::fmt;

use unishrink_memcg::{Memcg, MemcgError};
use unishrink_shrinker::{CallbackPanic, Error as ShrinkerError, Registry, DEF_PRIORITY};

/// What one reclaim run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Objects freed, summed over every shrinker call.
    pub freed: u64,
    /// Priority passes started (0 when the goal was 0).
    pub passes: u32,
    /// The lowest priority reached (`DEF_PRIORITY` if no pass ran).
    pub priority: u32,
    /// `shrink_slab` calls made (one per memcg and node per pass).
    pub shrink_calls: u64,
    /// Shrinker callbacks that panicked (reclaim went on).
    pub panics: Vec<CallbackPanic>,
}

impl Default for ReclaimReport {
    fn default() -> Self {
        Self {
            freed: 0,
            passes: 0,
            priority: DEF_PRIORITY,
            shrink_calls: 0,
            panics: Vec::new(),
        }
    }
}

impl ReclaimReport {
    /// Whether `goal` objects were freed.
    pub fn met(&self, goal: u64) -> bool {
        self.freed >= goal
    }
}

/// Why reclaim could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReclaimError {
    /// The memcg belongs to another registry's tree.
    ForeignMemcg,
    /// The root memcg is not online yet.
    NoRoot,
    /// Any other registry error.
    Shrinker(ShrinkerError),
}

impl fmt::Display for ReclaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignMemcg => f.write_str("memcg belongs to another tree"),
            Self::NoRoot => f.write_str("the root memcg is not online yet"),
            Self::Shrinker(e) => write!(f, "shrink_slab: {e}"),
        }
    }
}

impl std::error::Error for ReclaimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Shrinker(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ShrinkerError> for ReclaimError {
    fn from(e: ShrinkerError) -> Self {
        match e {
            ShrinkerError::Memcg(MemcgError::ForeignMemcg) => Self::ForeignMemcg,
            ShrinkerError::Memcg(MemcgError::NoRoot) => Self::NoRoot,
            e => Self::Shrinker(e),
        }
    }
}

/// One pass at `priority` over every online memcg of `memcg`'s subtree and
/// every node, adding to `report`. With `stop_at`, returns early once
/// `report.freed` reaches it.
pub fn shrink_subtree(
    registry: &Registry,
    memcg: &Memcg,
    priority: u32,
    report: &mut ReclaimReport,
    stop_at: Option<u64>,
) -> Result<(), ReclaimError> {
    let tree = registry.memcgs();
    if !tree.owns(memcg) {
        return Err(ReclaimError::ForeignMemcg);
    }
    for m in tree.iter_subtree(memcg) {
        for nid in 0..m.nr_nodes() {
            let r = registry.shrink_slab(&m, nid, priority)?;
            report.shrink_calls += 1;
            report.freed = report.freed.saturating_add(r.freed);
            report.panics.extend(r.panics);
            if stop_at.is_some_and(|goal| report.freed >= goal) {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn priority_loop(
    registry: &Registry,
    memcg: &Memcg,
    goal: u64,
    targeted: bool,
) -> Result<ReclaimReport, ReclaimError> {
    let mut report = ReclaimReport::default();
    if !registry.memcgs().owns(memcg) {
        return Err(ReclaimError::ForeignMemcg);
    }
    if goal == 0 {
        return Ok(report);
    }
    for priority in (0..=DEF_PRIORITY).rev() {
        report.passes += 1;
        report.priority = priority;
        let stop_at = targeted.then_some(goal);
        shrink_subtree(registry, memcg, priority, &mut report, stop_at)?;
        if report.freed >= goal {
            break;
        }
    }
    Ok(report)
}

/// Targeted reclaim: priority passes (12 → 0) over the online memcgs of
/// `memcg`'s subtree until `goal` objects are freed or priority 0 is done.
/// Never calls shrinkers of memcgs outside the subtree.
pub fn reclaim_memcg(
    registry: &Registry,
    memcg: &Memcg,
    goal: u64,
) -> Result<ReclaimReport, ReclaimError> {
    priority_loop(registry, memcg, goal, true)
}

/// Global reclaim: priority passes over every online memcg (pre-order from
/// the root) and every node until `goal` objects are freed. Each pass is
/// finished before the goal is checked, so every memcg gets its share.
pub fn reclaim_global(registry: &Registry, goal: u64) -> Result<ReclaimReport, ReclaimError> {
    let root = registry.root().ok_or(ReclaimError::NoRoot)?;
    priority_loop(registry, &root, goal, false)
}
