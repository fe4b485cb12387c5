//! The registry: the IDR of shrinkers, their lifecycle, and `shrink_slab`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use unishrink_memcg::{Config as MemcgConfig, Memcg, MemcgError, MemcgTree};
use unishrink_shrinker_info::{DeferredSlot, InfoError, ShrinkerInfo};
use unishrink_xarray::{
    pin, AllocError, Guard, RetiredNodes, Unlinked, XArray, XaLock, LINE_SPACING,
};

use crate::refcount::ActiveRef;
use crate::scan::{
    panic_message, scan_pass, DeferredCounter, Pass, Quiet, Recorded, ScanParams, ScanTrace,
    Shrink, ShrinkControl, DEFAULT_SEEKS, DEF_PRIORITY, SHRINK_BATCH,
};
use crate::stats::{ShrinkerStats, StatsSnapshot};
use crate::sync::{fence, AtomicU8};

/// A shrinker's id: its index in the registry's IDR and its bit in every
/// shrinker_info.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShrinkerId(pub u32);

impl fmt::Display for ShrinkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Shrinker flags (the kernel's `SHRINKER_*`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShrinkerFlags(u8);

impl ShrinkerFlags {
    /// No flags: a global, node-agnostic shrinker.
    pub const NONE: Self = Self(0);
    /// Objects are charged to memcgs; called per memcg.
    pub const MEMCG_AWARE: Self = Self(1);
    /// Objects are kept per node; otherwise always called with node 0.
    pub const NUMA_AWARE: Self = Self(2);
    /// Called for non-root memcgs even when kmem accounting is off.
    pub const NONSLAB: Self = Self(4);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without the flags of `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl std::ops::BitOr for ShrinkerFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for ShrinkerFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        for (flag, name) in [
            (Self::MEMCG_AWARE, "MEMCG_AWARE"),
            (Self::NUMA_AWARE, "NUMA_AWARE"),
            (Self::NONSLAB, "NONSLAB"),
        ] {
            if self.contains(flag) {
                names.push(name);
            }
        }
        if names.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&names.join(" | "))
        }
    }
}

/// How a shrinker is configured: name, flags, seeks, batch.
///
/// The name is borrowed or owned ([`Cow`]): [`Registry::alloc`] copies it
/// into the shrinker, into the buffer of a reused one when it can, so a
/// `&str` name costs no allocation per registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShrinkerConfig<'a> {
    /// Name shown in debug views and traces (the kernel's `name-id`).
    pub name: Cow<'a, str>,
    /// Flags.
    pub flags: ShrinkerFlags,
    /// Cost to recreate an object (default 2; 0 = free half of freeable).
    pub seeks: u32,
    /// Objects per scan call (default 128; 0 = default).
    pub batch: u64,
}

impl<'a> ShrinkerConfig<'a> {
    /// A global shrinker with default seeks and batch.
    pub fn new(name: impl Into<Cow<'a, str>>) -> Self {
        Self {
            name: name.into(),
            flags: ShrinkerFlags::NONE,
            seeks: DEFAULT_SEEKS,
            batch: SHRINK_BATCH,
        }
    }
    /// Sets the flags.
    pub fn flags(mut self, flags: ShrinkerFlags) -> Self {
        self.flags = flags;
        self
    }
    /// Sets `seeks`.
    pub fn seeks(mut self, seeks: u32) -> Self {
        self.seeks = seeks;
        self
    }
    /// Sets `batch`.
    pub fn batch(mut self, batch: u64) -> Self {
        self.batch = batch;
        self
    }
}

/// Why a registry operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A memcg-level error: offline, foreign, node out of range, disabled…
    Memcg(MemcgError),
    /// Every shrinker id is in use.
    IdSpaceExhausted,
    /// Allocation failed while growing the IDR or shrinker_info; nothing changed.
    OutOfMemory,
    /// Priority above [`DEF_PRIORITY`].
    InvalidPriority(u32),
    /// No live shrinker has this id.
    NoSuchShrinker(ShrinkerId),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memcg(e) => e.fmt(f),
            Self::IdSpaceExhausted => f.write_str("shrinker id space exhausted"),
            Self::OutOfMemory => f.write_str("out of memory growing shrinker state"),
            Self::InvalidPriority(p) => {
                write!(f, "priority {p} above DEF_PRIORITY ({DEF_PRIORITY})")
            }
            Self::NoSuchShrinker(id) => write!(f, "no shrinker with id {id}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Memcg(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MemcgError> for Error {
    fn from(e: MemcgError) -> Self {
        match e {
            MemcgError::OutOfMemory => Error::OutOfMemory,
            e => Error::Memcg(e),
        }
    }
}

impl From<InfoError> for Error {
    fn from(e: InfoError) -> Self {
        match e {
            InfoError::OutOfMemory => Error::OutOfMemory,
            // Ids we pass are below map_nr_max by construction (invariant 1
            // of unishrink-memcg); reaching this is a bug in this crate.
            _ => Error::OutOfMemory,
        }
    }
}

/// A panic raised by a shrinker callback, caught by `shrink_slab`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackPanic {
    /// The shrinker whose callback panicked.
    pub id: ShrinkerId,
    /// Its name.
    pub name: String,
    /// The panic message.
    pub message: String,
}

/// What one `shrink_slab` call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShrinkReport {
    /// Objects freed.
    pub freed: u64,
    /// Shrinkers whose callbacks ran.
    pub visited: usize,
    /// Panics raised by callbacks (the walk went on).
    pub panics: Vec<CallbackPanic>,
}

/// Returned by [`RegisteredShrinker::free`].
pub enum FreeError {
    /// Called from inside one of this shrinker's own callbacks, where waiting
    /// for the callbacks to finish would deadlock. The handle is given back;
    /// dropping it there frees the shrinker asynchronously (the walk that
    /// holds the last reference unpublishes it).
    SelfFree(RegisteredShrinker),
}

impl fmt::Debug for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SelfFree(h) => f.debug_tuple("SelfFree").field(&h.id()).finish(),
        }
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SelfFree(h) => {
                write!(f, "shrinker {} freed from inside its own callback", h.id())
            }
        }
    }
}

impl std::error::Error for FreeError {}

/// The user's callbacks, inline in the shrinker when they fit in two words
/// (an `Arc` to a cache, a pair of captureless closures): a walk then reads
/// them from the shrinker's own cache lines instead of chasing a box, and a
/// registration allocates nothing for them. Larger ones are boxed, and the
/// `Box` is what is stored inline.
type ShrinkBox = smallbox::SmallBox<dyn Shrink, smallbox::space::S2>;

const ALLOCATED: u8 = 0;
const REGISTERED: u8 = 1;
const DYING: u8 = 2;

/// Field order is fixed (`repr(C)`) so that what a walk touches — state,
/// flags, id, scan parameters, the callbacks (inline when small) and the
/// active count — comes first: 64 bytes, one cache line or two. Not
/// `align(64)`: glibc serves
/// an over-aligned allocation through its slow `memalign` path, which cost
/// registration ~7% and drop_caches more than the rare split line did.
#[repr(C)]
pub(crate) struct ShrinkerInner {
    state: AtomicU8,
    /// Effective flags: MEMCG_AWARE is dropped when memcgs are off/disabled.
    flags: ShrinkerFlags,
    /// Set when the handle was dropped inside the shrinker's own callback:
    /// the walker that puts the last reference unpublishes it.
    free_on_last_put: AtomicBool,
    shrink_dropped: AtomicBool,
    /// Written once, under the writer lock, before any handle exists.
    id: AtomicU32,
    params: ScanParams,
    /// The user's callbacks. Dropped explicitly by the thread that finishes
    /// the free (see `drop_shrink`), never by the epoch collector, so user
    /// `Drop` code never runs inside someone else's `pin()` while that thread
    /// holds a registry or memcg lock it might want.
    shrink: UnsafeCell<ManuallyDrop<ShrinkBox>>,
    active: ActiveRef,
    pub(crate) stats: ShrinkerStats,
    name: String,
}

// SAFETY: every field but `shrink` is Sync. `shrink` is read (`&dyn Shrink`,
// itself Sync since `Shrink: Sync`) only by holders of an active reference
// or of the still-unregistered handle, and written exactly once by
// `drop_shrink`, which runs only after the active count reached its terminal
// zero with no handle left to take a reference (see `drop_shrink`).
unsafe impl Sync for ShrinkerInner {}

impl ShrinkerInner {
    fn new(config: ShrinkerConfig<'_>, flags: ShrinkerFlags, shrink: ShrinkBox) -> Self {
        ShrinkerInner {
            id: AtomicU32::new(u32::MAX),
            name: config.name.into_owned(),
            flags,
            params: ScanParams {
                seeks: config.seeks,
                batch: config.batch,
            },
            state: AtomicU8::new(ALLOCATED),
            active: ActiveRef::new(),
            free_on_last_put: AtomicBool::new(false),
            stats: ShrinkerStats::default(),
            shrink: UnsafeCell::new(ManuallyDrop::new(shrink)),
            shrink_dropped: AtomicBool::new(false),
        }
    }

    /// Turns a retired shell (from [`ShellCache`]) into a fresh allocated
    /// shrinker, keeping its allocation and its name's buffer.
    fn reinit(&mut self, config: ShrinkerConfig<'_>, flags: ShrinkerFlags, shrink: ShrinkBox) {
        debug_assert!(self.shrink_dropped.load(Ordering::Relaxed));
        // `&mut self`: relaxed stores suffice (publication is the IDR's job).
        self.id.store(u32::MAX, Ordering::Relaxed);
        self.name.clear();
        self.name.push_str(&config.name);
        self.flags = flags;
        self.params = ScanParams {
            seeks: config.seeks,
            batch: config.batch,
        };
        self.state.store(ALLOCATED, Ordering::Relaxed);
        self.active.reset();
        self.free_on_last_put.store(false, Ordering::Relaxed);
        self.stats.reset();
        // The previous callbacks were dropped (checked above), so overwriting
        // the `ManuallyDrop` leaks nothing.
        *self.shrink.get_mut() = ManuallyDrop::new(shrink);
        self.shrink_dropped.store(false, Ordering::Relaxed);
    }

    /// The callbacks. Callers hold an active reference (or the shrinker was
    /// never registered and the caller owns its only handle).
    fn shrink(&self) -> &dyn Shrink {
        // SAFETY: `drop_shrink` runs only once no reference can exist (see
        // there); until then the box is initialized and never mutated.
        unsafe { &***self.shrink.get() }
    }

    /// Drops the user's callbacks now, in the calling thread.
    ///
    /// # Safety
    /// The active count must have reached zero (terminal) and the caller must
    /// be the one finishing the free, so no `shrink()` borrow exists or can
    /// be created: walks only call `shrink()` between a successful `try_get`
    /// and its `put`, and `try_get` fails forever once the count is zero.
    unsafe fn drop_shrink(&self) {
        // A plain load and store, no locked swap: the contract already makes
        // this thread the only one here; the flag tells `Drop` it is done.
        if !self.shrink_dropped.load(Ordering::Acquire) {
            self.shrink_dropped.store(true, Ordering::Release);
            // SAFETY: per the contract above we have exclusive access, and
            // the flag makes this happen once.
            unsafe { ManuallyDrop::drop(&mut *self.shrink.get()) }
        }
    }

    fn id(&self) -> ShrinkerId {
        ShrinkerId(self.id.load(Ordering::Relaxed))
    }
    fn memcg_aware(&self) -> bool {
        self.flags.contains(ShrinkerFlags::MEMCG_AWARE)
    }
    fn numa_aware(&self) -> bool {
        self.flags.contains(ShrinkerFlags::NUMA_AWARE)
    }
    /// Whether this shrinker may legitimately have its bit in `memcg`'s map of `nid`.
    fn belongs(&self, memcg: &Memcg, nid: usize) -> bool {
        (self.memcg_aware() || memcg.is_root()) && (self.numa_aware() || nid == 0)
    }
}

impl Drop for ShrinkerInner {
    fn drop(&mut self) {
        // Normally already dropped by the freeing thread; this covers a
        // registry torn down with the shrinker never freed through a handle.
        if !*self.shrink_dropped.get_mut() {
            // SAFETY: `&mut self`: nobody else can observe the shrinker.
            unsafe { ManuallyDrop::drop(self.shrink.get_mut()) }
        }
    }
}

thread_local! {
    /// The shrinker whose callback this thread runs right now (0: none); the
    /// kernel would ask `current`. Used to refuse a self-free that would wait
    /// for itself.
    static IN_CALLBACK: Cell<usize> = const { Cell::new(0) };
    /// Callbacks further out, when a callback runs a nested walk. Touched only
    /// when nesting, so a plain visit costs one `Cell` swap in and out.
    static OUTER_CALLBACKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn in_own_callback(inner: &ShrinkerInner) -> bool {
    let me = inner as *const ShrinkerInner as usize;
    match IN_CALLBACK.with(Cell::get) {
        // Not in any callback (the common case): nothing further out either.
        0 => false,
        cur => cur == me || in_outer_callback(me),
    }
}

#[cold]
fn in_outer_callback(me: usize) -> bool {
    OUTER_CALLBACKS.with(|s| s.borrow().contains(&me))
}

/// Marks this thread as inside `inner`'s callbacks until dropped. Scopes nest
/// strictly (they live on the stack and unwinding drops them in order).
struct CallbackScope {
    outer: usize,
}

impl CallbackScope {
    #[inline]
    fn enter(inner: &ShrinkerInner) -> Self {
        let me = inner as *const ShrinkerInner as usize;
        let outer = IN_CALLBACK.with(|c| c.replace(me));
        if outer != 0 {
            Self::nest(outer);
        }
        Self { outer }
    }

    /// A callback runs a nested walk: remember the outer callback.
    #[cold]
    fn nest(outer: usize) {
        OUTER_CALLBACKS.with(|s| s.borrow_mut().push(outer));
    }

    #[cold]
    fn unnest() {
        OUTER_CALLBACKS.with(|s| s.borrow_mut().pop());
    }
}

impl Drop for CallbackScope {
    #[inline]
    fn drop(&mut self) {
        if self.outer != 0 {
            Self::unnest();
        }
        IN_CALLBACK.with(|c| c.set(self.outer));
    }
}

/// Laid out (`repr(C)`) so that what every walk reads — the flags, the tree
/// handle, the IDR's root — never shares a cache line with what every
/// registration writes — the IDR's writer mutex and count. Sharing one
/// made each register/free cycle and each visit of a concurrent walk miss
/// on it (the "registration while reclaiming" figure of the bench).
///
/// Aligned to 128 bytes so that the `Arc`'s reference counts, which every
/// handle's registry clone and drop writes, sit on lines of their own, not
/// on the one with the fields every walk reads.
#[repr(C, align(128))]
struct Shared {
    /// Whether walks update the per-shrinker counters.
    stats: bool,
    max_id: u32,
    tree: MemcgTree,
    #[cfg(feature = "fault-injection")]
    faults: crate::fault::Faults,
    /// Its root pointer and its writer state sit on separate cache lines.
    /// Its writer lock ([`XArray::lock`]) is the registry's: it serializes
    /// alloc, unpublish and root onlining, and no reclaim walk takes it, so
    /// registration never waits for reclaim.
    ///
    /// Its slots are a cache line apart ([`LINE_SPACING`]): registering and
    /// freeing a shrinker writes its slot twice, and with slots packed eight
    /// to a line that line is the one every walk reads to look up the
    /// neighboring ids, so each walk would move it between the CPUs (the
    /// bench's "registration while reclaiming"). 64 bytes per id.
    idr: XArray<ShrinkerInner, IdrState, LINE_SPACING>,
}

/// What the IDR's writer lock guards besides the tree.
#[derive(Default)]
struct IdrState {
    shells: ShellCache,
    /// A counted [`Registry`] held while the IDR is not empty, i.e. while any
    /// shrinker handle exists. Handles then need no count of their own: they
    /// hold an uncounted view (see [`Registry::uncounted`]), which saves two
    /// locked operations per alloc/free cycle. It is a reference cycle by
    /// design, broken when the last shrinker leaves the IDR.
    keepalive: Option<Registry>,
}

impl IdrState {
    /// After a removal: the keepalive to drop (outside the lock, and as the
    /// very last thing, since it may free the registry) if the IDR is empty.
    fn release_if_empty(&mut self, empty: bool) -> Option<Registry> {
        if empty {
            self.keepalive.take()
        } else {
            None
        }
    }
}

/// Retired shrinkers whose memory the next `alloc`s reuse.
///
/// Why: a freed shrinker's memory may only be reused or freed after a grace
/// period, and crossbeam-epoch runs deferred functions on whichever thread
/// collects — under reclaim, the walker. Deferring one free per shrinker
/// made every free a cross-thread free: the registering thread's allocator
/// cache never got its chunks back, and even a deferred reference-count
/// decrement pulled each shrinker's cache line over to the walker and back.
/// In the bench that halved the registration rate while reclaim ran. The
/// kernel keeps `struct shrinker` in a slab cache; this is ours.
///
/// How: `free` unlinks the shrinker from the IDR
/// ([`unishrink_xarray::XaLock::take`]) and parks its memory (a *shell*)
/// here, in the open *batch*. Every [`ShellCache::BATCH`] shells the batch is
/// sealed with one deferred function of crossbeam-epoch that sets the
/// batch's flag; deferred after every unlink of the batch, its grace period
/// covers them all, so once the flag is set no reader can still hold any of
/// its shells, and `alloc` rewrites the oldest one in place, name buffer
/// included. The walker thus runs one flag store per batch and never touches
/// a shell, and a free pins only when it seals a batch (`take` needs no
/// guard), so registration meets the epoch collector once per 256 frees.
/// (A batch that never fills is never reused; its shells go with the
/// registry.)
///
/// Guarded by the IDR's writer lock (the `XArray`'s state), so it costs no
/// lock of its own. FIFO: the oldest shell is the likeliest to be ready.
/// At most [`ShellCache::CAP`] shells; beyond that the oldest goes, through a
/// deferred drop if its grace period may not be over.
#[derive(Default)]
struct ShellCache {
    /// Parked shells, oldest first, each with the number of its batch.
    queue: VecDeque<(Arc<ShrinkerInner>, u64)>,
    /// Sealed batches not yet seen done, oldest first, with their flags.
    in_flight: VecDeque<(u64, Arc<AtomicBool>)>,
    /// Every batch numbered below this one is done.
    done_below: u64,
    /// The open batch, and how many shells joined it.
    open: u64,
    open_len: usize,
    /// Flags of done batches, for the next seals. A fresh flag per batch
    /// would be freed by whichever thread drops the deferred function's
    /// clone last, usually the walker: a cross-thread free per batch.
    spare_flags: Vec<Arc<AtomicBool>>,
}

impl ShellCache {
    /// Enough to cover a grace period even when the registering thread is
    /// the only one pinning (each seal's flush attempts an epoch advance,
    /// and a deferred function needs two), plus a filling batch: four
    /// batches. Measured with `examples/register_profile`. A shell is ~120
    /// bytes plus its name, so at most ~150 KiB stay parked.
    const CAP: usize = 1024;
    /// Shells behind one deferred function. Each seal flushes the thread's
    /// bag, which allocates a ~2 KiB sealed bag that the collecting thread
    /// (the walker, under reclaim) frees: past the allocator's thread cache,
    /// so it costs both threads. 64 shells per batch cost the registration
    /// rate under reclaim ~10% more than 256 (`register_profile`).
    const BATCH: usize = 256;
    /// Done batches' flags kept for reuse.
    const SPARE_FLAGS: usize = 8;

    /// Moves `done_below` past the batches whose flag is set, in order (they
    /// may complete out of order; this only looks at the oldest).
    fn advance(&mut self) {
        while let Some((n, flag)) = self.in_flight.front() {
            // Acquire pairs with the deferred function's Release store, which
            // runs after every reader of the batch's shells unpinned.
            if !flag.load(Ordering::Acquire) {
                break;
            }
            self.done_below = n + 1;
            let (_, flag) = self.in_flight.pop_front().expect("just seen");
            // Its deferred function has stored to it and will not again
            // (it may still hold its clone for a moment; that only drops it).
            if self.spare_flags.len() < Self::SPARE_FLAGS {
                self.spare_flags.push(flag);
            }
        }
    }

    /// Parks `s`, just unlinked from the IDR under the lock this cache is
    /// guarded by. Returns what to do once the lock is released: no pin is
    /// taken under the lock, and none at all unless a batch is sealed.
    fn park(&mut self, s: Arc<ShrinkerInner>) -> AfterPark {
        self.queue.push_back((s, self.open));
        self.open_len += 1;
        let mut after = AfterPark::default();
        if self.open_len >= Self::BATCH {
            // The flag is registered now; its setter is deferred by the
            // caller after the unlock, which still follows every unlink of
            // the batch (they all happened under this lock, before).
            let flag = match self.spare_flags.pop() {
                Some(flag) => {
                    // Ordered before the deferred store by the defer itself.
                    flag.store(false, Ordering::Relaxed);
                    flag
                }
                None => Arc::new(AtomicBool::new(false)),
            };
            self.in_flight.push_back((self.open, flag.clone()));
            self.open += 1;
            self.open_len = 0;
            after.seal = Some(flag);
        }
        if self.queue.len() > Self::CAP {
            let (oldest, batch) = self.queue.pop_front().expect("over capacity");
            if batch < self.done_below {
                after.drop = Some(oldest);
            } else {
                // Readers may still hold it: the caller defers its drop.
                after.defer_drop = Some(oldest);
            }
        }
        after
    }

    /// The oldest shell if its batch is done: nobody else holds it.
    fn take_ready(&mut self) -> Option<ReadyShell> {
        let &(_, batch) = self.queue.front()?;
        if batch >= self.done_below {
            self.advance();
            if batch >= self.done_below {
                return None;
            }
        }
        self.queue.pop_front().map(|(s, _)| ReadyShell(s))
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

/// What [`ShellCache::park`] leaves to do once the lock is released.
#[derive(Default)]
struct AfterPark {
    /// A shell evicted after its grace period: free it.
    drop: Option<Arc<ShrinkerInner>>,
    /// A shell evicted while its grace period may still run: drop it
    /// through a deferred function.
    defer_drop: Option<Arc<ShrinkerInner>>,
    /// A batch was sealed: defer the setting of its flag, then flush, so
    /// that the function reaches the collector now (with one deferred
    /// function per batch, the thread's bag would otherwise take 64 batches
    /// to fill).
    seal: Option<Arc<AtomicBool>>,
}

impl AfterPark {
    /// Does it, pinning only if something must be deferred. `nodes`: IDR
    /// nodes the unlink emptied (rarely any).
    fn run(self, nodes: RetiredNodes) {
        let AfterPark {
            drop: evicted,
            defer_drop,
            seal,
        } = self;
        if !nodes.is_empty() || defer_drop.is_some() || seal.is_some() {
            let guard = pin();
            nodes.defer(&guard);
            if let Some(shell) = defer_drop {
                guard.defer(move || drop(shell));
            }
            if let Some(flag) = seal {
                // After every unlink of the batch: after its grace period
                // none of its shells is referenced by a reader.
                guard.defer(move || flag.store(true, Ordering::Release));
                guard.flush();
            }
        } else {
            drop(nodes);
        }
        drop(evicted);
    }
}

/// A parked shell nobody else can reach: it is in no IDR, its batch's grace
/// period is over, its only strong count is ours (`retire` moved the IDR's
/// into the cache; handles hold none), and no `Weak` to a `ShrinkerInner` is
/// ever made.
struct ReadyShell(Arc<ShrinkerInner>);

impl ReadyShell {
    fn reinit(
        self,
        config: ShrinkerConfig<'_>,
        flags: ShrinkerFlags,
        shrink: ShrinkBox,
    ) -> Arc<ShrinkerInner> {
        // SAFETY: unique (see the type's doc; `advance` synchronized with
        // the end of the grace period), so a `&mut` to the contents is
        // exclusive. The pointer
        // comes from the Arc's own allocation, as `Arc::get_mut`'s does.
        let inner = unsafe { &mut *Arc::as_ptr(&self.0).cast_mut() };
        inner.reinit(config, flags, shrink);
        self.0
    }
}

/// A handle's pointer to its shrinker, holding no reference count: the
/// IDR's reference keeps the shrinker alive from `alloc` until the handle
/// retires it, and nothing else takes it out of the IDR while the handle
/// lives (a walk unpublishes only a shrinker whose handle was dropped inside
/// its own callback, i.e. is gone). A count of its own would cost every
/// registration two locked operations, an increment at `alloc` and a
/// decrement at `free`.
#[derive(Clone, Copy)]
struct HandleRef(std::ptr::NonNull<ShrinkerInner>);

// SAFETY: a shared pointer to a `ShrinkerInner`, which is `Send + Sync`
// (atomics, and callbacks that are `Send + Sync`); see the type's docs for
// why it stays valid.
unsafe impl Send for HandleRef {}
// SAFETY: as above.
unsafe impl Sync for HandleRef {}

impl HandleRef {
    fn new(inner: &Arc<ShrinkerInner>) -> Self {
        Self(std::ptr::NonNull::from(&**inner))
    }

    fn get(&self) -> &ShrinkerInner {
        // SAFETY: the IDR holds a strong reference while the handle (or the
        // `Retire` it turned into) exists; see the type's docs. Checked by
        // tests/lifecycle.rs and shell_reuse.rs under AddressSanitizer.
        unsafe { self.0.as_ref() }
    }
}

/// Retires a dead shrinker when dropped: after its callbacks are dropped, or
/// if dropping them panics (the shrinker is unpublished all the same).
struct Retire<'r> {
    registry: &'r Registry,
    inner: Option<HandleRef>,
}

impl<'r> Retire<'r> {
    fn new(registry: &'r Registry, inner: HandleRef) -> Self {
        Self {
            registry,
            inner: Some(inner),
        }
    }
    fn inner(&self) -> &ShrinkerInner {
        self.inner.as_ref().expect("present until dropped").get()
    }
}

impl Drop for Retire<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.inner.take() {
            self.registry.retire(s);
        }
    }
}

/// The shrinker registry: one IDR of shrinkers over one memcg tree, and the
/// single `shrink_slab`. Cheap to clone (clones share the registry).
///
/// It lives as long as a clone or a shrinker handle does: handles carry no
/// count of their own, the registry holds itself while any shrinker is
/// allocated. (So a handle passed to `mem::forget` keeps it alive for good.)
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("shrinkers", &self.shared.idr.len())
            .field("memcgs", &self.shared.tree)
            .finish()
    }
}

/// A non-owning handle to a [`Registry`], for callbacks and hooks that must
/// not keep the registry alive (which would make a reference cycle).
#[derive(Clone, Debug)]
pub struct WeakRegistry(Weak<Shared>);

impl WeakRegistry {
    /// The registry, if it still exists.
    pub fn upgrade(&self) -> Option<Registry> {
        self.0.upgrade().map(|shared| Registry { shared })
    }
}

/// Default upper bound of shrinker ids (the kernel's IDR takes any int).
pub const DEFAULT_MAX_SHRINKER_ID: u32 = (1 << 24) - 1;

/// Registry-wide settings; see [`Registry::with_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Shrinker ids are limited to `0..=max_shrinker_id`.
    pub max_shrinker_id: u32,
    /// Whether walks keep the per-shrinker counters of
    /// [`RegisteredShrinker::stats`] (default on). They cost two
    /// uncontended atomic adds per visited shrinker (the `visit_overhead`
    /// table of `cargo xtask bench` shows how much); the kernel keeps none.
    pub stats: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            max_shrinker_id: DEFAULT_MAX_SHRINKER_ID,
            stats: true,
        }
    }
}

