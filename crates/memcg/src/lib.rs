//! The memory-cgroup hierarchy that owns per-node shrinker state.
//!
//! # Concepts
//!
//! A [`MemcgTree`] is a value (no global state): a hierarchy of memory cgroups
//! ([`Memcg`] handles) with a root at the top. Every memcg — **the root
//! included** — owns one [`ShrinkerInfo`] per NUMA node: the bitmap of
//! shrinker ids that may have objects charged to it, and their `nr_deferred`
//! counters. This is the unification of DESIGN.md §3: the root is not special.
//!
//! * **Boot path.** A tree starts *without* a root: shrinker ids can be handed
//!   out (and [`MemcgTree::expand_all`] called) before [`MemcgTree::online_root`]
//!   runs; the root then comes up sized for every id already given out.
//! * **Compiled out / disabled.** With the cargo feature `memcg` off, or with
//!   [`Config::disabled`] set (the kernel's `cgroup_disable=memory`), only the
//!   root exists: it is the dummy root that holds every shrinker, and
//!   [`MemcgTree::create`] returns [`MemcgError::Disabled`].
//! * **Lifecycle.** `create` → *online* (visible to [`MemcgTree::lookup`] and to
//!   walkers) → [`MemcgTree::offline`] (registered reparent hooks run, every
//!   `nr_deferred` counter moves to the parent) → *released* when the last
//!   [`Memcg`] handle drops. A memcg may only go offline once its children have
//!   gone (as in cgroup v2, where a cgroup with children cannot be removed).
//! * **Ids.** Memcg ids live in an RCU radix tree ([`unishrink_xarray::XArray`]),
//!   so lookup by id takes no lock. They are allocated cyclically in
//!   `1..=Config::max_id` (lowest free id after the last one handed out,
//!   wrapping to 1), so a just-freed id is not reused at once.
//!
//! # Invariants
//!
//! 1. *Capacity.* Every memcg reachable by lookup or by a walk has shrinker
//!    info of capacity ≥ [`MemcgTree::map_nr_max`] on every node. `create` and
//!    `expand_all` both run under the tree's writer lock, and `create` sizes the
//!    new memcg from the capacity recorded under that lock, so a memcg created
//!    concurrently with an expansion comes up at the new capacity (there is no
//!    window in which it is too small).
//! 2. *Nothing lost on offline.* Offline is three steps: (a) under the lock, mark
//!    the memcg offline and drop its id from lookup; (b) outside the lock, run
//!    reparent hooks and move `nr_deferred` to the parent; (c) under the lock,
//!    unlink it from the parent's children. Because the parent still lists the
//!    child until (c), the parent cannot go offline while the child's objects
//!    are being moved into it ([`MemcgError::HasChildren`]).
//! 3. Writers (create, offline, expand, root online) are serialized by one
//!    mutex; readers (lookup, walks, `shrinker_info`, `map_nr_max`) take no
//!    tree-wide lock (a walk takes each visited memcg's children lock briefly).
//! 4. *Ownership is acyclic.* A child holds its parent strongly (a parent
//!    outlives its children); a parent lists its children strongly only while
//!    the tree exists: dropping the last [`MemcgTree`] clone empties every
//!    online memcg's children list, so nothing leaks. Releasing a long chain
//!    of ancestors is done iteratively, not recursively, so a deep hierarchy
//!    cannot overflow the stack.
//!
//! # Example
//!
//! ```
//! use unishrink_memcg::{Config, MemcgTree};
//!
//! let tree = MemcgTree::new(Config { nr_nodes: 2, ..Config::default() });
//! tree.expand_all(100).unwrap(); // ids handed out before the root exists
//! let root = tree.online_root().unwrap();
//! assert!(root.shrinker_info(1).unwrap().map_nr_max() >= 100);
//! # #[cfg(feature = "memcg")] {
//! let child = tree.create(&root).unwrap();
//! child.shrinker_info(0).unwrap().add_nr_deferred(7, 40).unwrap();
//! tree.offline(&child).unwrap();
//! assert_eq!(root.shrinker_info(0).unwrap().nr_deferred(7), 40);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use unishrink_shrinker_info::{InfoError, ShrinkerInfo};
use unishrink_xarray::{AllocError, XArray};

