//! A memcg-aware, NUMA-aware LRU list that sets shrinker bits and reparents
//! on offline (the kernel's `list_lru`).
//!
//! # Concepts
//!
//! A [`ListLru<T>`] keeps owned items of type `T` on one list per
//! `(memcg, node)`. Caches put their reclaimable objects there; a shrinker
//! (usually the ready-made [`LruShrinker`]) counts and walks the list of the
//! `(memcg, nid)` that reclaim asks about.
//!
//! * **Lists.** Per memcg there is one [`MemcgLru`] record holding one list per
//!   node, each behind its own small mutex (the kernel's per-list spinlock).
//!   Records are found by memcg id in an RCU radix tree
//!   ([`unishrink_xarray::XArray`]), so adds, deletes and walks of different
//!   memcgs or nodes never share a lock. A record is created on the first add
//!   for its memcg (under a creation mutex that only first adds and offlines
//!   take).
//! * **Order.** Items are added at the tail; walks start at the head, so the
//!   head holds the least recently added (or rotated) items.
//! * **Handles.** [`ListLru::add`] returns an [`LruHandle`] that names the item
//!   wherever it lives now — reparenting moves items between lists, and the
//!   handle follows. [`ListLru::del`] takes a specific item back out.
//! * **Shrinker bits.** When an add makes a list non-empty, the bound
//!   shrinker's bit is set for that `(memcg, nid)` with
//!   [`Registry::set_shrinker_bit`], *after* the item is on the list (the
//!   bit-set issues the full barrier that pairs with the SHRINK_EMPTY
//!   clear-and-recount of the walker), so reclaim never misses a list with
//!   items on it. A shrinker may be bound after items were added
//!   ([`ListLru::bind_shrinker`] sets the bits of every non-empty list).
//!
//! # Offline and reparenting
//!
//! The lru registers a reparent hook on the memcg tree. When a memcg goes
//! offline the hook, for each node, locks the child's list and then the
//! parent's, marks the child's list *dead*, splices every item to the **head**
//! of the parent's list (a dead cgroup's objects are reclaimed first),
//! re-points every moved item's handle, and sets the parent's shrinker bit.
//! Only then is the child's record removed from the radix tree.
//!
//! **An add to an offline memcg goes to its nearest online ancestor** (the
//! kernel's objcg reparenting does the same for charges). This is never
//! refused: the root never goes offline. Precisely:
//! * an add that finds the memcg's list dead retries with the parent;
//! * an add that needs to *create* the record of an offline memcg creates (or
//!   uses) the parent's instead;
//! * an add that wins the race against the hook (the list is still live)
//!   lands on the child's list, and the hook then moves it with the rest.
//!
//! # Invariants
//!
//! 1. *Nothing lost.* Every item added is, at any time, on exactly one list,
//!    or was handed back by exactly one of [`ListLru::del`], a walk, or
//!    [`ListLru::drain`]. A handle's location is only written while holding
//!    the lock of the list the item is on (both locks during a move), so a
//!    `del` that re-reads the location under the lock it took cannot remove
//!    from the wrong list.
//! 2. *No missed bit.* A non-empty list of an online memcg has its shrinker
//!    bit set, or a set is about to happen (by the add that filled it, by the
//!    reparent hook, or by `bind_shrinker`).
//! 3. *Lock order.* creation mutex → child list → parent list. Only the
//!    reparent hook holds two list locks, always child before ancestor, and a
//!    parent cannot go offline while a child's offline is in progress
//!    (`unishrink-memcg` invariant 2), so there is no cycle.
//!
//! # Example
//!
//! ```
//! use unishrink_list_lru::{ListLru, LruWalk};
//! use unishrink_shrinker::{MemcgConfig, Registry};
//!
//! let reg = Registry::new(MemcgConfig { nr_nodes: 1, ..MemcgConfig::default() });
//! let root = reg.online_root().unwrap();
//! let lru: ListLru<u32> = ListLru::new(&reg);
//! let h = lru.add(&root, 0, 7).unwrap();
//! lru.add(&root, 0, 8).unwrap();
//! assert_eq!(lru.count(&root, 0).unwrap(), 2);
//! assert_eq!(lru.del(&h), Some(7));
//! let walk = lru.walk(&root, 0, 10, |_item| LruWalk::Removed).unwrap();
//! assert_eq!(walk.removed, vec![8]);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};
use unishrink_memcg::{HookId, Memcg, MemcgError, MemcgId};
use unishrink_shrinker::{
    Count, Error as ShrinkerError, Registry, Scan, Shrink, ShrinkControl, ShrinkerConfig,
    ShrinkerFlags, ShrinkerId,
};
use unishrink_xarray::{pin, XArray};

