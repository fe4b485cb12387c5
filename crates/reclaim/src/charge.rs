//! Hierarchical charge counters with limits (the kernel's `page_counter`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use unishrink_memcg::{HookId, Memcg, MemcgId};
use unishrink_shrinker::Registry;
use unishrink_xarray::XArray;

use crate::priority::reclaim_memcg;

/// Tunables of [`ChargeCounters::charge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargeConfig {
    /// Reclaim-and-retry rounds before giving up (the kernel's
    /// `MAX_RECLAIM_RETRIES` idea).
    pub max_retries: u32,
    /// Smallest reclaim goal in objects, so a tiny charge still frees a
    /// useful batch (the kernel's `SWAP_CLUSTER_MAX`).
    pub min_reclaim: u64,
    /// Charge units per reclaimable object (e.g. bytes per cached buffer):
    /// a charge of `n` reclaims `max(ceil(n / unit), min_reclaim)` objects.
    pub unit: u64,
}

impl Default for ChargeConfig {
    fn default() -> Self {
        Self {
            max_retries: 5,
            min_reclaim: 32,
            unit: 1,
        }
    }
}

/// Why a charge or uncharge failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChargeError {
    /// `memcg`'s limit would be exceeded, even after reclaim.
    OverLimit {
        /// The memcg (the charged one or an ancestor) whose limit was hit.
        memcg: MemcgId,
        /// Its limit.
        limit: u64,
        /// Its usage when the charge was refused.
        usage: u64,
    },
    /// The memcg belongs to another registry's tree.
    ForeignMemcg,
    /// An uncharge of more than was charged; the counter was clamped at 0.
    Underflow {
        /// The memcg whose counter would have gone negative.
        memcg: MemcgId,
        /// Its usage before the uncharge.
        usage: u64,
        /// The amount uncharged.
        amount: u64,
    },
}

impl fmt::Display for ChargeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OverLimit {
                memcg,
                limit,
                usage,
            } => write!(f, "{memcg} over its limit: usage {usage}, limit {limit}"),
            Self::ForeignMemcg => f.write_str("memcg belongs to another tree"),
            Self::Underflow {
                memcg,
                usage,
                amount,
            } => write!(f, "{memcg}: uncharge of {amount} with usage {usage}"),
        }
    }
}

impl std::error::Error for ChargeError {}

struct Counter {
    memcg: Memcg,
    usage: AtomicU64,
    limit: AtomicU64,
    watermark: AtomicU64,
    failcnt: AtomicU64,
}

struct Shared {
    registry: Registry,
    config: ChargeConfig,
    counters: XArray<Counter>,
    /// Serializes counter creation against the offline hook.
    create: Mutex<()>,
    hook: Mutex<Option<HookId>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(h) = self.hook.get_mut().take() {
            self.registry.memcgs().unregister_reparent_hook(h);
        }
    }
}

/// Per-memcg hierarchical usage counters with limits. Cheap to clone.
///
/// Dropping the last clone unregisters an offline hook, which takes the
/// memcg tree's writer lock: shrinker callbacks that uncharge (the usual
/// case) should capture [`ChargeCounters::downgrade`] rather than a clone,
/// because a freed shrinker's callbacks are destroyed by the epoch collector,
/// which may run under that lock.
///
/// ```
/// use unishrink_reclaim::{ChargeCounters, ChargeError};
/// use unishrink_shrinker::{MemcgConfig, Registry};
///
/// let reg = Registry::new(MemcgConfig { nr_nodes: 1, ..MemcgConfig::default() });
/// let root = reg.online_root().unwrap();
/// let counters = ChargeCounters::new(&reg);
/// counters.set_limit(&root, 100).unwrap();
/// counters.charge(&root, 60).unwrap();
/// // Nothing to reclaim: the second charge fails with the typed error.
/// assert_eq!(
///     counters.charge(&root, 60),
///     Err(ChargeError::OverLimit { memcg: root.id(), limit: 100, usage: 60 })
/// );
/// counters.uncharge(&root, 60).unwrap();
/// assert_eq!(counters.usage(&root).unwrap(), 0);
/// ```
#[derive(Clone)]
pub struct ChargeCounters {
    shared: Arc<Shared>,
}

impl fmt::Debug for ChargeCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChargeCounters")
            .field("counters", &self.shared.counters.len())
            .field("config", &self.shared.config)
            .finish()
    }
}

/// A weak [`ChargeCounters`] handle; see [`ChargeCounters::downgrade`].
#[derive(Clone, Debug)]
pub struct WeakChargeCounters(Weak<Shared>);