impl Registry {
    /// A registry over a new memcg tree. The root is not online yet (boot
    /// path): shrinkers can be allocated and registered right away, and
    /// [`Registry::online_root`] brings the root up sized for all of them.
    pub fn new(config: MemcgConfig) -> Self {
        Self::with_max_id(config, DEFAULT_MAX_SHRINKER_ID)
    }

    /// Like [`Registry::new`], with shrinker ids limited to `0..=max_id`.
    pub fn with_max_id(config: MemcgConfig, max_id: u32) -> Self {
        Self::with_options(
            config,
            RegistryOptions {
                max_shrinker_id: max_id,
                ..RegistryOptions::default()
            },
        )
    }

    /// Like [`Registry::new`], with explicit [`RegistryOptions`].
    pub fn with_options(config: MemcgConfig, options: RegistryOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                tree: MemcgTree::new(config),
                idr: XArray::with_state(IdrState::default()),
                max_id: options.max_shrinker_id,
                stats: options.stats,
                #[cfg(feature = "fault-injection")]
                faults: crate::fault::Faults::default(),
            }),
        }
    }

    /// The armed faults of this registry (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &crate::fault::Faults {
        &self.shared.faults
    }

    /// A non-owning handle to this registry.
    pub fn downgrade(&self) -> WeakRegistry {
        WeakRegistry(Arc::downgrade(&self.shared))
    }

    /// The memcg tree.
    pub fn memcgs(&self) -> &MemcgTree {
        &self.shared.tree
    }

    /// The root memcg, once online.
    pub fn root(&self) -> Option<Memcg> {
        self.shared.tree.root().cloned()
    }

    /// Brings the root (or the dummy root) online, sized for every shrinker
    /// id given out so far, with the sticky bits of every global shrinker set.
    pub fn online_root(&self) -> Result<Memcg, Error> {
        // Pin before locking (see `XArray::lock`); the lock keeps allocations
        // out while we look for global shrinkers.
        let guard = pin();
        let _idr = self.shared.idr.lock();
        let root = self.shared.tree.online_root()?;
        for (_, s) in self.shared.idr.iter(0, &guard) {
            if !s.memcg_aware() && s.state.load(Ordering::Acquire) != DYING {
                Self::set_sticky(&root, s)?;
            }
        }
        Ok(root)
    }

    /// Creates a child memcg (an error when memcgs are compiled out or disabled).
    pub fn create_memcg(&self, parent: &Memcg) -> Result<Memcg, Error> {
        Ok(self.shared.tree.create(parent)?)
    }

    /// Takes a memcg offline: walks skip it, its deferred work moves to the parent.
    pub fn offline_memcg(&self, memcg: &Memcg) -> Result<(), Error> {
        Ok(self.shared.tree.offline(memcg)?)
    }

    fn set_sticky(root: &Memcg, s: &ShrinkerInner) -> Result<(), Error> {
        let id = s.id().0 as usize;
        let nodes = if s.numa_aware() { root.nr_nodes() } else { 1 };
        for nid in 0..nodes {
            let info = root.shrinker_info(nid)?;
            // A reused id usually still has the bit (walks clear a dead
            // owner's bit only lazily). Skipping the set is safe: `s` is
            // already in the IDR, so a walk clearing the bit for the previous
            // owner rechecks after its fence, finds `s`, and restores it.
            if !info.test_bit(id) {
                info.set_bit(id)?;
            }
        }
        Ok(())
    }

    /// Allocates a shrinker: gives it the lowest free id and grows every
    /// memcg's shrinker_info if the id is beyond capacity. It is not called
    /// until [`AllocatedShrinker::register`]. On failure the id is released.
    pub fn alloc<S: Shrink>(
        &self,
        config: ShrinkerConfig<'_>,
        shrink: S,
    ) -> Result<AllocatedShrinker, Error> {
        let mut flags = config.flags;
        if self.shared.tree.is_disabled() {
            // As in the kernel: without memcgs a memcg-aware shrinker is global.
            flags = flags.without(ShrinkerFlags::MEMCG_AWARE);
        }
        // Larger callbacks go into a `Box` first, itself stored inline: a
        // `Box` frees its memory even when the callbacks' `Drop` panics, which
        // a heap-backed `SmallBox` would leak.
        let fits = std::mem::size_of::<S>() <= std::mem::size_of::<smallbox::space::S2>()
            && std::mem::align_of::<S>() <= std::mem::align_of::<smallbox::space::S2>();
        let shrink: ShrinkBox = if fits {
            smallbox::smallbox!(shrink)
        } else {
            smallbox::smallbox!(Box::new(shrink))
        };
        // The IDR's own lock is the registry's writer lock: one lock, not a
        // registry mutex wrapped around the tree's. It also guards the cache
        // of retired shrinkers whose memory is reused here.
        let mut idr = self.shared.idr.lock();
        let inner = match idr.state().shells.take_ready() {
            Some(shell) => shell.reinit(config, flags, shrink),
            None => Arc::new(ShrinkerInner::new(config, flags, shrink)),
        };
        #[cfg(feature = "fault-injection")]
        self.shared.faults.idr_alloc()?;
        let handle = HandleRef::new(&inner);
        let id = idr
            .alloc(inner, 0..=u64::from(self.shared.max_id))
            .map_err(|e| match e {
                AllocError::Full | AllocError::EmptyRange => Error::IdSpaceExhausted,
                _ => Error::OutOfMemory,
            })?;
        // The IDR holds it now, and we hold the IDR's lock.
        let inner = handle.get();
        inner.id.store(id as u32, Ordering::Relaxed);
        #[cfg(feature = "fault-injection")]
        let injected = self
            .shared
            .faults
            .info_expand(&self.shared.tree, id as usize + 1);
        #[cfg(not(feature = "fault-injection"))]
        let injected = Ok(());
        let grown = injected
            .and_then(|()| {
                self.shared
                    .tree
                    .expand_all(id as usize + 1)
                    .map_err(Error::from)
            })
            .and_then(|()| {
                // The sticky root bit is set now, while failure can still be
                // reported; walkers skip a shrinker that is only allocated.
                match self.shared.tree.root() {
                    Some(root) if !inner.memcg_aware() => Self::set_sticky(root, inner),
                    _ => Ok(()),
                }
            });
        if let Err(e) = grown {
            // Pin outside the lock (see `XArray::lock`). Meanwhile the id stays
            // taken by a shrinker that walks skip (it is only allocated).
            drop(idr);
            let guard = pin();
            let mut idr = self.shared.idr.lock();
            idr.remove(id, &guard);
            // Ours was the only entry, so no keepalive was taken for it (that
            // happens below, on success); this finds none to release.
            debug_assert!(!idr.is_empty() || idr.state().keepalive.is_none());
            return Err(e);
        }
        let st = idr.state();
        if st.keepalive.is_none() {
            st.keepalive = Some(self.clone());
        }
        drop(idr);
        Ok(AllocatedShrinker {
            inner: Some(handle),
            registry: self.uncounted(),
        })
    }

    /// Marks `id` as possibly having objects in `(memcg, nid)` — what a cache
    /// calls when it adds the first object there. Issues a full barrier before
    /// setting the bit (pairs with the SHRINK_EMPTY clear-and-recount).
    /// Global shrinkers are always reachable from the root (sticky bit), so
    /// this is a no-op for them; NUMA-unaware shrinkers use node 0.
    pub fn set_shrinker_bit(&self, memcg: &Memcg, nid: usize, id: ShrinkerId) -> Result<(), Error> {
        self.check_memcg(memcg, nid)?;
        let guard = pin();
        let s = self
            .shared
            .idr
            .load(u64::from(id.0), &guard)
            .filter(|s| s.state.load(Ordering::Acquire) != DYING)
            .ok_or(Error::NoSuchShrinker(id))?;
        if !s.memcg_aware() {
            return Ok(());
        }
        if !memcg.is_online() {
            return Err(Error::Memcg(MemcgError::Offline(memcg.id())));
        }
        let nid = if s.numa_aware() { nid } else { 0 };
        #[cfg(feature = "fault-injection")]
        self.shared.faults.unit_alloc()?;
        memcg.shrinker_info(nid)?.set_bit(id.0 as usize)?;
        Ok(())
    }

    fn check_memcg(&self, memcg: &Memcg, nid: usize) -> Result<(), Error> {
        if !self.shared.tree.owns(memcg) {
            return Err(Error::Memcg(MemcgError::ForeignMemcg));
        }
        if nid >= memcg.nr_nodes() {
            return Err(Error::Memcg(MemcgError::NodeOutOfRange {
                nid,
                nr_nodes: memcg.nr_nodes(),
            }));
        }
        Ok(())
    }

    /// The one reclaim walk: calls every shrinker whose bit is set in
    /// `memcg`'s shrinker_info for `nid`, at `priority` (12 gentle … 0 all).
    /// Serves the root (global shrinkers have sticky bits there) and every
    /// other memcg alike. Takes no lock: ids are looked up in the RCU IDR, a
    /// reference is taken with `try_get`, and the callbacks run outside the
    /// read section. Offline memcgs are skipped (nothing freed).
    pub fn shrink_slab(
        &self,
        memcg: &Memcg,
        nid: usize,
        priority: u32,
    ) -> Result<ShrinkReport, Error> {
        if priority > DEF_PRIORITY {
            return Err(Error::InvalidPriority(priority));
        }
        self.check_memcg(memcg, nid)?;
        let mut report = ShrinkReport::default();
        if !memcg.is_online() {
            return Ok(report);
        }
        let info = memcg.shrinker_info(nid)?;
        let mut bits = info.iter_set_bits();
        // A map without set bits (most memcgs, most of the time: a reclaim
        // pass over every memcg of a machine) needs no pin and no IDR: the
        // bitmap lives as long as `info`, whose array `bits` holds.
        if !bits.has_next() {
            return Ok(report);
        }
        let kmem = self.shared.tree.kmem_enabled();
        // Asked once per walk; a subscriber installed mid-walk sees the next one.
        let tracing = crate::trace::enabled();
        // A pin per id, held only for the IDR lookup and `try_get`, then
        // dropped before the callbacks run: the kernel's rcu_read_lock around
        // idr_find + shrinker_try_get. (One pin for the whole walk, dropped
        // and retaken around each visit, costs a locked operation more per
        // walk: the retake after the last visit.) The bitmap needs no pin:
        // `bits` holds its array.
        let (mut visited, mut freed) = (0usize, 0u64);
        while let Some(id) = bits.next() {
            let guard = pin();
            // SAFETY: `guard` comes from `pin()`, the default collector.
            let Some(s) = (unsafe { self.shared.idr.load_unchecked(id as u64, &guard) }) else {
                self.clear_and_recheck(info, memcg, nid, id, &guard);
                continue;
            };
            match s.state.load(Ordering::Acquire) {
                // Objects may be added before registration: keep the bit.
                ALLOCATED => continue,
                DYING => {
                    self.clear_and_recheck(info, memcg, nid, id, &guard);
                    continue;
                }
                _ => {}
            }
            if !s.belongs(memcg, nid) {
                // Left over from a previous owner of this id.
                self.clear_and_recheck(info, memcg, nid, id, &guard);
                continue;
            }
            if s.memcg_aware()
                && !memcg.is_root()
                && !kmem
                && !s.flags.contains(ShrinkerFlags::NONSLAB)
            {
                continue;
            }
            if !s.active.try_get() {
                self.clear_and_recheck(info, memcg, nid, id, &guard);
                continue;
            }
            let ptr: *const ShrinkerInner = s;
            drop(guard);
            let deferred = bits.deferred_slot(id);
            // SAFETY: try_get succeeded, so the active count is > 0 until
            // `visit` puts it back. A shrinker is erased from the IDR (and its
            // memory handed to the epoch collector) only after its count
            // reached zero (`RegisteredShrinker::free` waits for it; the
            // async path unpublishes at the last put), so the IDR's strong
            // reference keeps `*ptr` alive while we hold the count, although
            // we are not pinned. Checked by tests/lifecycle.rs and the loom
            // model tests/loom_lifecycle.rs, and under ASan by tests/stress.rs.
            let visit = Visit {
                reg: self,
                s: unsafe { &*ptr },
            };
            let target = Target {
                memcg,
                nid,
                priority,
                tracing,
            };
            // Returns what it freed rather than updating `report`: the
            // running totals then stay in registers.
            freed = freed.saturating_add(self.shrink_one(
                visit.s,
                info,
                &deferred,
                target,
                &mut report,
            ));
            drop(visit);
            visited += 1;
        }
        report.visited = visited;
        report.freed = freed;
        Ok(report)
    }

    /// Runs `do_shrink_slab` for one referenced shrinker, with the
    /// SHRINK_EMPTY protocol for non-sticky bits.
    #[inline(always)]
    fn shrink_one(
        &self,
        s: &ShrinkerInner,
        info: &ShrinkerInfo,
        deferred: &DeferredSlot<'_>,
        t: Target<'_>,
        report: &mut ShrinkReport,
    ) -> u64 {
        let id = s.id().0 as usize;
        let first = self.run(s, deferred, t, report);
        match first {
            Some(freed) => freed,
            None if !s.memcg_aware() => 0, // global: the root bit is sticky
            None => {
                info.clear_bit(id);
                // Pairs with the fence in set_bit: either the recount below
                // sees the object a racing add published, or that add's
                // set_bit comes after our clear.
                fence(Ordering::SeqCst);
                match self.run(s, deferred, t, report) {
                    None => 0,
                    Some(freed) => {
                        s.stats.record_bit_restore();
                        // Cannot fail: the unit exists (we just cleared a bit in it).
                        let _ = info.set_bit(id);
                        freed
                    }
                }
            }
        }
    }

    /// One `do_shrink_slab`; `None` means SHRINK_EMPTY.
    #[inline(always)]
    fn run(
        &self,
        s: &ShrinkerInner,
        deferred: &DeferredSlot<'_>,
        t: Target<'_>,
        report: &mut ShrinkReport,
    ) -> Option<u64> {
        let Target {
            memcg,
            nid,
            priority,
            tracing,
        } = t;
        let mut sc = ShrinkControl {
            memcg,
            nid,
            nr_to_scan: 0,
            nr_scanned: 0,
        };
        if !tracing && !self.shared.stats {
            // Nobody watches: no figures to keep (see `Recorder`).
            let _scope = CallbackScope::enter(s);
            return match scan_pass(
                s.shrink(),
                s.params,
                &mut sc,
                priority,
                deferred,
                &mut Quiet,
            ) {
                Pass::Empty => None,
                Pass::Done(freed) => Some(freed),
                Pass::Panicked(freed, payload) => {
                    self.report_panic(s, &*payload, report);
                    Some(freed)
                }
            };
        }
        let mut trace = ScanTrace::default();
        let pass = {
            let _scope = CallbackScope::enter(s);
            let mut rec = Recorded {
                trace: &mut trace,
                tracing,
            };
            // Names the shrinker on the start event emitted inside
            // the pass (which does not know it).
            let mut pass =
                || scan_pass(s.shrink(), s.params, &mut sc, priority, deferred, &mut rec);
            // A branch, not an `Option<EnteredSpan>`: the untraced visit then
            // carries no span to drop.
            if tracing {
                let _span = tracing::trace_span!(
                    target: crate::trace::TARGET,
                    "do_shrink_slab",
                    shrinker = %s.name,
                    shrinker_id = s.id().0
                )
                .entered();
                pass()
            } else {
                pass()
            }
        };
        match pass {
            Pass::Empty => {
                if self.shared.stats {
                    s.stats.record_empty();
                }
                if tracing {
                    crate::trace::empty(s.id(), &s.name, memcg, nid, priority);
                }
                return None;
            }
            Pass::Done(_) => {}
            Pass::Panicked(_, payload) => self.report_panic(s, &*payload, report),
        }
        if self.shared.stats {
            s.stats.record(&trace);
        }
        if tracing {
            crate::trace::scanned(s.id(), &s.name, memcg, nid, priority, &trace);
        }
        Some(trace.freed)
    }

    #[cold]
    fn report_panic(
        &self,
        s: &ShrinkerInner,
        payload: &(dyn std::any::Any + Send),
        report: &mut ShrinkReport,
    ) {
        report.panics.push(CallbackPanic {
            id: s.id(),
            name: s.name.clone(),
            message: panic_message(payload),
        });
        s.stats.record_panic();
    }

    /// A bit whose shrinker is gone (or not ours): clear it, then look again
    /// after a full barrier and restore it if a live owner appeared — the same
    /// clear-then-recheck that SHRINK_EMPTY uses, so a racing registration or
    /// set_shrinker_bit is never lost. Uses the walk's guard.
    fn clear_and_recheck(
        &self,
        info: &ShrinkerInfo,
        memcg: &Memcg,
        nid: usize,
        id: usize,
        guard: &Guard,
    ) {
        info.clear_bit(id);
        fence(Ordering::SeqCst);
        if let Some(s) = self.shared.idr.load(id as u64, guard) {
            if s.state.load(Ordering::Acquire) != DYING && s.belongs(memcg, nid) {
                let _ = info.set_bit(id);
            }
        }
    }

    #[inline]
    fn put(&self, s: &ShrinkerInner) {
        if s.active.put() && s.free_on_last_put.load(Ordering::Acquire) {
            // The handle is gone, so once unpublished `s` lives only as long
            // as the IDR's deferred drop waits: this pin keeps it alive
            // through `drop_shrink` (the walk is unpinned around callbacks).
            let _alive = pin();
            self.unpublish(s);
            // SAFETY: the count just reached zero and the handle is gone
            // (it was dropped inside a callback, asking us to finish).
            unsafe { s.drop_shrink() };
        }
    }

    /// Removes `s` from the IDR. Its memory is freed after a grace period
    /// (readers may still hold the pointer they loaded).
    ///
    /// May free the registry (see [`IdrState::keepalive`]): callers must not
    /// touch `self` afterwards unless they hold a counted `Registry`.
    fn unpublish(&self, s: &ShrinkerInner) {
        let mut idr = self.shared.idr.lock();
        let taken = Self::take_ours(&mut idr, s);
        drop(idr);
        if let Some((unlinked, last)) = taken {
            // Pinned after the unlock (see `XArray::lock`); the drop is still
            // deferred after the unlink.
            unlinked.defer_drop(&pin());
            drop(last); // the very last touch of the registry
        }
    }

    /// Unlinks `s` from the IDR if it is still there (nothing else removes a
    /// shrinker, but the check keeps a stray call harmless), and takes the
    /// keepalive if the IDR is now empty. Writer lock held; needs no pin.
    fn take_ours(
        idr: &mut XaLock<'_, ShrinkerInner, IdrState, LINE_SPACING>,
        s: &ShrinkerInner,
    ) -> Option<(Unlinked<ShrinkerInner>, Option<Registry>)> {
        let id = u64::from(s.id().0);
        if !idr.load(id).is_some_and(|cur| std::ptr::eq(cur, s)) {
            return None;
        }
        let unlinked = idr.take(id).expect("loaded just above");
        let empty = idr.is_empty();
        Some((unlinked, idr.state().release_if_empty(empty)))
    }

    /// Unpublishes `s`, whose callbacks are gone, and parks its memory in
    /// the shell cache, all under one lock. See [`ShellCache`].
    ///
    /// May free the registry, as `unpublish`.
    fn retire(&self, s: HandleRef) {
        // No pin: `take` defers nothing (see `AfterPark::run`).
        let mut idr = self.shared.idr.lock();
        // A handle's shrinker is in the IDR until its handle retires it
        // (`HandleRef`), so this finds it.
        let (after, nodes, last) = match Self::take_ours(&mut idr, s.get()) {
            Some((unlinked, last)) => {
                // SAFETY: the tree's reference leaves the tree without a
                // grace period, into the shell cache, which gives it up (or
                // reuses the memory) only after its batch's grace period
                // (`ShellCache`), or when the registry itself is dropped, when
                // no walk, hence no reader of its IDR, can exist.
                let (tree_ref, nodes) = unsafe { unlinked.into_arc() };
                (idr.state().shells.park(tree_ref), nodes, last)
            }
            None => {
                debug_assert!(false, "a retiring handle's shrinker is not in the IDR");
                (AfterPark::default(), RetiredNodes::default(), None)
            }
        };
        drop(idr);
        after.run(nodes); // pins (outside the lock) only if it must defer
        drop(last); // the very last touch of the registry
    }

    /// A `Registry` value that holds no count of its own, for handles: valid
    /// while their shrinker is in the IDR, because the IDR then holds the
    /// keepalive. Never dropped (`ManuallyDrop`), so it never gives back a
    /// count it did not take; cloning it takes a real one.
    fn uncounted(&self) -> ManuallyDrop<Registry> {
        // SAFETY: `Arc::from_raw` on the pointer of a live `Arc<Shared>`
        // makes a second owner without a count; `ManuallyDrop` keeps it from
        // ever decrementing. Handles use it only while their shrinker is
        // published (`IdrState::keepalive`), and drop the registry's last
        // count, if it is the keepalive, only as their very last action
        // (`retire`, `unpublish`).
        ManuallyDrop::new(Registry {
            shared: unsafe { Arc::from_raw(Arc::as_ptr(&self.shared)) },
        })
    }

    /// Number of freed shrinkers whose memory is parked for reuse by later
    /// allocations (at most 1,024; see the registry's shell cache in the
    /// crate docs). They count toward this registry's memory, not toward
    /// [`Registry::len`].
    pub fn parked_shells(&self) -> usize {
        self.shared.idr.lock().state().shells.len()
    }

    /// Number of shrinkers allocated or registered.
    pub fn len(&self) -> usize {
        self.shared.idr.len()
    }

    /// Whether no shrinker is allocated.
    pub fn is_empty(&self) -> bool {
        self.shared.idr.is_empty()
    }

    /// A snapshot of every live shrinker (allocated or registered).
    pub fn shrinkers(&self) -> Vec<ShrinkerSnapshot> {
        let guard = pin();
        self.shared
            .idr
            .iter(0, &guard)
            .filter(|(_, s)| s.state.load(Ordering::Acquire) != DYING)
            .map(|(_, s)| ShrinkerSnapshot {
                id: s.id(),
                name: s.name.clone(),
                flags: s.flags,
                seeks: s.params.seeks,
                batch: s.params.batch,
                registered: s.state.load(Ordering::Acquire) == REGISTERED,
                stats: s.stats.snapshot(),
            })
            .collect()
    }

    /// Calls `f` with a reference on shrinker `id` held (as a walk would), or
    /// returns `NoSuchShrinker` if it is not registered.
    pub(crate) fn with_shrinker<R>(
        &self,
        id: ShrinkerId,
        f: impl FnOnce(&Self, &ShrinkerInner) -> R,
    ) -> Result<R, Error> {
        let guard = pin();
        let s = self
            .shared
            .idr
            .load(u64::from(id.0), &guard)
            .ok_or(Error::NoSuchShrinker(id))?;
        if !s.active.try_get() {
            return Err(Error::NoSuchShrinker(id));
        }
        let ptr: *const ShrinkerInner = s;
        drop(guard);
        // SAFETY: as in `shrink_slab`: the active reference keeps the shrinker
        // published, hence alive, until `visit` puts it back (also on unwind).
        let visit = Visit {
            reg: self,
            s: unsafe { &*ptr },
        };
        Ok(f(self, visit.s))
    }

    /// `count_objects` of shrinker `id` on one (memcg, node), like the
    /// kernel's debugfs `count` file. `None` means SHRINK_EMPTY.
    pub fn count_one(
        &self,
        id: ShrinkerId,
        memcg: &Memcg,
        nid: usize,
    ) -> Result<Option<u64>, Error> {
        self.check_memcg(memcg, nid)?;
        self.with_shrinker(id, |_, s| {
            let sc = ShrinkControl {
                memcg,
                nid,
                nr_to_scan: 0,
                nr_scanned: 0,
            };
            let _scope = CallbackScope::enter(s);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.shrink().count_objects(&sc)
            })) {
                Ok(crate::Count::Empty) => Ok(None),
                Ok(crate::Count::Objects(n)) => Ok(Some(n)),
                Err(_) => Ok(None),
            }
        })?
    }

    /// Asks shrinker `id` to scan `nr_to_scan` objects on one (memcg, node),
    /// like the kernel's debugfs `scan` file. Returns the freed count
    /// (`None` for SHRINK_STOP).
    pub fn scan_one(
        &self,
        id: ShrinkerId,
        memcg: &Memcg,
        nid: usize,
        nr_to_scan: u64,
    ) -> Result<Option<u64>, Error> {
        self.check_memcg(memcg, nid)?;
        self.with_shrinker(id, |_, s| {
            let mut sc = ShrinkControl {
                memcg,
                nid,
                nr_to_scan,
                nr_scanned: nr_to_scan,
            };
            let _scope = CallbackScope::enter(s);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.shrink().scan_objects(&mut sc)
            }));
            let trace = ScanTrace {
                total_scan: nr_to_scan,
                scanned: sc.nr_scanned,
                freed: match r {
                    Ok(crate::Scan::Freed(n)) => n,
                    _ => 0,
                },
                ..ScanTrace::default()
            };
            s.stats.record(&trace);
            match r {
                Ok(crate::Scan::Freed(n)) => Some(n),
                _ => None,
            }
        })
    }
}