mod list;
mod shrinker;

use list::NodeList;
pub use shrinker::LruShrinker;

/// What an isolate callback tells a walk to do with the item it was shown
/// (the kernel's `enum lru_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LruWalk {
    /// Take the item off the list and hand it back to the walker's caller.
    Removed,
    /// Move the item to the tail (it was used recently).
    Rotate,
    /// Leave the item where it is and go on.
    Skip,
    /// Leave the item where it is and end the walk.
    Stop,
}

/// What one [`ListLru::walk`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct WalkOutcome<T> {
    /// The removed items, in list order, for the caller to dispose of
    /// (outside the list lock).
    pub removed: Vec<T>,
    /// How many items the isolate callback was shown.
    pub walked: u64,
    /// How many were rotated to the tail.
    pub rotated: u64,
    /// Whether the callback returned [`LruWalk::Stop`].
    pub stopped: bool,
}

impl<T> Default for WalkOutcome<T> {
    fn default() -> Self {
        Self {
            removed: Vec::new(),
            walked: 0,
            rotated: 0,
            stopped: false,
        }
    }
}

/// Why a list_lru operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LruError {
    /// The memcg belongs to another registry's tree.
    ForeignMemcg,
    /// A node id beyond the tree's node count.
    NodeOutOfRange {
        /// The node asked for.
        nid: usize,
        /// The configured node count.
        nr_nodes: usize,
    },
    /// [`ListLru::bind_shrinker`] was called twice.
    AlreadyBound(ShrinkerId),
    /// Allocating or registering the shrinker failed.
    Shrinker(ShrinkerError),
}

impl fmt::Display for LruError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignMemcg => f.write_str("memcg belongs to another tree"),
            Self::NodeOutOfRange { nid, nr_nodes } => {
                write!(f, "node {nid} out of range (tree has {nr_nodes} nodes)")
            }
            Self::AlreadyBound(id) => write!(f, "list_lru already bound to shrinker {id}"),
            Self::Shrinker(e) => write!(f, "shrinker: {e}"),
        }
    }
}

impl std::error::Error for LruError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Shrinker(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ShrinkerError> for LruError {
    fn from(e: ShrinkerError) -> Self {
        match e {
            ShrinkerError::Memcg(MemcgError::ForeignMemcg) => Self::ForeignMemcg,
            ShrinkerError::Memcg(MemcgError::NodeOutOfRange { nid, nr_nodes }) => {
                Self::NodeOutOfRange { nid, nr_nodes }
            }
            e => Self::Shrinker(e),
        }
    }
}

/// Encodes "(memcg id, nid)" in one word; `REMOVED` means "on no list".
const REMOVED: u64 = u64::MAX;

fn encode(memcg: MemcgId, nid: usize) -> u64 {
    (u64::from(memcg.0) << 32) | (nid as u64 & 0xffff_ffff)
}

fn decode(key: u64) -> (MemcgId, usize) {
    (MemcgId((key >> 32) as u32), (key & 0xffff_ffff) as usize)
}

/// Where an item is. Written only under the lock of the list holding the
/// item (invariant 1), read optimistically and re-checked under that lock.
pub(crate) struct Tracker {
    list: AtomicU64,
    slot: AtomicU32,
}

impl Tracker {
    pub(crate) fn set(&self, key: u64, slot: u32) {
        self.slot.store(slot, Ordering::Relaxed);
        self.list.store(key, Ordering::Release);
    }
    pub(crate) fn set_removed(&self) {
        self.list.store(REMOVED, Ordering::Release);
    }
}

/// Names one added item, wherever reparenting has moved it. Cheap to clone.
#[derive(Clone)]
pub struct LruHandle {
    tracker: Arc<Tracker>,
}

impl fmt::Debug for LruHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruHandle")
            .field("location", &self.location())
            .finish()
    }
}