/// The id of a memcg within its tree (`1..=Config::max_id`; the root has the
/// first id given out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemcgId(pub u32);

impl fmt::Display for MemcgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcg{}", self.0)
    }
}

/// Configuration of a [`MemcgTree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of NUMA nodes: every memcg has one shrinker_info per node.
    /// Default: the OS's online node count, at least 1.
    pub nr_nodes: usize,
    /// Run-time switch (the kernel's `cgroup_disable=memory`): only the root
    /// exists and memcg-aware shrinkers act as global ones.
    pub disabled: bool,
    /// Kernel-memory accounting. Off: only `NONSLAB` memcg-aware shrinkers are
    /// called for non-root memcgs.
    pub kmem: bool,
    /// Largest memcg id (the kernel's `MEM_CGROUP_ID_MAX` is 65535).
    pub max_id: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nr_nodes: os_nr_nodes(),
            disabled: false,
            kmem: true,
            max_id: 65_535,
        }
    }
}

/// Online NUMA node count as the OS reports it (`/sys/devices/system/node/online`),
/// at least 1.
pub fn os_nr_nodes() -> usize {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| parse_node_list(&s))
        .unwrap_or(1)
        .max(1)
}

/// Parses a kernel cpulist/nodelist (`"0"`, `"0-3,5"`) into "highest + 1".
fn parse_node_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let hi = part.rsplit('-').next()?;
        let v: usize = hi.trim().parse().ok()?;
        max = Some(max.map_or(v, |m: usize| m.max(v)));
    }
    max.map(|m| m + 1)
}

/// Why a memcg operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemcgError {
    /// Memory cgroups are compiled out (feature `memcg` off) or disabled at
    /// run time: only the root exists.
    Disabled,
    /// The root has not come online yet.
    NoRoot,
    /// [`MemcgTree::online_root`] was called twice.
    RootAlreadyOnline,
    /// The memcg is offline (or being taken offline).
    Offline(MemcgId),
    /// The root cannot go offline.
    IsRoot,
    /// The memcg still has children; take them offline first.
    HasChildren(MemcgId),
    /// A node id beyond the configured node count.
    NodeOutOfRange {
        /// The node asked for.
        nid: usize,
        /// The configured node count.
        nr_nodes: usize,
    },
    /// Every memcg id is in use.
    IdSpaceExhausted,
    /// The memcg belongs to another tree.
    ForeignMemcg,
    /// Allocation failed while creating or growing shrinker_info; nothing changed
    /// that is visible (a failed growth keeps the old capacity).
    OutOfMemory,
}

impl fmt::Display for MemcgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("memory cgroups are disabled: only the root exists"),
            Self::NoRoot => f.write_str("the root memcg is not online yet"),
            Self::RootAlreadyOnline => f.write_str("the root memcg is already online"),
            Self::Offline(id) => write!(f, "{id} is offline"),
            Self::IsRoot => f.write_str("the root memcg cannot go offline"),
            Self::HasChildren(id) => write!(f, "{id} still has children"),
            Self::NodeOutOfRange { nid, nr_nodes } => {
                write!(f, "node {nid} out of range (tree has {nr_nodes} nodes)")
            }
            Self::IdSpaceExhausted => f.write_str("memcg id space exhausted"),
            Self::ForeignMemcg => f.write_str("memcg belongs to another tree"),
            Self::OutOfMemory => f.write_str("out of memory growing shrinker_info"),
        }
    }
}

impl std::error::Error for MemcgError {}

impl From<InfoError> for MemcgError {
    fn from(_: InfoError) -> Self {
        // The only InfoError reachable from this crate is allocation failure:
        // every id we pass is below the capacity we sized the info for.
        MemcgError::OutOfMemory
    }
}

const ONLINE: u8 = 0;
const OFFLINE: u8 = 1;