/// Where one `shrink_slab` call reclaims.
#[derive(Clone, Copy)]
struct Target<'a> {
    memcg: &'a Memcg,
    nid: usize,
    priority: u32,
    /// Whether a subscriber wants the trace events (asked once per walk).
    tracing: bool,
}

/// A walk's reference to one shrinker, put back on drop: a panic that is not
/// a callback's (those are caught), such as a tracing subscriber's, unwinds
/// through here and still leaves the active count balanced, so a later `free`
/// does not wait forever.
struct Visit<'a> {
    reg: &'a Registry,
    s: &'a ShrinkerInner,
}

impl Drop for Visit<'_> {
    fn drop(&mut self) {
        self.reg.put(self.s);
    }
}

/// The deferred counter of one id in one shrinker_info.
impl DeferredCounter for DeferredSlot<'_> {
    fn xchg(&self) -> u64 {
        DeferredSlot::xchg(self)
    }
    fn add(&self, delta: u64) -> u64 {
        // Allocation failure of the counter block drops this pass's deferred
        // work: the next pass recomputes it from `freeable`.
        DeferredSlot::add(self, delta).unwrap_or(0)
    }
    fn get(&self) -> u64 {
        DeferredSlot::get(self)
    }
}

/// A serializable view of one shrinker (the kernel's debugfs directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShrinkerSnapshot {
    /// Id.
    pub id: ShrinkerId,
    /// Name.
    pub name: String,
    /// Effective flags.
    pub flags: ShrinkerFlags,
    /// Seeks.
    pub seeks: u32,
    /// Batch.
    pub batch: u64,
    /// Whether registered (else only allocated).
    pub registered: bool,
    /// Counters.
    pub stats: StatsSnapshot,
}