impl LruHandle {
    /// The `(memcg, nid)` whose list holds the item now, `None` once it was
    /// taken off (by `del`, a walk or `drain`). A snapshot: a concurrent
    /// reparent may move it right after.
    pub fn location(&self) -> Option<(MemcgId, usize)> {
        match self.tracker.list.load(Ordering::Acquire) {
            REMOVED => None,
            key => Some(decode(key)),
        }
    }

    /// Whether the item is still on some list (a snapshot).
    pub fn is_listed(&self) -> bool {
        self.location().is_some()
    }
}

/// One node's list and its lock-free length.
struct NodeSlot<T> {
    list: Mutex<NodeList<T>>,
    /// Written under `list`'s lock, read without it (the kernel's `nr_items`).
    nr: AtomicUsize,
}

/// The lists of one memcg, one per node.
pub struct MemcgLru<T> {
    memcg: Memcg,
    nodes: Box<[NodeSlot<T>]>,
}

impl<T> fmt::Debug for MemcgLru<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcgLru")
            .field("memcg", &self.memcg.id())
            .field(
                "nr",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.nr.load(Ordering::Relaxed))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

const UNBOUND: u32 = u32::MAX;

pub(crate) struct Shared<T: Send + 'static> {
    registry: Registry,
    nr_nodes: usize,
    lists: XArray<MemcgLru<T>>,
    /// Serializes record creation against the reparent hook (see crate docs).
    create: Mutex<()>,
    shrinker: AtomicU32,
    hook: Mutex<Option<HookId>>,
}

impl<T: Send + 'static> Drop for Shared<T> {
    fn drop(&mut self) {
        if let Some(h) = self.hook.get_mut().take() {
            self.registry.memcgs().unregister_reparent_hook(h);
        }
    }
}

/// A memcg-aware, NUMA-aware LRU of owned items (see the crate docs).
/// Cheap to clone: clones share the lists.
pub struct ListLru<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> Clone for ListLru<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for ListLru<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListLru")
            .field("shrinker", &self.shrinker())
            .field("memcgs", &self.shared.lists.len())
            .finish()
    }
}