/// Lifecycle state of a memcg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemcgState {
    /// Visible to lookup and reclaim walks.
    Online,
    /// Taken offline: skipped by walks, its state moved (or moving) to the parent.
    Offline,
}

struct MemcgInner {
    id: MemcgId,
    tree: std::sync::Weak<Shared>,
    parent: Option<Memcg>,
    state: AtomicU8,
    infos: Box<[ShrinkerInfo]>,
    children: Mutex<Vec<Memcg>>,
}

impl Drop for MemcgInner {
    fn drop(&mut self) {
        // Dropping `parent` normally could release a whole chain of ancestors
        // recursively (one stack frame set per level). Unwind it in a loop:
        // each ancestor we were the last owner of is dropped with its own
        // parent already taken out.
        let mut next = self.parent.take();
        while let Some(p) = next {
            next = Arc::into_inner(p.0).and_then(|mut inner| inner.parent.take());
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Parents list their children strongly and children hold their parent:
        // break those cycles, or every online memcg would leak with the tree.
        // No writer can run (we are the last owner) and every linked memcg is
        // reachable from the root, so emptying the lists top-down is complete.
        // (Walking the id map instead would pin an epoch and, with a radix
        // tree that defers its frees, delay the release.)
        let mut stack: Vec<Memcg> = self.root.get().cloned().into_iter().collect();
        while let Some(m) = stack.pop() {
            stack.append(&mut m.0.children.lock());
        }
    }
}

/// A handle to one memory cgroup (cheap to clone; the memcg is released when
/// the last handle drops). Handles may outlive their tree; once the tree is
/// dropped, [`Memcg::children`] is empty.
#[derive(Clone)]
pub struct Memcg(Arc<MemcgInner>);

impl fmt::Debug for Memcg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memcg")
            .field("id", &self.0.id)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Memcg {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Memcg {}

impl Memcg {
    /// This memcg's id.
    pub fn id(&self) -> MemcgId {
        self.0.id
    }

    /// The parent, `None` for the root.
    pub fn parent(&self) -> Option<&Memcg> {
        self.0.parent.as_ref()
    }

    /// Whether this is the root (or the dummy root).
    pub fn is_root(&self) -> bool {
        self.0.parent.is_none()
    }

    /// Current lifecycle state.
    pub fn state(&self) -> MemcgState {
        // Acquire pairs with the Release store in `offline`: a walker that sees
        // Offline also sees everything the offliner did before.
        match self.0.state.load(Ordering::Acquire) {
            ONLINE => MemcgState::Online,
            _ => MemcgState::Offline,
        }
    }

    /// Whether the memcg is online.
    pub fn is_online(&self) -> bool {
        self.state() == MemcgState::Online
    }

    /// The shrinker_info of node `nid`.
    pub fn shrinker_info(&self, nid: usize) -> Result<&ShrinkerInfo, MemcgError> {
        self.0.infos.get(nid).ok_or(MemcgError::NodeOutOfRange {
            nid,
            nr_nodes: self.0.infos.len(),
        })
    }

    /// Number of nodes this memcg has shrinker_info for.
    pub fn nr_nodes(&self) -> usize {
        self.0.infos.len()
    }

    /// A snapshot of the current children.
    pub fn children(&self) -> Vec<Memcg> {
        self.0.children.lock().clone()
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn is_descendant_of(&self, ancestor: &Memcg) -> bool {
        let mut cur = Some(self);
        while let Some(m) = cur {
            if m == ancestor {
                return true;
            }
            cur = m.parent();
        }
        false
    }

    /// Heap bytes of this memcg's shrinker_info, summed over nodes.
    pub fn shrinker_info_bytes(&self) -> usize {
        self.0.infos.iter().map(ShrinkerInfo::bytes).sum()
    }

    /// An opaque identity of the owning tree, to refuse foreign handles.
    pub fn tree_token(&self) -> usize {
        self.0.tree.as_ptr() as usize
    }
}

/// Called on offline with `(child, parent)`, after the child is marked offline
/// and before it is unlinked from its parent. Used by list_lru to move items.
pub type ReparentHook = Arc<dyn Fn(&Memcg, &Memcg) + Send + Sync>;

/// Identifies a registered reparent hook, for [`MemcgTree::unregister_reparent_hook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HookId(u64);

struct WriterState {
    map_nr_max: usize,
    hooks: Vec<(HookId, ReparentHook)>,
    next_hook: u64,
    /// Cyclic id cursor: the next memcg id to try (wraps to 1 past `max_id`).
    next_id: u32,
}

struct Shared {
    config: Config,
    /// Mirror of `WriterState::map_nr_max` for lock-free readers; written
    /// (Release) only under the writer lock, after every memcg has grown.
    map_nr_max: AtomicUsize,
    /// Online memcgs by id (RCU radix tree: lookup takes no lock).
    ids: XArray<MemcgInner>,
    root: OnceLock<Memcg>,
    writer: Mutex<WriterState>,
}

/// A memory-cgroup hierarchy (see the crate docs). Cheap to clone: clones share
/// the same tree.
#[derive(Clone)]
pub struct MemcgTree {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemcgTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcgTree")
            .field("config", &self.shared.config)
            .field("online", &self.shared.ids.len())
            .finish()
    }
}

impl MemcgTree {
    /// Creates a tree without a root (boot path). `nr_nodes` of 0 is taken as 1.
    pub fn new(mut config: Config) -> Self {
        config.nr_nodes = config.nr_nodes.max(1);
        config.max_id = config.max_id.max(1);
        Self {
            shared: Arc::new(Shared {
                config,
                map_nr_max: AtomicUsize::new(0),
                ids: XArray::new(),
                root: OnceLock::new(),
                writer: Mutex::new(WriterState {
                    map_nr_max: 0,
                    hooks: Vec::new(),
                    next_hook: 0,
                    next_id: 1,
                }),
            }),
        }
    }

    fn check_own(&self, memcg: &Memcg) -> Result<(), MemcgError> {
        // The Weak keeps the tree's allocation (not the tree) alive, so the
        // address cannot be reused by another tree while a handle exists.
        if std::ptr::eq(memcg.0.tree.as_ptr(), Arc::as_ptr(&self.shared)) {
            Ok(())
        } else {
            Err(MemcgError::ForeignMemcg)
        }
    }

    /// Whether `memcg` belongs to this tree.
    pub fn owns(&self, memcg: &Memcg) -> bool {
        self.check_own(memcg).is_ok()
    }

    /// The configuration (node count normalized).
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Number of NUMA nodes.
    pub fn nr_nodes(&self) -> usize {
        self.shared.config.nr_nodes
    }

    /// Whether memcgs are compiled out or disabled at run time (only the root exists).
    pub fn is_disabled(&self) -> bool {
        !cfg!(feature = "memcg") || self.shared.config.disabled
    }

    /// Whether kernel-memory accounting is on (see [`Config::kmem`]).
    pub fn kmem_enabled(&self) -> bool {
        self.shared.config.kmem && !self.is_disabled()
    }

    /// The shrinker-id capacity every online memcg has (0 before any growth).
    pub fn map_nr_max(&self) -> usize {
        // Acquire pairs with the Release in `expand_all`: whoever sees the new
        // capacity also sees every online memcg grown to it.
        self.shared.map_nr_max.load(Ordering::Acquire)
    }

    /// The root, once online.
    pub fn root(&self) -> Option<&Memcg> {
        self.shared.root.get()
    }

    /// Builds a memcg and reserves its id. Called under the writer lock (`w`).
    fn new_memcg(
        &self,
        w: &mut WriterState,
        parent: Option<Memcg>,
    ) -> Result<(Memcg, u64), MemcgError> {
        let map_nr_max = w.map_nr_max;
        let mut infos = Vec::new();
        infos
            .try_reserve_exact(self.nr_nodes())
            .map_err(|_| MemcgError::OutOfMemory)?;
        for _ in 0..self.nr_nodes() {
            infos.push(ShrinkerInfo::new(map_nr_max)?);
        }
        // The radix tree picks the id at insertion, but the memcg must know its
        // id: reserve the id with an inert placeholder, then store the real one.
        let placeholder = Arc::new(MemcgInner {
            id: MemcgId(0),
            tree: Arc::downgrade(&self.shared),
            parent: None,
            state: AtomicU8::new(OFFLINE),
            infos: Box::new([]),
            children: Mutex::new(Vec::new()),
        });
        // Cyclic allocation with our own cursor (ids are only allocated under
        // the writer lock): lowest free id at or after the cursor, else the
        // lowest free id from 1. Keeping the cursor here rather than relying
        // on `XArray::alloc_cyclic` pins down the policy (tested in
        // tests/ids.rs): a freed id is not reused while any id after the last
        // one given out is still free, including right after `max_id`.
        let max_id = u64::from(self.shared.config.max_id);
        let cursor = u64::from(w.next_id);
        let ids = &self.shared.ids;
        let first = if cursor <= max_id {
            ids.alloc(placeholder.clone(), cursor..=max_id)
        } else {
            Err(AllocError::Full)
        };
        let id = match first {
            Err(AllocError::Full) if cursor > 1 => ids.alloc(placeholder, 1..=max_id),
            r => r,
        }
        .map_err(|e| match e {
            AllocError::Full | AllocError::EmptyRange => MemcgError::IdSpaceExhausted,
            _ => MemcgError::OutOfMemory,
        })?;
        // `id <= max_id <= u32::MAX`, so neither conversion truncates.
        w.next_id = (id as u32).wrapping_add(1).max(1);
        let inner = Arc::new(MemcgInner {
            id: MemcgId(id as u32),
            tree: Arc::downgrade(&self.shared),
            parent,
            state: AtomicU8::new(ONLINE),
            infos: infos.into_boxed_slice(),
            children: Mutex::new(Vec::new()),
        });
        Ok((Memcg(inner), id))
    }

    fn publish(&self, memcg: &Memcg, id: u64) {
        // Replaces the placeholder; lookups from now on find the real memcg.
        let _ = self.shared.ids.store(id, memcg.0.clone());
    }

    /// Brings the root online (or the dummy root when memcgs are compiled out
    /// or disabled), sized for every shrinker id recorded by `expand_all` so far.
    pub fn online_root(&self) -> Result<Memcg, MemcgError> {
        let mut w = self.shared.writer.lock();
        if self.shared.root.get().is_some() {
            return Err(MemcgError::RootAlreadyOnline);
        }
        let (root, id) = self.new_memcg(&mut w, None)?;
        self.publish(&root, id);
        let _ = self.shared.root.set(root.clone());
        Ok(root)
    }

    /// Creates an online child of `parent`, sized at the current capacity.
    pub fn create(&self, parent: &Memcg) -> Result<Memcg, MemcgError> {
        if self.is_disabled() {
            return Err(MemcgError::Disabled);
        }
        self.check_own(parent)?;
        let mut w = self.shared.writer.lock();
        if !parent.is_online() {
            return Err(MemcgError::Offline(parent.id()));
        }
        let (child, id) = self.new_memcg(&mut w, Some(parent.clone()))?;
        parent.0.children.lock().push(child.clone());
        self.publish(&child, id);
        drop(w);
        Ok(child)
    }

    /// Looks an online memcg up by id, without a lock.
    pub fn lookup(&self, id: MemcgId) -> Option<Memcg> {
        // A mismatching id is the placeholder of a memcg still being created.
        self.shared
            .ids
            .get(u64::from(id.0))
            .filter(|m| m.id == id)
            .map(Memcg)
    }

    /// Takes `memcg` offline: walks skip it from now on, reparent hooks run,
    /// and every `nr_deferred` counter moves to the parent.
    pub fn offline(&self, memcg: &Memcg) -> Result<(), MemcgError> {
        self.check_own(memcg)?;
        let parent = memcg.parent().ok_or(MemcgError::IsRoot)?.clone();
        let hooks: Vec<ReparentHook> = {
            let w = self.shared.writer.lock();
            if !memcg.is_online() {
                return Err(MemcgError::Offline(memcg.id()));
            }
            if !memcg.0.children.lock().is_empty() {
                return Err(MemcgError::HasChildren(memcg.id()));
            }
            // Release: pairs with the Acquire in `state()`.
            memcg.0.state.store(OFFLINE, Ordering::Release);
            self.shared.ids.erase(u64::from(memcg.id().0));
            w.hooks.iter().map(|(_, h)| h.clone()).collect()
        };
        for hook in &hooks {
            hook(memcg, &parent);
        }
        let mut result = Ok(());
        for (nid, info) in memcg.0.infos.iter().enumerate() {
            let into = &parent.0.infos[nid];
            if let Err(e) = info.reparent_into(into) {
                result = Err(e.into());
            }
        }
        let _w = self.shared.writer.lock();
        parent.0.children.lock().retain(|c| c != memcg);
        result
    }

    /// Grows every online memcg's shrinker_info (every node) to `new_nr_max`
    /// and records it as the capacity new memcgs get. Works before the root
    /// exists. On allocation failure, memcgs keep what they had (some may
    /// already be larger, which is harmless) and the recorded capacity is not
    /// raised.
    #[inline]
    pub fn expand_all(&self, new_nr_max: usize) -> Result<(), MemcgError> {
        // Fast path without the lock: capacity only grows, and the atomic is
        // published (Release) only after every memcg has grown.
        if new_nr_max <= self.shared.map_nr_max.load(Ordering::Acquire) {
            return Ok(());
        }
        self.expand_all_slow(new_nr_max)
    }

    #[cold]
    fn expand_all_slow(&self, new_nr_max: usize) -> Result<(), MemcgError> {
        let mut w = self.shared.writer.lock();
        if new_nr_max <= w.map_nr_max {
            return Ok(());
        }
        // Walk the hierarchy through the children lists rather than the id
        // radix tree: no epoch pin is taken under the writer lock, because
        // pinning may run deferred destructors of user data, which must not
        // run while we hold a lock they could want. The lists also include
        // memcgs still being taken offline, so they grow too.
        let mut stack: Vec<Memcg> = self.shared.root.get().cloned().into_iter().collect();
        while let Some(m) = stack.pop() {
            for info in m.0.infos.iter() {
                info.expand(new_nr_max)?;
            }
            stack.extend(m.children());
        }
        w.map_nr_max = new_nr_max;
        self.shared.map_nr_max.store(new_nr_max, Ordering::Release);
        Ok(())
    }

    /// Registers a hook run for every memcg taken offline.
    pub fn register_reparent_hook(&self, hook: ReparentHook) -> HookId {
        let mut w = self.shared.writer.lock();
        let id = HookId(w.next_hook);
        w.next_hook += 1;
        w.hooks.push((id, hook));
        id
    }

    /// Removes a hook; returns whether it was registered.
    pub fn unregister_reparent_hook(&self, id: HookId) -> bool {
        let mut w = self.shared.writer.lock();
        let before = w.hooks.len();
        w.hooks.retain(|(h, _)| *h != id);
        w.hooks.len() != before
    }

    /// Number of online memcgs (root included). Read without a lock, it may
    /// transiently count a memcg whose `create` has not returned yet.
    pub fn nr_online(&self) -> usize {
        self.shared.ids.len()
    }

    /// Pre-order iteration over the online memcgs of `from`'s subtree
    /// (`from` first). Each step snapshots one children list, so concurrent
    /// creates and offlines are tolerated: a memcg online for the whole
    /// iteration is visited exactly once.
    pub fn iter_subtree(&self, from: &Memcg) -> SubtreeIter {
        SubtreeIter {
            stack: vec![from.clone()],
        }
    }

    /// Pre-order iteration over every online memcg (empty before the root exists).
    pub fn iter(&self) -> SubtreeIter {
        SubtreeIter {
            stack: self.root().cloned().into_iter().collect(),
        }
    }

    /// Sum of shrinker_info heap bytes over every online memcg.
    pub fn shrinker_info_bytes(&self) -> usize {
        let guard = unishrink_xarray::pin();
        self.shared
            .ids
            .iter(0, &guard)
            .map(|(_, m)| m.infos.iter().map(ShrinkerInfo::bytes).sum::<usize>())
            .sum()
    }
}

/// Pre-order iterator over a subtree's online memcgs; see [`MemcgTree::iter_subtree`].
pub struct SubtreeIter {
    stack: Vec<Memcg>,
}

impl Iterator for SubtreeIter {
    type Item = Memcg;

    fn next(&mut self) -> Option<Memcg> {
        while let Some(m) = self.stack.pop() {
            // Offline memcgs are still descended into: during offline they are
            // childless by construction, so this only costs the check.
            let children = m.children();
            self.stack.extend(children.into_iter().rev());
            if m.is_online() {
                return Some(m);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_list_parsing() {
        assert_eq!(parse_node_list("0\n"), Some(1));
        assert_eq!(parse_node_list("0-3,5"), Some(6));
        assert_eq!(parse_node_list(""), None);
        assert_eq!(parse_node_list("x"), None);
    }

    /// The id radix tree frees its entries after an epoch grace period: flush
    /// until `done` holds (bounded; other test threads may be pinned briefly).
    #[cfg(feature = "memcg")]
    fn flush_until(done: impl Fn() -> bool) -> bool {
        for _ in 0..100_000 {
            if done() {
                return true;
            }
            unishrink_xarray::pin().flush();
            std::thread::yield_now();
        }
        done()
    }

    /// Dropping the tree releases every memcg (no parent/child `Arc` cycle).
    #[test]
    #[cfg(feature = "memcg")]
    fn tree_drop_releases_memcgs() {
        let tree = MemcgTree::new(Config {
            nr_nodes: 1,
            ..Config::default()
        });
        let root = tree.online_root().unwrap();
        let child = tree.create(&root).unwrap();
        let grandchild = tree.create(&child).unwrap();
        let weak: Vec<_> = [&root, &child, &grandchild]
            .iter()
            .map(|m| Arc::downgrade(&m.0))
            .collect();
        drop((root, child, grandchild));
        assert!(
            weak.iter().all(|w| w.upgrade().is_some()),
            "tree keeps them"
        );
        drop(tree);
        assert!(
            flush_until(|| weak.iter().all(|w| w.upgrade().is_none())),
            "memcg leaked after tree drop"
        );
    }

    /// A handle kept past the tree's drop still works and keeps its ancestors.
    #[test]
    #[cfg(feature = "memcg")]
    fn handle_outlives_tree() {
        let tree = MemcgTree::new(Config {
            nr_nodes: 2,
            ..Config::default()
        });
        let root = tree.online_root().unwrap();
        let child = tree.create(&root).unwrap();
        let weak_root = Arc::downgrade(&root.0);
        drop(root);
        drop(tree);
        assert!(weak_root.upgrade().is_some(), "child keeps its parent");
        assert!(child.parent().unwrap().children().is_empty());
        child
            .shrinker_info(1)
            .unwrap()
            .add_nr_deferred(0, 1)
            .unwrap_err();
        drop(child);
        assert!(flush_until(|| weak_root.upgrade().is_none()));
    }

    /// Releasing a deep chain does not recurse once per level (it would
    /// overflow this thread's small stack).
    #[test]
    #[cfg(feature = "memcg")]
    fn deep_chain_release_is_iterative() {
        const DEPTH: usize = 20_000;
        let h = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let tree = MemcgTree::new(Config {
                    nr_nodes: 1,
                    ..Config::default()
                });
                let mut cur = tree.online_root().unwrap();
                let weak_root = Arc::downgrade(&cur.0);
                for _ in 0..DEPTH {
                    cur = tree.create(&cur).unwrap();
                }
                drop(tree);
                drop(cur);
                flush_until(|| weak_root.upgrade().is_none())
            })
            .unwrap();
        assert!(h.join().unwrap(), "root not released");
    }
}