/// The accessors both handle types share (the handle owns `inner` until it
/// is consumed by `register`/`free`).
macro_rules! handle_accessors {
    ($handle:ident) => {
        impl fmt::Debug for $handle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("id", &self.id())
                    .field("name", &self.name())
                    .finish()
            }
        }

        impl $handle {
            fn inner(&self) -> &ShrinkerInner {
                self.inner.as_ref().expect("present until consumed").get()
            }

            /// The id.
            pub fn id(&self) -> ShrinkerId {
                self.inner().id()
            }

            /// The name.
            pub fn name(&self) -> &str {
                &self.inner().name
            }

            /// Effective flags (MEMCG_AWARE dropped when memcgs are off or disabled).
            pub fn flags(&self) -> ShrinkerFlags {
                self.inner().flags
            }

            /// The registry this shrinker belongs to.
            pub fn registry(&self) -> &Registry {
                &self.registry
            }
        }
    };
}

handle_accessors!(AllocatedShrinker);
handle_accessors!(RegisteredShrinker);

/// A shrinker with an id that is not called yet. Register it with
/// [`AllocatedShrinker::register`]; dropping it releases the id.
pub struct AllocatedShrinker {
    inner: Option<HandleRef>,
    /// Uncounted (see `Registry::uncounted`): valid while the shrinker is published.
    registry: ManuallyDrop<Registry>,
}