impl<T: Send + 'static> ListLru<T> {
    /// An empty lru over `registry`'s memcg tree, with a reparent hook
    /// registered on it (removed when the last clone drops). Bind a shrinker
    /// with [`ListLru::bind_shrinker`], or use [`LruShrinker::new`].
    ///
    /// Dropping the last clone unregisters the hook, which takes the memcg
    /// tree's writer lock: do not let the last clone be dropped by an epoch
    /// deferred destructor (e.g. captured in a shrinker's callbacks —
    /// [`LruShrinker`] holds its lru weakly for this reason).
    pub fn new(registry: &Registry) -> Self {
        let shared = Arc::new(Shared {
            registry: registry.clone(),
            nr_nodes: registry.memcgs().nr_nodes(),
            lists: XArray::new(),
            create: Mutex::new(()),
            shrinker: AtomicU32::new(UNBOUND),
            hook: Mutex::new(None),
        });
        // Weak: the tree must not keep the lru alive (nor form a cycle).
        let weak: Weak<Shared<T>> = Arc::downgrade(&shared);
        let hook = registry.memcgs().register_reparent_hook(Arc::new(
            move |child: &Memcg, parent: &Memcg| {
                if let Some(shared) = weak.upgrade() {
                    ListLru { shared }.reparent(child, parent);
                }
            },
        ));
        *shared.hook.lock() = Some(hook);
        Self { shared }
    }

    pub(crate) fn downgrade(&self) -> Weak<Shared<T>> {
        Arc::downgrade(&self.shared)
    }

    /// The registry this lru lives in.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The bound shrinker's id, if any.
    pub fn shrinker(&self) -> Option<ShrinkerId> {
        match self.shared.shrinker.load(Ordering::Acquire) {
            UNBOUND => None,
            id => Some(ShrinkerId(id)),
        }
    }

    /// Binds the shrinker whose bit adds set, and sets its bit for every list
    /// that already has items (adds before binding are not lost).
    pub fn bind_shrinker(&self, id: ShrinkerId) -> Result<(), LruError> {
        if let Err(old) =
            self.shared
                .shrinker
                .compare_exchange(UNBOUND, id.0, Ordering::SeqCst, Ordering::SeqCst)
        {
            return Err(LruError::AlreadyBound(ShrinkerId(old)));
        }
        // An add that read UNBOUND filled its list before our store; we see
        // its items here, under the same lock.
        let guard = pin();
        for (_, rec) in self.shared.lists.iter(0, &guard) {
            for (nid, node) in rec.nodes.iter().enumerate() {
                let l = node.list.lock();
                if !l.dead && l.len() > 0 {
                    self.set_bit(&rec.memcg, nid);
                }
            }
        }
        Ok(())
    }

    fn set_bit(&self, memcg: &Memcg, nid: usize) {
        if let Some(id) = self.shrinker() {
            // Offline: the reparent hook moves the items and sets the parent's
            // bit. NoSuchShrinker: the shrinker was freed, nobody reclaims.
            let _ = self.shared.registry.set_shrinker_bit(memcg, nid, id);
        }
    }

    fn check(&self, memcg: &Memcg, nid: usize) -> Result<(), LruError> {
        if !self.shared.registry.memcgs().owns(memcg) {
            return Err(LruError::ForeignMemcg);
        }
        if nid >= self.shared.nr_nodes {
            return Err(LruError::NodeOutOfRange {
                nid,
                nr_nodes: self.shared.nr_nodes,
            });
        }
        Ok(())
    }

    /// The record of `memcg`, created if missing. If `memcg` is offline and
    /// has no record, the nearest online ancestor's record is returned
    /// instead (possibly created).
    fn record(&self, memcg: &Memcg) -> Arc<MemcgLru<T>> {
        let mut m = memcg.clone();
        loop {
            if let Some(rec) = self.shared.lists.get(u64::from(m.id().0)) {
                if rec.memcg == m {
                    return rec;
                }
                // A previous memcg with a recycled id whose offline hook is
                // still moving its items; the hook erases it shortly.
                std::thread::yield_now();
                continue;
            }
            let _c = self.shared.create.lock();
            if let Some(rec) = self.shared.lists.get(u64::from(m.id().0)) {
                if rec.memcg == m {
                    return rec;
                }
                continue;
            }
            if !m.is_online() {
                // The hook (which takes `create`) has run or will run and
                // will find no record of `m`: go up.
                m = match m.parent() {
                    Some(p) => p.clone(),
                    None => m, // the root never goes offline
                };
                continue;
            }
            let nodes = (0..self.shared.nr_nodes)
                .map(|_| NodeSlot {
                    list: Mutex::new(NodeList::new()),
                    nr: AtomicUsize::new(0),
                })
                .collect();
            let rec = Arc::new(MemcgLru {
                memcg: m.clone(),
                nodes,
            });
            if self
                .shared
                .lists
                .store(u64::from(m.id().0), rec.clone())
                .is_err()
            {
                // The radix tree could not grow: fall back to the parent,
                // which has (or gets) a record; the root's store must succeed
                // eventually, and items are never dropped.
                if let Some(p) = m.parent() {
                    m = p.clone();
                    continue;
                }
                std::thread::yield_now();
                continue;
            }
            return rec;
        }
    }

    /// Adds `item` at the tail of `(memcg, nid)`'s list — or of the nearest
    /// online ancestor's if `memcg` is offline — and sets the shrinker bit if
    /// the list was empty. Returns a handle for [`ListLru::del`].
    pub fn add(&self, memcg: &Memcg, nid: usize, item: T) -> Result<LruHandle, LruError> {
        self.check(memcg, nid)?;
        let tracker = Arc::new(Tracker {
            list: AtomicU64::new(REMOVED),
            slot: AtomicU32::new(0),
        });
        let mut m = memcg.clone();
        let mut item = Some(item);
        loop {
            let rec = self.record(&m);
            let node = &rec.nodes[nid];
            let mut l = node.list.lock();
            if l.dead {
                drop(l);
                m = rec.memcg.parent().cloned().unwrap_or(m);
                continue;
            }
            let key = encode(rec.memcg.id(), nid);
            let was_empty = l.len() == 0;
            let it = item.take().expect("inserted once");
            l.push_back(it, tracker.clone(), key);
            node.nr.store(l.len(), Ordering::Relaxed);
            if was_empty {
                // After the item is visible to a counter (we hold the lock,
                // and count() reads `nr`, stored above); set_shrinker_bit
                // issues the full barrier before setting the bit.
                self.set_bit(&rec.memcg, nid);
            }
            return Ok(LruHandle { tracker });
        }
    }

    /// Takes the item named by `handle` off its list and returns it, or
    /// `None` if it was already taken (by `del`, a walk or `drain`).
    pub fn del(&self, handle: &LruHandle) -> Option<T> {
        let t = &handle.tracker;
        loop {
            let key = t.list.load(Ordering::Acquire);
            if key == REMOVED {
                return None;
            }
            let (mid, nid) = decode(key);
            let guard = pin();
            let Some(rec) = self.shared.lists.load(u64::from(mid.0), &guard) else {
                // Moved by a reparent that finished meanwhile: re-read.
                std::thread::yield_now();
                continue;
            };
            let Some(node) = rec.nodes.get(nid) else {
                return None; // a handle of another lru
            };
            let mut l = node.list.lock();
            if t.list.load(Ordering::Acquire) != key {
                continue; // moved or removed before we got the lock
            }
            let slot = t.slot.load(Ordering::Relaxed);
            let Some(item) = l.remove_if(slot, t) else {
                return None; // a handle of another lru
            };
            node.nr.store(l.len(), Ordering::Relaxed);
            return Some(item);
        }
    }

    /// Number of items on `(memcg, nid)`'s list (a lock-free snapshot).
    pub fn count(&self, memcg: &Memcg, nid: usize) -> Result<u64, LruError> {
        self.check(memcg, nid)?;
        let guard = pin();
        Ok(self
            .shared
            .lists
            .load(u64::from(memcg.id().0), &guard)
            .filter(|rec| rec.memcg == *memcg)
            .map_or(0, |rec| rec.nodes[nid].nr.load(Ordering::Relaxed) as u64))
    }

    /// Items on every list of every memcg (a snapshot).
    pub fn total(&self) -> u64 {
        let guard = pin();
        self.shared
            .lists
            .iter(0, &guard)
            .map(|(_, rec)| {
                rec.nodes
                    .iter()
                    .map(|n| n.nr.load(Ordering::Relaxed) as u64)
                    .sum::<u64>()
            })
            .sum()
    }

    /// Walks `(memcg, nid)`'s list from the head, showing at most
    /// `nr_to_walk` items to `isolate`, which decides per item (see
    /// [`LruWalk`]). Removed items are returned in [`WalkOutcome::removed`]
    /// so the caller frees them outside the list lock. `isolate` runs under
    /// the list lock: it must not call back into this lru for the same list.
    pub fn walk(
        &self,
        memcg: &Memcg,
        nid: usize,
        nr_to_walk: u64,
        mut isolate: impl FnMut(&mut T) -> LruWalk,
    ) -> Result<WalkOutcome<T>, LruError> {
        self.check(memcg, nid)?;
        let mut out = WalkOutcome::default();
        let guard = pin();
        let Some(rec) = self
            .shared
            .lists
            .load(u64::from(memcg.id().0), &guard)
            .filter(|rec| rec.memcg == *memcg)
        else {
            return Ok(out);
        };
        let node = &rec.nodes[nid];
        let mut l: MutexGuard<'_, NodeList<T>> = node.list.lock();
        // A rotated item is not shown twice in one walk.
        let mut budget = nr_to_walk.min(l.len() as u64);
        let mut cur = l.head();
        while budget > 0 {
            let Some(slot) = cur else { break };
            budget -= 1;
            out.walked += 1;
            let next = l.next(slot);
            match isolate(l.item_mut(slot)) {
                LruWalk::Removed => {
                    let item = l.remove(slot);
                    out.removed.push(item);
                }
                LruWalk::Rotate => {
                    l.move_to_tail(slot);
                    out.rotated += 1;
                }
                LruWalk::Skip => {}
                LruWalk::Stop => {
                    out.stopped = true;
                    break;
                }
            }
            cur = next;
        }
        node.nr.store(l.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// Takes every item off every list (for teardown); handles report
    /// `None` afterwards.
    pub fn drain(&self) -> Vec<T> {
        let mut out = Vec::new();
        let guard = pin();
        for (_, rec) in self.shared.lists.iter(0, &guard) {
            for node in rec.nodes.iter() {
                let mut l = node.list.lock();
                while let Some(slot) = l.head() {
                    out.push(l.remove(slot));
                }
                node.nr.store(0, Ordering::Relaxed);
            }
        }
        out
    }

    /// The reparent hook: moves every item of `child` to `parent`.
    fn reparent(&self, child: &Memcg, parent: &Memcg) {
        let _c = self.shared.create.lock();
        let Some(src) = self
            .shared
            .lists
            .get(u64::from(child.id().0))
            .filter(|r| r.memcg == *child)
        else {
            return;
        };
        drop(_c);
        // The parent is online while a child's offline runs (memcg invariant
        // 2), so this returns the parent's own record.
        let dst = self.record(parent);
        let _c = self.shared.create.lock();
        for nid in 0..self.shared.nr_nodes {
            let mut s = src.nodes[nid].list.lock();
            let mut d = dst.nodes[nid].list.lock();
            s.dead = true;
            let moved = s.len();
            if moved > 0 {
                let key = encode(dst.memcg.id(), nid);
                d.splice_front(&mut s, key);
                src.nodes[nid].nr.store(0, Ordering::Relaxed);
                dst.nodes[nid].nr.store(d.len(), Ordering::Relaxed);
                self.set_bit(&dst.memcg, nid);
            }
        }
        // Every tracker points at `dst` now; lookups of the child's id miss.
        self.shared.lists.erase(u64::from(child.id().0));
    }
}

/// Adapter from a list_lru to the [`Shrink`] callbacks (used by
/// [`LruShrinker`]). Holds the lru *weakly*: a freed shrinker is destroyed
/// later by the epoch collector, possibly inside another thread's `pin()`
/// under the memcg tree's writer lock, and dropping the last lru there would
/// unregister its reparent hook under that same lock (a self-deadlock).
pub(crate) struct LruShrink<T: Send + 'static, I, D> {
    pub(crate) lru: Weak<Shared<T>>,
    pub(crate) isolate: I,
    pub(crate) dispose: D,
}

impl<T, I, D> Shrink for LruShrink<T, I, D>
where
    T: Send + 'static,
    I: Fn(&mut T) -> LruWalk + Send + Sync + 'static,
    D: Fn(T) + Send + Sync + 'static,
{
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        let Some(shared) = self.lru.upgrade() else {
            return Count::Empty;
        };
        match (ListLru { shared }).count(sc.memcg, sc.nid) {
            Ok(0) | Err(_) => Count::Empty,
            Ok(n) => Count::Objects(n),
        }
    }

    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        let Some(shared) = self.lru.upgrade() else {
            return Scan::Stop;
        };
        let lru = ListLru { shared };
        let Ok(out) = lru.walk(sc.memcg, sc.nid, sc.nr_to_scan, &self.isolate) else {
            return Scan::Stop;
        };
        sc.nr_scanned = out.walked;
        let freed = out.removed.len() as u64;
        for item in out.removed {
            (self.dispose)(item);
        }
        if freed == 0 && out.stopped {
            Scan::Stop
        } else {
            Scan::Freed(freed)
        }
    }
}

pub(crate) fn lru_shrinker_config(config: ShrinkerConfig) -> ShrinkerConfig {
    let flags = config.flags | ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE;
    config.flags(flags)
}