impl WeakChargeCounters {
    /// The counters, if any strong handle is left.
    pub fn upgrade(&self) -> Option<ChargeCounters> {
        self.0.upgrade().map(|shared| ChargeCounters { shared })
    }

    /// Uncharges if the counters still exist (a no-op otherwise).
    pub fn uncharge(&self, memcg: &Memcg, n: u64) -> Result<(), ChargeError> {
        match self.upgrade() {
            Some(c) => c.uncharge(memcg, n),
            None => Ok(()),
        }
    }
}

impl ChargeCounters {
    /// Counters over `registry`'s memcg tree, default tunables.
    pub fn new(registry: &Registry) -> Self {
        Self::with_config(registry, ChargeConfig::default())
    }

    /// Counters with explicit tunables.
    pub fn with_config(registry: &Registry, config: ChargeConfig) -> Self {
        let shared = Arc::new(Shared {
            registry: registry.clone(),
            config,
            counters: XArray::new(),
            create: Mutex::new(()),
            hook: Mutex::new(None),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let hook = registry.memcgs().register_reparent_hook(Arc::new(
            move |child: &Memcg, _parent: &Memcg| {
                if let Some(s) = weak.upgrade() {
                    // The ancestors already include the child's usage: only
                    // the child's own counter goes.
                    let _c = s.create.lock();
                    let id = u64::from(child.id().0);
                    if s.counters.get(id).is_some_and(|c| c.memcg == *child) {
                        s.counters.erase(id);
                    }
                }
            },
        ));
        *shared.hook.lock() = Some(hook);
        Self { shared }
    }

    /// A weak handle for shrinker callbacks (see the type docs).
    pub fn downgrade(&self) -> WeakChargeCounters {
        WeakChargeCounters(Arc::downgrade(&self.shared))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    fn check(&self, memcg: &Memcg) -> Result<(), ChargeError> {
        if self.shared.registry.memcgs().owns(memcg) {
            Ok(())
        } else {
            Err(ChargeError::ForeignMemcg)
        }
    }

    fn find(&self, memcg: &Memcg) -> Option<Arc<Counter>> {
        self.shared
            .counters
            .get(u64::from(memcg.id().0))
            .filter(|c| c.memcg == *memcg)
    }

    /// The counter of `memcg`, created (usage 0, no limit) if it is online
    /// and has none. `None` for an offline memcg without one.
    fn counter(&self, memcg: &Memcg) -> Option<Arc<Counter>> {
        if let Some(c) = self.find(memcg) {
            return Some(c);
        }
        let _c = self.shared.create.lock();
        if let Some(c) = self.find(memcg) {
            return Some(c);
        }
        if !memcg.is_online() {
            return None;
        }
        let c = Arc::new(Counter {
            memcg: memcg.clone(),
            usage: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            watermark: AtomicU64::new(0),
            failcnt: AtomicU64::new(0),
        });
        // A radix tree that cannot grow leaves this memcg uncounted (its
        // ancestors still count the charge) rather than failing the charge.
        self.shared
            .counters
            .store(u64::from(memcg.id().0), c.clone())
            .ok()?;
        Some(c)
    }

    fn chain(&self, memcg: &Memcg) -> Vec<Arc<Counter>> {
        let mut out = Vec::new();
        let mut cur = Some(memcg);
        while let Some(m) = cur {
            if let Some(c) = self.counter(m) {
                out.push(c);
            }
            cur = m.parent();
        }
        out
    }

    /// Sets `memcg`'s limit (`u64::MAX`: none). A limit below the current
    /// usage is accepted: charges fail (after reclaim) until usage drops.
    pub fn set_limit(&self, memcg: &Memcg, limit: u64) -> Result<(), ChargeError> {
        self.check(memcg)?;
        if let Some(c) = self.counter(memcg) {
            c.limit.store(limit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `memcg`'s limit (`u64::MAX` when unlimited or uncounted).
    pub fn limit(&self, memcg: &Memcg) -> Result<u64, ChargeError> {
        self.check(memcg)?;
        Ok(self
            .find(memcg)
            .map_or(u64::MAX, |c| c.limit.load(Ordering::Relaxed)))
    }

    /// `memcg`'s hierarchical usage (its own charges and its descendants').
    pub fn usage(&self, memcg: &Memcg) -> Result<u64, ChargeError> {
        self.check(memcg)?;
        Ok(self
            .find(memcg)
            .map_or(0, |c| c.usage.load(Ordering::Relaxed)))
    }

    /// Highest usage seen for `memcg` (the kernel's `max_usage`).
    pub fn watermark(&self, memcg: &Memcg) -> Result<u64, ChargeError> {
        self.check(memcg)?;
        Ok(self
            .find(memcg)
            .map_or(0, |c| c.watermark.load(Ordering::Relaxed)))
    }

    /// How many charges `memcg`'s limit refused (the kernel's `failcnt`).
    pub fn failcnt(&self, memcg: &Memcg) -> Result<u64, ChargeError> {
        self.check(memcg)?;
        Ok(self
            .find(memcg)
            .map_or(0, |c| c.failcnt.load(Ordering::Relaxed)))
    }

    /// Charges `n` to `memcg` and every ancestor without reclaiming. On
    /// failure nothing stays charged.
    pub fn try_charge(&self, memcg: &Memcg, n: u64) -> Result<(), ChargeError> {
        self.try_charge_inner(memcg, n).map_err(|(e, _)| e)
    }

    fn try_charge_inner(&self, memcg: &Memcg, n: u64) -> Result<(), (ChargeError, Memcg)> {
        self.check(memcg).map_err(|e| (e, memcg.clone()))?;
        let chain = self.chain(memcg);
        for (i, c) in chain.iter().enumerate() {
            // Optimistic add then check, as page_counter_try_charge: a racing
            // charge may briefly see our overshoot and fail spuriously, which
            // is acceptable; usage never stays above the limit.
            let old = c.usage.fetch_add(n, Ordering::Relaxed);
            let new = old.saturating_add(n);
            let limit = c.limit.load(Ordering::Relaxed);
            if new > limit || old.checked_add(n).is_none() {
                c.usage.fetch_sub(n, Ordering::Relaxed);
                for done in &chain[..i] {
                    done.usage.fetch_sub(n, Ordering::Relaxed);
                }
                c.failcnt.fetch_add(1, Ordering::Relaxed);
                return Err((
                    ChargeError::OverLimit {
                        memcg: c.memcg.id(),
                        limit,
                        usage: old,
                    },
                    c.memcg.clone(),
                ));
            }
            c.watermark.fetch_max(new, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Charges `n` to `memcg` and every ancestor. When a limit is hit, the
    /// subtree of the memcg whose limit it was is reclaimed (goal:
    /// `max(ceil(n / unit), min_reclaim)` objects) and the charge retried, up to
    /// `max_retries` times or until a reclaim frees nothing; then it fails
    /// with [`ChargeError::OverLimit`]. Returns the objects reclaimed.
    pub fn charge(&self, memcg: &Memcg, n: u64) -> Result<u64, ChargeError> {
        let mut reclaimed = 0u64;
        let mut retries = 0;
        loop {
            let (err, over) = match self.try_charge_inner(memcg, n) {
                Ok(()) => return Ok(reclaimed),
                Err(e) => e,
            };
            if !matches!(err, ChargeError::OverLimit { .. })
                || retries >= self.shared.config.max_retries
            {
                return Err(err);
            }
            retries += 1;
            let unit = self.shared.config.unit.max(1);
            let goal = n.div_ceil(unit).max(self.shared.config.min_reclaim);
            let freed = reclaim_memcg(&self.shared.registry, &over, goal)
                .map(|r| r.freed)
                .unwrap_or(0);
            reclaimed = reclaimed.saturating_add(freed);
            if freed == 0 {
                // No progress possible: retrying would only repeat the scan.
                return match self.try_charge_inner(memcg, n) {
                    Ok(()) => Ok(reclaimed),
                    Err((e, _)) => Err(e),
                };
            }
        }
    }

    /// Uncharges `n` from `memcg` and every ancestor. An offline memcg's own
    /// counter is gone; its ancestors are uncharged. More than was charged
    /// clamps at 0 and reports [`ChargeError::Underflow`] (the first one).
    pub fn uncharge(&self, memcg: &Memcg, n: u64) -> Result<(), ChargeError> {
        self.check(memcg)?;
        let mut result = Ok(());
        let mut cur = Some(memcg);
        while let Some(m) = cur {
            if let Some(c) = self.find(m) {
                let prev = c
                    .usage
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                        Some(u.saturating_sub(n))
                    })
                    .unwrap_or(0);
                if prev < n && result.is_ok() {
                    result = Err(ChargeError::Underflow {
                        memcg: m.id(),
                        usage: prev,
                        amount: n,
                    });
                }
            }
            cur = m.parent();
        }
        result
    }
}