impl AllocatedShrinker {
    /// Makes the shrinker visible to reclaim: its active count becomes 1.
    pub fn register(self) -> RegisteredShrinker {
        // Moves the registry handle over instead of cloning it: a clone and a
        // drop are two locked operations on every registration.
        let mut this = ManuallyDrop::new(self);
        let handle = this.inner.take().expect("present until consumed");
        // SAFETY: `this` is never dropped nor used again, so the registry is
        // moved out exactly once.
        let registry = unsafe { std::ptr::read(&this.registry) };
        let inner = handle.get();
        // No lock: the sticky root bit was set by `alloc` (or is set by
        // `online_root`, which does not look at registration), and walkers
        // only need the count before the state.
        inner.active.init();
        // Release: a walker that sees REGISTERED sees the count too.
        inner.state.store(REGISTERED, Ordering::Release);
        RegisteredShrinker {
            inner: Some(handle),
            registry,
        }
    }
}

impl Drop for AllocatedShrinker {
    fn drop(&mut self) {
        if let Some(handle) = self.inner.take() {
            handle.get().state.store(DYING, Ordering::Release);
            let retire = Retire::new(&self.registry, handle);
            // SAFETY: never registered, so the count is zero and no walk ever
            // held a reference; this was the only handle.
            unsafe { retire.inner().drop_shrink() };
        }
    }
}

/// A registered shrinker. [`RegisteredShrinker::free`] (or drop) unregisters
/// it and waits until none of its callbacks runs; freeing twice cannot be
/// written because `free` consumes the handle.
pub struct RegisteredShrinker {
    inner: Option<HandleRef>,
    /// Uncounted (see `Registry::uncounted`): valid while the shrinker is published.
    registry: ManuallyDrop<Registry>,
}

impl RegisteredShrinker {
    /// Shorthand for [`Registry::set_shrinker_bit`] with this shrinker's id.
    pub fn set_bit(&self, memcg: &Memcg, nid: usize) -> Result<(), Error> {
        self.registry.set_shrinker_bit(memcg, nid, self.id())
    }

    /// Counters of this shrinker.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner().stats.snapshot()
    }

    /// Unregisters and frees: drops the initial reference, waits until no
    /// callback of this shrinker runs (callbacks of *other* shrinkers never
    /// delay it), drops the callbacks, unpublishes the id, and parks the
    /// memory for a later `alloc` to reuse once a grace period has passed. After it returns, no callback of this shrinker runs or
    /// starts. Called from inside one of its own callbacks it refuses with
    /// [`FreeError::SelfFree`] instead of deadlocking.
    pub fn free(mut self) -> Result<(), FreeError> {
        if in_own_callback(self.inner()) {
            return Err(FreeError::SelfFree(self));
        }
        self.free_now();
        Ok(())
    }

    fn free_now(&mut self) {
        let Some(handle) = self.inner.take() else {
            return;
        };
        let inner = handle.get();
        inner.state.store(DYING, Ordering::Release);
        inner.active.release_initial();
        let retire = Retire::new(&self.registry, handle);
        // SAFETY: the count is zero (terminal) and this was the handle.
        unsafe { retire.inner().drop_shrink() };
    }
}

impl Drop for RegisteredShrinker {
    fn drop(&mut self) {
        let Some(handle) = self.inner else {
            return;
        };
        if in_own_callback(handle.get()) {
            // Waiting here would wait for ourselves: hand the unpublish to
            // whichever walk drops the last reference.
            self.inner = None;
            // Once the count is put, a walk may unpublish the shrinker and
            // the IDR's deferred drop may free it: this pin keeps it alive
            // until we are done with it.
            let _alive = pin();
            let inner = handle.get();
            inner.state.store(DYING, Ordering::Release);
            inner.free_on_last_put.store(true, Ordering::Release);
            if inner.active.put() {
                self.registry.unpublish(inner);
                // SAFETY: we dropped the last reference; the handle is gone.
                unsafe { inner.drop_shrink() };
            }
        } else {
            self.free_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_debug_and_ops() {
        let f = ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE;
        assert!(f.contains(ShrinkerFlags::MEMCG_AWARE));
        assert!(!f.contains(ShrinkerFlags::NONSLAB));
        assert_eq!(format!("{f:?}"), "MEMCG_AWARE | NUMA_AWARE");
        assert_eq!(format!("{:?}", f.without(f)), "NONE");
    }
}
