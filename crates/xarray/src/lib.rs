//! An RCU radix tree with IDR-style id allocation, lock-free lookups and marks.
//!
//! [`XArray`] maps `u64` indexes to `Arc<T>` values. It is the registry that the
//! shrinker walk consults on every reclaim pass (look a shrinker up by id, without a
//! lock) and the registry of memory cgroups (ids handed out cyclically).
//!
//! # Concepts
//!
//! **Shape.** The tree is made of nodes of 64 slots. A node at *shift* `s` covers
//! `64 << s` consecutive indexes; slot `k` of it covers the sub-range starting at
//! `base + (k << s)`. Leaf nodes have shift 0 and their slots hold the values
//! (`Arc::into_raw` pointers, one strong count owned by the tree); interior nodes'
//! slots hold child nodes. The *height* is the number of levels: 0 for an empty tree,
//! otherwise the smallest `h >= 1` with `max_index < 64^h` (11 levels cover the whole
//! `u64` range; the top node then uses only slots 0..16). The tree grows by putting a
//! new top node above the old one (old root in slot 0) and shrinks back when the top
//! node only uses slot 0, so the height is always exactly what the largest index
//! needs. A node whose slots all become empty is unlinked at once, with one
//! exception: the **spare leaf**. The last leaf an erase emptied stays linked
//! until another leaf empties or the tree does. Then an owner that allocates
//! and frees the first index of a leaf in a loop does not allocate a node and
//! retire one through the epoch collector on every cycle. The kernel's
//! xarray does, and its slab allocator makes that cheap; glibc's does not:
//! before the spare, `register_profile` (shrinker crate) with 128 others
//! ran 2–3× slower per cycle with dense nodes, 8× with line-spaced ones
//! (see "Slot spacing" below). No spare is kept
//! where unlinking it would lower the height (a leaf at 64, 4096, ... whose
//! removal collapses the top), so the height rule above holds as stated.
//!
//! **Readers** ([`XArray::load`], [`XArray::get`], [`XArray::iter`],
//! [`XArray::iter_marked`], [`XArray::get_mark`], [`XArray::height`]) never lock and
//! never retry: a lookup is one `Acquire` load of the root plus one `Acquire` load per
//! level. They run inside a crossbeam-epoch read section (a pinned [`Guard`]), which
//! plays the role of `rcu_read_lock`.
//!
//! **Writers** ([`XArray::store`], [`XArray::erase`], [`XArray::alloc`], the mark
//! setters, ...) are serialized by one internal mutex. [`XArray::lock`] hands that
//! mutex to a caller whose own bookkeeping must change atomically with the tree
//! (the kernel's `xa_lock` + `__xa_alloc`), and [`XArray::with_state`] lets the same
//! mutex guard the caller's state ([`XaLock::state`]): the shrinker registry uses it
//! as its only writer lock, for its IDR and its cache of freed shrinkers, instead of
//! wrapping a mutex of its own around this one. A writer fully initializes a
//! node before publishing it with a `Release` store (into a parent slot or the root);
//! readers' `Acquire` loads of that pointer pair with it, so a reader that sees a
//! pointer also sees everything the writer wrote before publishing it (the node's
//! slots and marks, or the `T` behind an `Arc`).
//!
//! **Deferred freeing (RCU).** When a writer unlinks a node or replaces/erases a
//! value, readers that found the old pointer may still be using it. The node is
//! retired with `Guard::defer_destroy` and the tree's strong count of the old value is
//! dropped with `Guard::defer_unchecked` (the `call_rcu` of crossbeam-epoch): both
//! happen only after every thread pinned at unlink time has unpinned. A caller that
//! tracks grace periods itself (one deferred function for a batch of values) can
//! take the tree's reference back instead: [`XaLock::take`] returns an [`Unlinked`]
//! that must reach the same end, and needs no pin unless nodes were unlinked too
//! ([`RetiredNodes`]). Hence the
//! contract of [`XArray::load`]: the `&'g T` stays valid for as long as the guard
//! lives, even if the entry is erased meanwhile. A retired node is never modified
//! again, and its slots keep pointing where they pointed at unlink time: a reader
//! standing on a retired top node still reaches the live subtree below slot 0, so an
//! entry that stays in the tree for the whole duration of a lookup or iteration is
//! always found.
//!
//! **Free bits (allocation).** Every node keeps a writer-only bitmap with bit `k` set
//! iff slot `k` is empty or its child subtree has an empty slot (the kernel's
//! `XA_FREE_MARK` idea). [`XArray::alloc`] follows set bits down from the root and
//! finds the lowest free index `>= range.start` in O(height): at each level at most
//! one subtree (the one `range.start` falls into) can be searched in vain. Indexes
//! above the tree's current capacity are free, and allocating there grows the tree.
//!
//! **Marks.** Three user marks ([`Mark`]) are kept as one 64-bit word per mark per
//! node. In a leaf, bit `k` is the mark of the entry in slot `k`; in an interior node,
//! bit `k` is set iff some entry below slot `k` carries the mark. The writer updates a
//! leaf bit first and then its ancestors, so [`XArray::iter_marked`] descends only into
//! marked subtrees: O(marked entries × height). Erasing an entry clears its marks;
//! replacing an entry with [`XArray::store`] keeps them.
//!
//! **Slot spacing.** By default a node's 64 slots are packed eight to a
//! 64-byte cache line, as in the kernel's `xa_node`. Then a writer that stores
//! and erases one index over and over writes a line that readers of up to
//! seven neighboring indexes read. An allocator hands out the lowest free
//! index, so those neighbors are live. Each write after such a read moves the
//! line between CPUs (false sharing). A registry whose user registers and
//! frees an object in a loop while lookups run does exactly this.
//! `XArray<T, W, LINE_SPACING>` puts every slot on a line of its own, at
//! 64 bytes per slot instead of 8: a node takes 4,200 B instead of 616 B.
//! A slot's line is then read only by lookups of that very index.
//! Lookups still touch one line per level. The shrinker IDR uses it.
//! `examples/writer_probe.rs` measures it: an alloc/take cycle next to 100
//! live ids, with a reader looking up those ids. With dense slots the cycle
//! costs ~18% more than with the reader on another tree. With
//! `LINE_SPACING` it costs the same.
//!
//! **Out of memory.** A writer first works out how many nodes the operation needs,
//! allocates all of them fallibly (`std::alloc::alloc` + null check) and only then
//! touches the tree, so [`AllocError::OutOfMemory`] leaves the tree unchanged. With the
//! `fault-injection` cargo feature, `XArray::fail_nth_node_alloc` makes a chosen
//! node allocation of one `XArray` fail, for tests.
//!
//! # Invariants (checked by `tests/model.rs` and the unit tests)
//!
//! - at most one reachable node is empty, and it is the spare leaf; the root is
//!   null iff the tree is empty;
//! - `height()` equals what the largest index requires (0 when empty);
//! - free bit set ⇔ the slot is empty or its subtree has a free slot (top node at height
//!   11: only slots 0..16 exist);
//! - mark bit in an interior node ⇔ some entry below carries the mark;
//! - every value is dropped exactly once: by the tree's deferred drop after
//!   erase/replace, or when the `XArray` itself is dropped.
//!
//! # Dropping the `XArray`
//!
//! `load`'s reference is bound to the guard, not to the `&self` borrow, so a thread may
//! legitimately hold a `&'g T` after the last handle to the `XArray` went away (e.g.
//! through an `Arc<XArray<T>>` dropped on another thread). `Drop` therefore unlinks the
//! whole tree and frees it (nodes and the tree's strong counts) in **one deferred
//! function** after the current grace period, then flushes the local epoch bag so the
//! destruction is not held back. With no thread pinned, a couple of `pin().flush()`
//! calls run it.
//!
//! # Readers under writer churn
//!
//! A `load` is a few dependent reads, but the [`pin`] around it is not free, and
//! under churn it gets dearer. Two reasons come from crossbeam-epoch itself, not
//! from the tree:
//! - every pin is a fenced write to the thread's epoch slot, and a writer's
//!   collection attempt reads that slot, so the reader pays a cache miss to get it back;
//! - every 128 pins, a thread runs whatever garbage has expired, the writer's included.
//!   Kernel RCU runs callbacks on the CPU that queued them. crossbeam-epoch runs them on
//!   whichever thread collects, and the busiest pinner is the reader.
//!
//! `benches/xarray.rs` (group `reader_vs_writer`) shows the split. It includes a
//! writer that pins and defers a no-op and never touches the tree. That writer
//! slows a reader that pins per load about as much as real alloc/erase churn does.
//! So a reader that cares about throughput should hold one guard for a batch of loads,
//! the way `shrink_slab` holds one for a walk. `examples/churn_probe.rs` breaks the
//! cost down by what the writer does.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use unishrink_xarray::{pin, Mark, XArray};
//!
//! let xa: XArray<&'static str> = XArray::new();
//! let id = xa.alloc(Arc::new("first"), 1..=1000).unwrap();
//! assert_eq!(id, 1);
//! xa.store(70, Arc::new("seventy")).unwrap();
//! assert_eq!(xa.height(), 2);
//! assert!(xa.set_mark(70, Mark::Mark0));
//!
//! let guard = pin();
//! let v = xa.load(70, &guard).unwrap();
//! // Erasing does not free the value while `guard` is alive.
//! let old = xa.erase(70).unwrap();
//! assert_eq!(*v, "seventy");
//! assert_eq!(*old, "seventy");
//! assert_eq!(xa.height(), 1);
//! let all: Vec<u64> = xa.iter(0, &guard).map(|(i, _)| i).collect();
//! assert_eq!(all, vec![1]);
//! ```
//!
//! # Loom
//!
//! `tests/loom_xarray.rs` checks the publication and reclamation protocol with loom,
//! running the **real** crossbeam-epoch (its `loom` feature, enabled by this crate under
//! `cfg(loom)`, swaps its atomics for loom's when built with `--cfg crossbeam_loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p unishrink-xarray --release --test loom_xarray
//! ```
//!
//! Only reader-visible state goes through the `sync` facade (slots, marks, root,
//! writer mutex); writer-only bookkeeping stays on std atomics (see `sync.rs`).

#![warn(missing_docs)]

// Under loom the epoch scheme itself must be loom-aware, or every simulated thread
// would share one crossbeam participant (std thread-locals) and the model would check
// nothing about reclamation.
#[cfg(all(loom, not(crossbeam_loom)))]
compile_error!(
    "unishrink-xarray under loom needs crossbeam-epoch's loom mode: \
     RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom\""
);

#[cfg(feature = "bench-support")]
pub mod bench_support;
mod sync;

use std::alloc::Layout;
use std::fmt;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::RangeInclusive;
use std::ptr;
use std::sync::atomic::AtomicU32 as StdAtomicU32;
#[cfg(any(test, feature = "fault-injection"))]
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::AtomicU64 as WriterU64;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

pub use crossbeam_epoch::{pin, Guard};
use crossbeam_utils::CachePadded;

use crate::sync::{AtomicPtr, AtomicU64, Mutex, MutexGuard};

/// The slot spacing ([`XArray`]'s `S`) that gives every slot of a node a
/// 64-byte cache line of its own (see the crate docs, "Slot spacing").
pub const LINE_SPACING: usize = 64 / std::mem::size_of::<usize>();

/// log2 of the number of slots per node.
const CHUNK_SHIFT: u32 = 6;
/// Slots per node.
const SLOTS: usize = 1 << CHUNK_SHIFT;
/// Levels needed to cover the whole `u64` index space.
const MAX_HEIGHT: usize = 11;
/// Number of user marks.
const MARKS: usize = 3;

/// One of the three user marks an entry can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    /// First user mark.
    Mark0,
    /// Second user mark.
    Mark1,
    /// Third user mark.
    Mark2,
}

impl Mark {
    fn idx(self) -> usize {
        match self {
            Mark::Mark0 => 0,
            Mark::Mark1 => 1,
            Mark::Mark2 => 2,
        }
    }
}

/// Why an allocating operation ([`XArray::alloc`], [`XArray::alloc_cyclic`],
/// [`XArray::store`]) failed. The tree is unchanged in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// Every index of the requested range is in use.
    Full,
    /// The requested range is empty (`start > end`).
    EmptyRange,
    /// A tree node could not be allocated.
    OutOfMemory,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::Full => "no free index in the requested range",
            AllocError::EmptyRange => "the requested index range is empty",
            AllocError::OutOfMemory => "out of memory while allocating a tree node",
        })
    }
}

impl std::error::Error for AllocError {}

/// A tree node. Type-erased: leaf slots hold `*const T` (from `Arc::into_raw`),
/// interior slots hold `*mut Node`. No `Drop` impl on purpose: destroying a retired
/// node must never touch the (still live) children its slots point to.
///
/// Layout: the metadata, a line of padding, then the slots. Slot `k` is the
/// first word of `slots[k]`, `S` words long (see [`XArray`]'s `S`): with
/// `S = 1` eight slots share a cache line, with [`LINE_SPACING`] each has
/// one. The padding keeps the metadata, which writers update on every
/// insert and erase, off every slot's line wherever the node starts, so the
/// node needs no alignment beyond its words': an over-aligned allocation
/// takes glibc's `memalign` path, which made a register/free cycle that
/// allocates a top node and a leaf ~2.8× slower (`register_profile` with 64
/// others, line-spaced nodes). A lookup
/// touches one line per level (readers derive each level's shift from the
/// root's instead of reading it from every node).
#[repr(C)]
struct Node<const S: usize> {
    /// Reader-visible mark words (leaf: per entry; interior: "some entry below").
    marks: [AtomicU64; MARKS],
    /// Writer-only: bit k set iff slot k is empty or its subtree has a free slot.
    free: WriterU64,
    /// Writer-only: number of non-empty slots.
    count: StdAtomicU32,
    /// 0 for leaves; a multiple of 6 up to 60. Written only before publication.
    shift: u32,
    /// At least 64 bytes between the last metadata byte and the first slot.
    _gap: [u64; 8],
    /// Reader-visible slots; published with `Release`, read with `Acquire`.
    /// Only `slots[k][0]` is used; the rest of each is spacing.
    slots: [[AtomicPtr<()>; S]; SLOTS],
}

/// Slots that exist in a node at `shift` (the height-11 top node has only 16).
fn valid_mask(shift: u32) -> u64 {
    if shift + CHUNK_SHIFT >= 64 {
        // 64 - shift index bits remain, i.e. 2^(64 - shift) slots.
        (1u64 << (1u32 << (64 - shift))) - 1
    } else {
        u64::MAX
    }
}

/// Largest index a (top) node at `shift` covers.
fn max_index(shift: u32) -> u64 {
    if shift + CHUNK_SHIFT >= 64 {
        u64::MAX
    } else {
        (1u64 << (shift + CHUNK_SHIFT)) - 1
    }
}

/// Height needed to hold `index` (at least 1).
fn height_for(index: u64) -> usize {
    let bits = 64 - index.leading_zeros() as usize;
    bits.div_ceil(CHUNK_SHIFT as usize).max(1)
}

fn shift_for_height(h: usize) -> u32 {
    (h as u32 - 1) * CHUNK_SHIFT
}

fn digit(index: u64, shift: u32) -> usize {
    ((index >> shift) as usize) & (SLOTS - 1)
}

impl<const S: usize> Node<S> {
    fn new(shift: u32) -> Self {
        Node {
            shift,
            slots: std::array::from_fn(|_| {
                std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut()))
            }),
            marks: std::array::from_fn(|_| AtomicU64::new(0)),
            free: WriterU64::new(valid_mask(shift)),
            count: StdAtomicU32::new(0),
            _gap: [0; 8],
        }
    }

    /// Slot `k`.
    #[inline(always)]
    fn slot(&self, k: usize) -> &AtomicPtr<()> {
        &self.slots[k][0]
    }

    /// Writer-side count update: a load and a store, not a locked read-modify-write,
    /// since only the writer (under the mutex) changes it.
    #[inline]
    fn add_count(&self, delta: i32) {
        let c = self.count.load(Relaxed);
        self.count.store(c.wrapping_add_signed(delta), Relaxed);
    }

    /// Writer-side update of one bit of a writer-only word.
    #[inline]
    /// Skips the store when nothing changes: the word shares the metadata line
    /// with `shift`, which lookups read from the root, so a needless store on
    /// the root costs every concurrent reader a miss.
    fn set_free(&self, slot: usize, on: bool) {
        let old = self.free.load(Relaxed);
        let new = if on {
            old | (1 << slot)
        } else {
            old & !(1 << slot)
        };
        if new != old {
            self.free.store(new, Relaxed);
        }
    }

    /// Writer-side update of one mark bit. Relaxed is enough: marks carry no data
    /// (a reader reaches the entry through an `Acquire` slot load), and only the
    /// writer, under the mutex, modifies them. Skips the store when nothing changes.
    #[inline]
    fn set_mark_bit(&self, mark: usize, slot: usize, on: bool) {
        let old = self.marks[mark].load(Relaxed);
        let new = if on {
            old | (1 << slot)
        } else {
            old & !(1 << slot)
        };
        if new != old {
            self.marks[mark].store(new, Relaxed);
        }
    }
}

/// The chain of nodes from the root down to a leaf, with the slot taken at each.
/// Uninitialized beyond `len` (zeroing ~180 bytes on every write showed up in
/// the registration profile).
struct Path<const S: usize> {
    nodes: [MaybeUninit<*mut Node<S>>; MAX_HEIGHT],
    slots: [MaybeUninit<usize>; MAX_HEIGHT],
    len: usize,
}

impl<const S: usize> Path<S> {
    #[inline]
    fn new() -> Self {
        Path {
            nodes: [MaybeUninit::uninit(); MAX_HEIGHT],
            slots: [MaybeUninit::uninit(); MAX_HEIGHT],
            len: 0,
        }
    }
    #[inline]
    fn push(&mut self, node: *mut Node<S>, slot: usize) {
        self.nodes[self.len].write(node);
        self.slots[self.len].write(slot);
        self.len += 1;
    }
    /// The node at level `i` (0: the root); `i < len`.
    #[inline]
    fn node(&self, i: usize) -> *mut Node<S> {
        assert!(i < self.len);
        // SAFETY: entries below `len` were written by `push`.
        unsafe { self.nodes[i].assume_init() }
    }
    /// The slot taken at level `i`; `i < len`.
    #[inline]
    fn slot(&self, i: usize) -> usize {
        assert!(i < self.len);
        // SAFETY: as in `node`.
        unsafe { self.slots[i].assume_init() }
    }
}

/// Nodes allocated before a write touches the tree (so OOM leaves it unchanged).
/// Unused nodes are freed on drop; they were never published.
struct Prealloc<const S: usize> {
    nodes: [*mut Node<S>; 2 * MAX_HEIGHT],
    len: usize,
}

impl<const S: usize> Prealloc<S> {
    const EMPTY: Self = Prealloc {
        nodes: [ptr::null_mut(); 2 * MAX_HEIGHT],
        len: 0,
    };

    #[inline]
    fn take(&mut self, shift: u32) -> *mut Node<S> {
        debug_assert!(self.len > 0, "node preallocation undercounted");
        self.len -= 1;
        let p = self.nodes[self.len];
        // SAFETY: `p` came from `alloc_node` and has not been published yet, so this
        // thread has exclusive access (invariant: a node is reachable only after the
        // Release store that publishes it; checked by tests/model.rs).
        unsafe {
            (*p).shift = shift;
            (*p).free.store(valid_mask(shift), Relaxed);
        }
        p
    }
}

impl<const S: usize> Drop for Prealloc<S> {
    fn drop(&mut self) {
        for &p in &self.nodes[..self.len] {
            // SAFETY: unpublished node allocated with the global allocator and the
            // layout of `Node` (see `alloc_node`), owned only by this `Prealloc`;
            // exercised by `oom_leaves_tree_unchanged`.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

struct WriterState<W> {
    /// Where the next `alloc_cyclic` starts looking.
    next_cyclic: u64,
    /// Whether a mark was ever set. Until then every mark word is zero and
    /// erases skip the mark bookkeeping (an IDR that never marks pays nothing).
    marks_used: bool,
    /// First index of the leaf an erase emptied and left linked for reuse
    /// (see `erase_locked`), if any. It may have been refilled since.
    spare_leaf: Option<u64>,
    /// The user's state guarded by this lock (see [`XaLock::state`]).
    user: W,
}

/// An RCU radix tree mapping `u64` indexes to `Arc<T>`, with lock-free readers,
/// mutex-serialized writers, lowest-free-index allocation and three marks.
///
/// `W` is optional state of the user's that the writer lock guards too (see
/// [`XArray::with_state`] and [`XaLock::state`]); `()` by default.
///
/// `S` is the *slot spacing*, in words: 1 (the default) packs a node's slots
/// eight to a cache line, as the kernel does; [`LINE_SPACING`] gives each
/// slot a line of its own (see the crate docs, "Slot spacing").
///
/// See the [crate documentation](crate) for the protocol.
pub struct XArray<T: Send + Sync + 'static, W: Send = (), const S: usize = 1> {
    /// Top node, or null when empty. Published with `Release`, read with `Acquire`.
    /// On its own cache line: every lookup reads it, and it must not share a line
    /// with the mutex and `len` that each writer operation dirties.
    root: CachePadded<AtomicPtr<Node<S>>>,
    writer: CachePadded<Mutex<WriterState<W>>>,
    /// Number of entries; written under the writer mutex, read advisory (Relaxed).
    len: StdAtomicUsize,
    /// Countdown to an injected node-allocation failure (0 = off).
    #[cfg(any(test, feature = "fault-injection"))]
    fail_countdown: StdAtomicU64,
    /// The tree owns one strong count of each stored `Arc<T>`.
    _values: PhantomData<Arc<T>>,
}

impl<T: Send + Sync + 'static, W: Send + Default, const S: usize> Default for XArray<T, W, S> {
    fn default() -> Self {
        Self::with_state(W::default())
    }
}

impl<T: Send + Sync + 'static, W: Send, const S: usize> fmt::Debug for XArray<T, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XArray")
            .field("len", &self.len())
            .field("height", &self.height())
            .finish_non_exhaustive()
    }
}

/// Panics if `guard` belongs to a collector other than crossbeam-epoch's default one
/// (the one writers retire into): such a guard would not hold back our frees.
fn check_guard(guard: &Guard) {
    if let Some(c) = guard.collector() {
        assert!(
            c == crossbeam_epoch::default_collector(),
            "unishrink_xarray: the guard must come from crossbeam_epoch::pin() (the default collector)"
        );
    }
}

impl<T: Send + Sync + 'static> XArray<T> {
    /// Creates an empty tree (height 0). Does not allocate.
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl<T: Send + Sync + 'static, W: Send, const S: usize> XArray<T, W, S> {
    /// Creates an empty tree whose writer lock also guards `state`, which
    /// writers reach through [`XaLock::state`]: bookkeeping of the caller's
    /// that must change atomically with the tree, at no extra lock.
    ///
    /// # Panics
    /// At compile time, if the slot spacing `S` is 0.
    pub fn with_state(state: W) -> Self {
        const {
            assert!(
                S >= 1,
                "unishrink_xarray: the slot spacing must be at least 1"
            )
        };
        XArray {
            root: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            writer: CachePadded::new(Mutex::new(WriterState {
                next_cyclic: 0,
                marks_used: false,
                spare_leaf: None,
                user: state,
            })),
            len: StdAtomicUsize::new(0),
            #[cfg(any(test, feature = "fault-injection"))]
            fail_countdown: StdAtomicU64::new(0),
            _values: PhantomData,
        }
    }

    /// Makes the `n`-th node allocation from now on fail with
    /// [`AllocError::OutOfMemory`] (`n == 1`: the next one); `n == 0` disables the
    /// injection. One-shot, and local to this `XArray`.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_nth_node_alloc(&self, n: u64) {
        self.fail_countdown.store(n, Relaxed);
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState<W>> {
        // Writers never panic while holding the lock (no user code runs under it:
        // values are dropped by deferred functions or by the caller), so a poisoned
        // lock still guards a consistent tree.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alloc_node(&self) -> Result<*mut Node<S>, AllocError> {
        #[cfg(any(test, feature = "fault-injection"))]
        {
            let c = self.fail_countdown.load(Relaxed);
            if c > 0 {
                self.fail_countdown.store(c - 1, Relaxed);
                if c == 1 {
                    return Err(AllocError::OutOfMemory);
                }
            }
        }
        let layout = Layout::new::<Node<S>>();
        // SAFETY: `Node` has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) }.cast::<Node<S>>();
        if p.is_null() {
            return Err(AllocError::OutOfMemory);
        }
        // SAFETY: `p` is non-null, freshly allocated with `Node`'s layout, so valid for
        // a write; ownership passes to the caller (freed later via `Box::from_raw`,
        // which uses the same global allocator and layout).
        unsafe { p.write(Node::new(0)) };
        Ok(p)
    }

    /// Allocates `n` nodes into `pre` (an out-parameter, as `walk`'s path: a
    /// returned `Result<Prealloc>` was copied on every insert).
    fn prealloc(&self, n: usize, pre: &mut Prealloc<S>) -> Result<(), AllocError> {
        for _ in 0..n {
            let p = self.alloc_node()?; // on error `pre` frees what it holds
            pre.nodes[pre.len] = p;
            pre.len += 1;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- readers

    /// Finds the raw slot content for `index`; null if absent. Wait-free: one
    /// `Acquire` load of the root and one per level.
    ///
    /// Caller must be pinned (or hold the writer lock).
    fn lookup(&self, index: u64) -> *const () {
        // Acquire pairs with the writer's Release publication of the root: the node's
        // shift and slots are initialized before we read them.
        let mut node = self.root.load(Acquire);
        if node.is_null() {
            return ptr::null();
        }
        // SAFETY: a node reachable from the root is freed only after a grace period
        // and the caller is pinned (checked by loom_xarray's `load_vs_erase_shrink`
        // and the ASan stress test).
        let mut n = unsafe { &*node };
        let mut shift = n.shift;
        if index > max_index(shift) {
            return ptr::null();
        }
        loop {
            // Acquire pairs with the Release store that published the child node or
            // value: its contents (node fields or the `T`) are visible to us.
            let p = n.slot(digit(index, shift)).load(Acquire);
            if p.is_null() || shift == 0 {
                return p;
            }
            shift -= CHUNK_SHIFT; // a child is always one level down
            node = p.cast();
            // SAFETY: as above; interior slots only ever hold node pointers.
            n = unsafe { &*node };
        }
    }

    /// Wait-free lookup under an epoch guard. The reference stays valid until the
    /// guard drops, even if the entry is erased or replaced meanwhile (the tree's
    /// strong count is dropped only after a grace period).
    ///
    /// # Panics
    /// If `guard` was pinned on a collector other than crossbeam-epoch's default one
    /// (use [`pin`]).
    pub fn load<'g>(&self, index: u64, guard: &'g Guard) -> Option<&'g T> {
        check_guard(guard);
        let p = self.lookup(index).cast::<T>();
        // SAFETY: non-null leaf slots hold `Arc::into_raw` pointers whose tree-owned
        // strong count is released only by a deferred function, which cannot run
        // while `guard` is pinned (loom_xarray `load_vs_erase_shrink`, stress test).
        unsafe { p.as_ref() }
    }

    /// [`XArray::load`] without the check that `guard` comes from the default
    /// collector: for a caller that took the guard from [`pin`] itself and
    /// looks up many indexes with it (the check is a third of a lookup).
    ///
    /// # Safety
    /// `guard` must be pinned on crossbeam-epoch's default collector (a guard
    /// from [`pin`]); another collector's pin does not hold back our frees.
    #[inline]
    pub unsafe fn load_unchecked<'g>(&self, index: u64, guard: &'g Guard) -> Option<&'g T> {
        debug_assert!(guard
            .collector()
            .is_some_and(|c| c == crossbeam_epoch::default_collector()));
        let _ = guard;
        let p = self.lookup(index).cast::<T>();
        // SAFETY: as in `load`; the caller vouches for the guard.
        unsafe { p.as_ref() }
    }

    /// Looks `index` up and returns a new strong reference to its value.
    pub fn get(&self, index: u64) -> Option<Arc<T>> {
        let guard = pin();
        let p = self.lookup(index).cast::<T>();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `Arc::into_raw` and its tree-owned count is alive
        // while we are pinned (see `load`), so adding a count and adopting it is valid.
        let arc = unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        };
        drop(guard);
        Some(arc)
    }

    /// Number of entries. Exact when no writer runs concurrently.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// `true` if the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of levels: 0 when empty, else the smallest `h` with
    /// `max_index < 64^h` (at most 11).
    pub fn height(&self) -> usize {
        let _guard = pin();
        let r = self.root.load(Acquire);
        if r.is_null() {
            0
        } else {
            // SAFETY: pinned; see `lookup`.
            (unsafe { (*r).shift } / CHUNK_SHIFT) as usize + 1
        }
    }

    /// Iterates over the entries with index `>= start`, in ascending index order.
    ///
    /// RCU semantics: an entry present for the whole iteration is returned; entries
    /// stored or erased meanwhile may or may not be. Each step costs O(height) plus
    /// the empty slots skipped.
    ///
    /// # Panics
    /// Like [`XArray::load`], on a guard from a foreign collector.
    pub fn iter<'g>(&self, start: u64, guard: &'g Guard) -> Iter<'g, T, S> {
        check_guard(guard);
        Iter {
            root: self.root.load(Acquire),
            next: start,
            done: false,
            mark: None,
            _marker: PhantomData,
        }
    }

    /// Iterates over the entries with index `>= start` that carry `mark`, ascending.
    /// Unmarked subtrees are skipped via the propagated mark bits, so the cost is
    /// O(marked entries × height).
    ///
    /// # Panics
    /// Like [`XArray::load`], on a guard from a foreign collector.
    pub fn iter_marked<'g>(
        &self,
        start: u64,
        mark: Mark,
        guard: &'g Guard,
    ) -> IterMarked<'g, T, S> {
        check_guard(guard);
        IterMarked(Iter {
            root: self.root.load(Acquire),
            next: start,
            done: false,
            mark: Some(mark.idx()),
            _marker: PhantomData,
        })
    }

    /// `true` if there is an entry at `index` and it carries `mark`. Lock-free.
    pub fn get_mark(&self, index: u64, mark: Mark) -> bool {
        let _guard = pin();
        let r = self.root.load(Acquire);
        if r.is_null() {
            return false;
        }
        // SAFETY: pinned; see `lookup`.
        let mut n = unsafe { &*r };
        if index > max_index(n.shift) {
            return false;
        }
        loop {
            let s = digit(index, n.shift);
            let p = n.slot(s).load(Acquire);
            if p.is_null() {
                return false;
            }
            if n.shift == 0 {
                return n.marks[mark.idx()].load(Relaxed) & (1 << s) != 0;
            }
            // SAFETY: pinned; interior slots hold nodes.
            n = unsafe { &*p.cast::<Node<S>>() };
        }
    }

    // ---------------------------------------------------------------- writers

    /// Writer-side walk to the leaf holding `index`; `false` if no leaf covers it.
    /// Caller holds the writer lock.
    ///
    /// Fills the caller's `path` (an out-parameter: returning the ~180-byte
    /// `Path` by value cost a `memcpy` on every erase).
    fn walk(&self, index: u64, path: &mut Path<S>) -> bool {
        let mut node = self.root.load(Relaxed);
        if node.is_null() {
            return false;
        }
        // SAFETY (this and the derefs below): under the writer lock no node reachable
        // from the root can be retired by anyone else, so reachable nodes are live.
        if index > max_index(unsafe { (*node).shift }) {
            return false;
        }
        loop {
            let n = unsafe { &*node };
            let s = digit(index, n.shift);
            path.push(node, s);
            if n.shift == 0 {
                return true;
            }
            let c = n.slot(s).load(Relaxed);
            if c.is_null() {
                return false;
            }
            node = c.cast();
        }
    }

    /// Recomputes the free and mark summary bits of the path's nodes `..=upto` bottom-up
    /// from the children. Caller holds the writer lock.
    /// `marks: false` skips the mark words (they cannot have changed).
    #[inline]
    fn propagate(path: &Path<S>, upto: usize, marks: bool) {
        for l in (0..upto).rev() {
            // SAFETY: nodes on the path are reachable and live (writer lock held).
            let (parent, child) = unsafe { (&*path.node(l), &*path.node(l + 1)) };
            let s = path.slot(l);
            parent.set_free(s, child.free.load(Relaxed) != 0);
            if marks {
                for m in 0..MARKS {
                    parent.set_mark_bit(m, s, child.marks[m].load(Relaxed) != 0);
                }
            }
        }
    }

    /// How many new nodes storing at `index` needs. Caller holds the writer lock.
    fn nodes_needed(&self, index: u64) -> usize {
        let h = height_for(index);
        let root = self.root.load(Relaxed);
        if root.is_null() {
            return h;
        }
        // SAFETY: writer lock held; reachable nodes are live.
        let mut n = unsafe { &*root };
        let cur = (n.shift / CHUNK_SHIFT) as usize + 1;
        if h > cur {
            // New top nodes, then a fresh path below the new top's non-zero slot.
            return (h - cur) + (h - 1);
        }
        loop {
            if n.shift == 0 {
                return 0;
            }
            let c = n.slot(digit(index, n.shift)).load(Relaxed);
            if c.is_null() {
                return (n.shift / CHUNK_SHIFT) as usize;
            }
            // SAFETY: as above.
            n = unsafe { &*c.cast::<Node<S>>() };
        }
    }

    /// Puts `value` at `index` (growing the tree / creating nodes as needed) and
    /// returns the previous raw entry (null if none). Caller holds the writer lock.
    /// On error nothing has changed and `value` is not consumed.
    fn insert_locked(
        &self,
        index: u64,
        value: &mut Option<Arc<T>>,
    ) -> Result<*const T, AllocError> {
        let mut pre = Prealloc::EMPTY;
        self.prealloc(self.nodes_needed(index), &mut pre)?;
        let want_h = height_for(index);

        // Grow (or create) the top.
        let mut root = self.root.load(Relaxed);
        if root.is_null() {
            root = pre.take(shift_for_height(want_h));
            // Release: the new node's initialization happens-before readers' Acquire.
            self.root.store(root, Release);
        } else {
            // SAFETY: writer lock held; the root is live.
            while (unsafe { (*root).shift } / CHUNK_SHIFT) as usize + 1 < want_h {
                let old = unsafe { &*root };
                let top = pre.take(old.shift + CHUNK_SHIFT);
                // SAFETY: `top` is unpublished, exclusively ours.
                let t = unsafe { &*top };
                t.slot(0).store(root.cast(), Relaxed);
                t.count.store(1, Relaxed);
                t.set_free(0, old.free.load(Relaxed) != 0);
                for m in 0..MARKS {
                    t.set_mark_bit(m, 0, old.marks[m].load(Relaxed) != 0);
                }
                // Release: publishes `top` fully initialized (slot 0, marks); readers
                // that still hold the old root keep a valid, unchanged subtree.
                self.root.store(top, Release);
                root = top;
            }
        }

        // Descend, creating missing nodes.
        let mut path = Path::new();
        let mut node = root;
        loop {
            // SAFETY: writer lock held; `node` is reachable (or just published).
            let n = unsafe { &*node };
            let s = digit(index, n.shift);
            path.push(node, s);
            if n.shift == 0 {
                break;
            }
            let mut c = n.slot(s).load(Relaxed).cast::<Node<S>>();
            if c.is_null() {
                c = pre.take(n.shift - CHUNK_SHIFT);
                // Release: the child's initialization is visible to Acquire readers.
                n.slot(s).store(c.cast(), Release);
                n.add_count(1);
            }
            node = c;
        }
        debug_assert_eq!(pre.len, 0, "node preallocation overcounted");

        // SAFETY: the leaf is the last node on the path, live under the lock.
        let leaf = unsafe { &*node };
        let s = path.slot(path.len - 1);
        let old = leaf.slot(s).load(Relaxed);
        let raw = Arc::into_raw(value.take().expect("value present")).cast_mut();
        // Release: the `T` (and the Arc header) written before this store is visible
        // to readers whose Acquire load returns `raw`.
        leaf.slot(s).store(raw.cast(), Release);
        if old.is_null() {
            leaf.add_count(1);
            leaf.set_free(s, false);
            self.len.store(self.len.load(Relaxed) + 1, Relaxed);
        }
        // An insert leaves the leaf's mark words as they were (an empty slot
        // has no marks; a replaced entry keeps its own), so only free bits move.
        Self::propagate(&path, path.len - 1, false);
        Ok(old.cast())
    }

    /// `alloc` from index 0 in one descent, when it needs no new node: follow
    /// the lowest free bit down to a leaf (from 0, a set free bit always leads
    /// to a free slot), store there, fix the free bits on the way back up.
    /// `None` (and `value` untouched) when a node would be needed or the
    /// tree is full: the general path then grows it. Writer lock held.
    fn alloc_from_zero(&self, value: &mut Option<Arc<T>>, end: u64) -> Option<u64> {
        let mut node = self.root.load(Relaxed);
        if node.is_null() {
            return None;
        }
        let mut path = Path::new();
        let mut index = 0u64;
        loop {
            // SAFETY: writer lock held; reachable nodes are live.
            let n = unsafe { &*node };
            let free = n.free.load(Relaxed);
            if free == 0 {
                return None;
            }
            let s = free.trailing_zeros() as usize;
            path.push(node, s);
            index += (s as u64) << n.shift;
            let c = n.slot(s).load(Relaxed);
            if n.shift == 0 {
                debug_assert!(c.is_null(), "a leaf's free bit marks an empty slot");
                break;
            }
            if c.is_null() {
                return None; // a new node: the general path allocates it
            }
            node = c.cast();
        }
        if index > end {
            return None;
        }
        // SAFETY: the leaf is the last node on the path, live under the lock.
        let leaf = unsafe { &*node };
        let s = path.slot(path.len - 1);
        let raw = Arc::into_raw(value.take().expect("value present")).cast_mut();
        // Release: as in `insert_locked`.
        leaf.slot(s).store(raw.cast(), Release);
        leaf.add_count(1);
        leaf.set_free(s, false);
        self.len.store(self.len.load(Relaxed) + 1, Relaxed);
        Self::propagate(&path, path.len - 1, false);
        Some(index)
    }

    /// Hands back a clone of the tree's strong count of `p` and defers dropping the
    /// tree's own count until after a grace period (`call_rcu`).
    ///
    /// # Safety
    /// `p` was just unlinked from the tree (under the writer lock) and came from
    /// `Arc::into_raw`.
    unsafe fn retire_value(p: *const T, guard: &Guard) -> Arc<T> {
        // SAFETY: the tree's count keeps the value alive until the deferred drop.
        let ret = unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        };
        // SAFETY: forwarded from the caller.
        unsafe { Self::defer_tree_drop(p, guard) };
        ret
    }

    /// Drops the tree's strong count of an unlinked value after a grace period.
    ///
    /// # Safety
    /// As [`Self::retire_value`].
    unsafe fn defer_tree_drop(p: *const T, guard: &Guard) {
        let tree_ref = p as usize;
        // SAFETY: readers pinned before the unlink may still use `&T`; the tree's
        // count is released only after they unpin (loom_xarray
        // `load_vs_erase_shrink`, tests/stress.rs under ASan).
        unsafe {
            guard.defer_unchecked(move || drop(Arc::from_raw(tree_ref as *const T)));
        }
    }

    /// Stores `value` at `index`, returning the entry it replaces (whose marks are
    /// kept). Grows the tree as needed.
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] if a node could not be allocated; the tree is then
    /// unchanged.
    pub fn store(&self, index: u64, value: Arc<T>) -> Result<Option<Arc<T>>, AllocError> {
        // Pin before locking: pinning may run deferred drops of user values, which
        // must never run under our lock (a `T::drop` could re-enter this tree).
        let guard = pin();
        let mut value = Some(value);
        let st = self.lock_state();
        let old = self.insert_locked(index, &mut value)?;
        let ret = if old.is_null() {
            None
        } else {
            // SAFETY: `old` was just replaced under the lock; from `Arc::into_raw`.
            Some(unsafe { Self::retire_value(old, &guard) })
        };
        drop(st);
        Ok(ret)
    }

    /// Removes the entry at `index` and returns it; its marks are cleared. Empty
    /// nodes are unlinked, but for one spare leaf (see the crate docs), and the
    /// tree shrinks to the height its largest index needs.
    pub fn erase(&self, index: u64) -> Option<Arc<T>> {
        let guard = pin();
        let mut st = self.lock_state();
        let mut retired = RetiredNodes::EMPTY;
        let old = self.erase_locked(index, &mut retired, &mut st);
        retired.defer(&guard);
        // SAFETY: `old` was unlinked under the lock; from `Arc::into_raw`.
        Some(unsafe { Self::retire_value(old?, &guard) })
    }

    /// [`erase`](Self::erase) for a caller that does not want the value back:
    /// returns whether there was one. Saves the two reference-count updates of
    /// handing back a clone that would be dropped at once.
    pub fn remove(&self, index: u64) -> bool {
        let guard = pin();
        self.lock().remove(index, &guard)
    }

    /// Unlinks the entry at `index` (writer lock held) and returns its pointer,
    /// still carrying the tree's strong count. Nodes the erase unlinks go to
    /// `retired`, for the caller to retire.
    ///
    /// A leaf the erase empties stays linked as the *spare leaf* (and the
    /// previous spare, if still empty, is unlinked now), unless unlinking it
    /// would lower the tree's height. Why: an owner that allocates and frees
    /// the first index of a leaf in a loop would otherwise allocate a node
    /// and retire one through the epoch collector on every cycle (the kernel's
    /// xarray does; a slab makes that cheap there, not here). Only one spare
    /// at a time, so at most one reachable node is empty, and the height
    /// stays what the largest index needs: keeping a spare never prevents a
    /// collapse, and releasing one runs the collapse it allowed.
    fn erase_locked(
        &self,
        index: u64,
        retired: &mut RetiredNodes,
        st: &mut WriterState<W>,
    ) -> Option<*const T> {
        let marks = st.marks_used;
        let mut path = Path::new();
        if !self.walk(index, &mut path) {
            return None;
        }
        let last = path.len - 1;
        // SAFETY: writer lock held; path nodes are live.
        let leaf = unsafe { &*path.node(last) };
        let s = path.slot(last);
        let old = leaf.slot(s).load(Relaxed);
        if old.is_null() {
            return None;
        }
        // Release is not needed for a null store (readers never dereference null),
        // but keeps every slot store uniform; it is free on x86 and cheap elsewhere.
        leaf.slot(s).store(ptr::null_mut(), Release);
        leaf.add_count(-1);
        leaf.set_free(s, true);
        if marks {
            for m in 0..MARKS {
                leaf.set_mark_bit(m, s, false);
            }
        }
        let len = self.len.load(Relaxed) - 1;
        self.len.store(len, Relaxed);
        let old = old.cast_const().cast();
        if leaf.count.load(Relaxed) != 0 {
            Self::propagate(&path, last, marks);
            return Some(old);
        }
        if len == 0 {
            // Nothing left: unlink the whole tree (this leaf's path and the
            // spare's are all there is).
            st.spare_leaf = None;
            let root = self.root.load(Relaxed);
            self.root.store(ptr::null_mut(), Release);
            // SAFETY: just unlinked under the lock; never touched again.
            unsafe { Self::retire_subtree(root, retired) };
            return Some(old);
        }
        // The root is a leaf only when it holds every entry, so with entries
        // left this leaf has a parent.
        debug_assert!(last > 0);
        let base = index & !(SLOTS as u64 - 1);
        if let Some(prev) = st.spare_leaf.take() {
            if prev != base {
                self.release_spare(prev, retired, marks);
                // The release unlinks only nodes that hold nothing but the
                // old spare, so this leaf stays linked; walk again anyway, in
                // case the top changed under `path`.
                path = Path::new();
                let found = self.walk(index, &mut path);
                debug_assert!(found && std::ptr::eq(path.node(path.len - 1), leaf));
            }
        }
        if self.unlink_would_collapse(&path) {
            self.unlink_empty(&path, retired, marks);
        } else {
            st.spare_leaf = Some(base);
            Self::propagate(&path, path.len - 1, marks);
        }
        Some(old)
    }

    /// Whether unlinking the empty leaf at the end of `path` (and the
    /// ancestors it leaves empty) would let the tree lose a level: when the
    /// root would be left with its slot 0 alone.
    fn unlink_would_collapse(&self, path: &Path<S>) -> bool {
        // The highest node the unlink takes: ancestors holding only the leaf
        // go with it.
        let mut top = path.len - 1;
        // SAFETY: path nodes are live under the lock.
        while top > 1 && unsafe { (*path.node(top - 1)).count.load(Relaxed) } == 1 {
            top -= 1;
        }
        if top != 1 {
            return false; // the root keeps all of its children
        }
        // SAFETY: as above.
        let root = unsafe { &*path.node(0) };
        path.slot(0) != 0 && root.count.load(Relaxed) == 2 && !root.slot(0).load(Relaxed).is_null()
    }

    /// Unlinks the previous spare leaf, first index `base`, if it is still
    /// empty (it may have been refilled).
    fn release_spare(&self, base: u64, retired: &mut RetiredNodes, marks: bool) {
        let mut path = Path::new();
        // A spare stays reachable: only `unlink_empty` (on this path) and an
        // emptied tree remove a leaf, and a collapse keeps slot 0's subtree.
        if !self.walk(base, &mut path) {
            debug_assert!(false, "the spare leaf is not in the tree");
            return;
        }
        // SAFETY: path nodes are live under the lock.
        if unsafe { (*path.node(path.len - 1)).count.load(Relaxed) } == 0 {
            self.unlink_empty(&path, retired, marks);
        }
    }

    /// Unlinks the empty leaf at the end of `path` and the ancestors it
    /// leaves empty, fixes the summary bits above, and collapses the top.
    /// Writer lock held; the tree keeps other entries.
    fn unlink_empty(&self, path: &Path<S>, retired: &mut RetiredNodes, marks: bool) {
        let mut l = path.len - 1;
        // SAFETY: path nodes are live under the lock.
        while l > 0 && unsafe { (*path.node(l)).count.load(Relaxed) } == 0 {
            let parent = unsafe { &*path.node(l - 1) };
            let ps = path.slot(l - 1);
            parent.slot(ps).store(ptr::null_mut(), Release);
            parent.add_count(-1);
            parent.set_free(ps, true);
            if marks {
                for m in 0..MARKS {
                    parent.set_mark_bit(m, ps, false);
                }
            }
            // Just unlinked under the lock; never touched again.
            retired.push(path.node(l));
            l -= 1;
        }
        Self::propagate(path, l, marks);
        // SAFETY: path.node(0) is the live root.
        debug_assert!(unsafe { (*path.node(0)).count.load(Relaxed) } != 0);
        self.shrink(retired);
    }

    /// Hands every node of an unlinked subtree to `retired`.
    ///
    /// # Safety
    /// `n` was just unlinked under the writer lock (its subtree with it).
    unsafe fn retire_subtree(n: *mut Node<S>, retired: &mut RetiredNodes) {
        // SAFETY: unlinked but not yet retired, so live.
        let node = unsafe { &*n };
        if node.shift != 0 {
            for k in 0..SLOTS {
                let c = node.slot(k).load(Relaxed);
                if !c.is_null() {
                    // SAFETY: a child of an unlinked subtree.
                    unsafe { Self::retire_subtree(c.cast(), retired) };
                }
            }
        }
        retired.push(n);
    }

    /// Collapses top nodes that only use slot 0. Caller holds the writer lock.
    fn shrink(&self, retired: &mut RetiredNodes) {
        loop {
            let r = self.root.load(Relaxed);
            // SAFETY: writer lock held; the root is live and non-null here.
            let n = unsafe { &*r };
            if n.shift == 0 || n.count.load(Relaxed) != 1 {
                return;
            }
            let child = n.slot(0).load(Relaxed);
            if child.is_null() {
                return;
            }
            // Release: a reader that Acquires the new root also sees the child's
            // contents (published earlier by this writer, hence ordered before). The
            // old top keeps pointing at `child`, so readers standing on it stay right.
            self.root.store(child.cast(), Release);
            // The old top is now unreachable and never modified again.
            retired.push(r);
        }
    }

    /// Lowest free index in `start..=end`, counting indexes beyond the tree's
    /// capacity as free. Caller holds the writer lock and checked `start <= end`.
    fn find_free(&self, start: u64, end: u64) -> Option<u64> {
        let root = self.root.load(Relaxed);
        if root.is_null() {
            return Some(start);
        }
        // SAFETY: writer lock held; the root is live.
        let n = unsafe { &*root };
        let max = max_index(n.shift);
        if start <= max {
            if let Some(i) = Self::find_free_in(n, 0, start) {
                return (i <= end).then_some(i);
            }
            if max == u64::MAX {
                return None;
            }
        }
        let i = start.max(max + 1);
        (i <= end).then_some(i)
    }

    /// Lowest free index `>= start` below `node` (which covers indexes from `base`).
    /// Follows free bits: only the subtree containing `start` can fail, so each
    /// level costs at most two descents.
    fn find_free_in(node: &Node<S>, base: u64, start: u64) -> Option<u64> {
        let shift = node.shift;
        let first = if start <= base {
            0
        } else {
            ((start - base) >> shift) as u32
        };
        let mut bits = node.free.load(Relaxed) & (u64::MAX << first);
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let child_base = base + ((s as u64) << shift);
            let from = start.max(child_base);
            let c = node.slot(s).load(Relaxed);
            if c.is_null() {
                return Some(from);
            }
            if shift == 0 {
                continue; // cannot happen: a full leaf slot has its free bit clear
            }
            // SAFETY: writer lock held; reachable children are live.
            if let Some(i) = Self::find_free_in(unsafe { &*c.cast::<Node<S>>() }, child_base, from)
            {
                return Some(i);
            }
        }
        None
    }

    /// Stores `value` at the lowest free index in `range` and returns that index.
    ///
    /// # Errors
    /// [`AllocError::EmptyRange`] if `start > end`, [`AllocError::Full`] if every
    /// index of the range is used, [`AllocError::OutOfMemory`] if a node could not be
    /// allocated. The tree is unchanged on error.
    pub fn alloc(&self, value: Arc<T>, range: RangeInclusive<u64>) -> Result<u64, AllocError> {
        self.lock().alloc(value, range)
    }

    /// Takes the writer lock and returns it as a handle to write through (the
    /// kernel's `xa_lock()` followed by `__xa_alloc()`, `__xa_erase()`, ...).
    ///
    /// For a caller whose own updates must be atomic with the tree's: one lock
    /// covers both, instead of a caller mutex wrapping this tree's. Readers are
    /// not affected; they never take it.
    ///
    /// Pin *before* taking the lock when you will [`XaLock::remove`]: pinning
    /// may run expired deferred drops of values, and a `T::drop` that writes to
    /// this tree would then wait for the lock its own thread holds.
    pub fn lock(&self) -> XaLock<'_, T, W, S> {
        XaLock {
            xa: self,
            st: self.lock_state(),
        }
    }

    /// Like [`XArray::alloc`], but searches from just after the index the previous
    /// `alloc_cyclic` returned, wrapping around to `range.start` (ids are not reused
    /// soon; this is how memory cgroup ids are handed out).
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc_cyclic(
        &self,
        value: Arc<T>,
        range: RangeInclusive<u64>,
    ) -> Result<u64, AllocError> {
        let (start, end) = range.into_inner();
        if start > end {
            return Err(AllocError::EmptyRange);
        }
        // No pin, as in `alloc`.
        let mut value = Some(value);
        let mut st = self.lock_state();
        let next = st.next_cyclic;
        let from = if next < start || next > end {
            start
        } else {
            next
        };
        let id = match self.find_free(from, end) {
            Some(i) => i,
            None if from > start => self.find_free(start, from - 1).ok_or(AllocError::Full)?,
            None => return Err(AllocError::Full),
        };
        self.insert_locked(id, &mut value)?;
        st.next_cyclic = id.wrapping_add(1);
        drop(st);
        Ok(id)
    }

    /// Sets `mark` on the entry at `index`; `false` if there is no entry there.
    pub fn set_mark(&self, index: u64, mark: Mark) -> bool {
        self.change_mark(index, mark, true)
    }

    /// Clears `mark` on the entry at `index`; `false` if there is no entry there.
    pub fn clear_mark(&self, index: u64, mark: Mark) -> bool {
        self.change_mark(index, mark, false)
    }

    fn change_mark(&self, index: u64, mark: Mark, on: bool) -> bool {
        let mut st = self.lock_state();
        // Set before the walk: a mark may only exist once the flag says so.
        st.marks_used |= on;
        let mut path = Path::new();
        if !self.walk(index, &mut path) {
            return false;
        }
        let last = path.len - 1;
        // SAFETY: writer lock held; path nodes are live.
        let leaf = unsafe { &*path.node(last) };
        let s = path.slot(last);
        if leaf.slot(s).load(Relaxed).is_null() {
            return false;
        }
        // Leaf first, then ancestors: a reader never finds a parent bit whose subtree
        // was never marked.
        leaf.set_mark_bit(mark.idx(), s, on);
        Self::propagate(&path, last, true);
        true
    }
}

impl<T: Send + Sync + 'static, W: Send, const S: usize> Drop for XArray<T, W, S> {
    fn drop(&mut self) {
        let root = self.root.load(Relaxed);
        if root.is_null() {
            return;
        }
        self.root.store(ptr::null_mut(), Relaxed);
        let guard = pin();
        let root = root as usize;
        // SAFETY: the tree is unreachable from `self` now; references handed out by
        // `load`/`iter` are bound to guards, not to `&self`, and may outlive it, so the
        // whole tree is freed after a grace period (tests: `drop_frees_every_value`,
        // tests/stress.rs drop counting).
        unsafe {
            guard.defer_unchecked(move || free_subtree::<T, S>(root as *mut Node<S>));
        }
        guard.flush();
    }
}

/// Frees a node, its descendants and the tree's strong counts of the values below.
///
/// # Safety
/// `p` is an unreachable subtree no reader can still be using.
unsafe fn free_subtree<T, const S: usize>(p: *mut Node<S>) {
    // SAFETY: by the contract, we own the subtree exclusively.
    let n = unsafe { Box::from_raw(p) };
    for slot in &n.slots {
        let c = slot[0].load(Relaxed);
        if c.is_null() {
            continue;
        }
        if n.shift == 0 {
            // SAFETY: leaf slots hold the tree's `Arc::into_raw` count.
            drop(unsafe { Arc::from_raw(c.cast_const().cast::<T>()) });
        } else {
            // SAFETY: interior slots hold owned child nodes.
            unsafe { free_subtree::<T, S>(c.cast()) };
        }
    }
}

/// Ascending iterator over `(index, &value)` pairs; see [`XArray::iter`].
pub struct Iter<'g, T, const S: usize = 1> {
    root: *const Node<S>,
    next: u64,
    done: bool,
    mark: Option<usize>,
    _marker: PhantomData<(&'g Guard, &'g T)>,
}

/// Ascending iterator over the marked entries; see [`XArray::iter_marked`].
pub struct IterMarked<'g, T, const S: usize = 1>(Iter<'g, T, S>);

/// Next present (and, with `mark`, marked) entry with index `>= start` under `node`,
/// which covers indexes from `base`. Reader side: runs pinned.
fn next_entry<const S: usize>(
    node: &Node<S>,
    shift: u32,
    base: u64,
    start: u64,
    mark: Option<usize>,
) -> Option<(u64, *const ())> {
    let first = if start <= base {
        0
    } else {
        ((start - base) >> shift) as u32
    };
    let avail = match mark {
        Some(m) => node.marks[m].load(Relaxed),
        None => valid_mask(shift),
    };
    let mut bits = avail & (u64::MAX << first);
    while bits != 0 {
        let s = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        // Acquire: pairs with the Release publication of the child / value.
        let p = node.slot(s).load(Acquire);
        if p.is_null() {
            continue;
        }
        let child_base = base + ((s as u64) << shift);
        if shift == 0 {
            return Some((child_base, p));
        }
        // SAFETY: the caller is pinned; nodes reachable (even via retired nodes) are
        // freed only after a grace period (loom_xarray `iter_vs_grow`).
        let child = unsafe { &*p.cast::<Node<S>>() };
        let child_shift = shift - CHUNK_SHIFT;
        if let Some(r) = next_entry(child, child_shift, child_base, start.max(child_base), mark) {
            return Some(r);
        }
    }
    None
}

impl<'g, T, const S: usize> Iterator for Iter<'g, T, S> {
    type Item = (u64, &'g T);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.root.is_null() {
            return None;
        }
        // SAFETY: the root snapshot is kept alive by the guard ('g) we were built with.
        let root = unsafe { &*self.root };
        if self.next > max_index(root.shift) {
            self.done = true;
            return None;
        }
        match next_entry(root, root.shift, 0, self.next, self.mark) {
            Some((i, p)) => {
                match i.checked_add(1) {
                    Some(n) => self.next = n,
                    None => self.done = true,
                }
                // SAFETY: leaf slots hold `Arc::into_raw` pointers whose tree count
                // is dropped only after the guard ('g) unpins.
                Some((i, unsafe { &*p.cast::<T>() }))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl<T, const S: usize> FusedIterator for Iter<'_, T, S> {}

impl<'g, T, const S: usize> Iterator for IterMarked<'g, T, S> {
    type Item = (u64, &'g T);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl<T, const S: usize> FusedIterator for IterMarked<'_, T, S> {}

/// A value just unlinked by [`XaLock::take`], still holding the tree's
/// reference, with the nodes the erase unlinked. Readers pinned before the
/// unlink may still use both, so neither may be freed before a grace period.
/// Dropping an `Unlinked` (or [`Unlinked::defer_drop`]) defers both by a
/// grace period, as [`XaLock::remove`] does; only the `unsafe`
/// [`Unlinked::into_arc`] hands the reference over without one.
#[must_use = "dropping it pins to defer the drop of the tree's reference"]
pub struct Unlinked<T: Send + Sync + 'static> {
    value: Option<Arc<T>>,
    nodes: RetiredNodes,
}

impl<T: Send + Sync + 'static> Unlinked<T> {
    /// The value.
    pub fn get(&self) -> &T {
        self.value.as_deref().expect("present until consumed")
    }

    /// Drops the tree's reference, and frees the unlinked nodes, after a
    /// grace period of `guard`'s collector.
    ///
    /// # Panics
    /// If `guard` is not pinned on crossbeam-epoch's default collector.
    pub fn defer_drop(mut self, guard: &Guard) {
        assert!(
            guard.collector().is_some(),
            "unishrink_xarray: Unlinked::defer_drop needs a pinned guard"
        );
        check_guard(guard);
        std::mem::replace(&mut self.nodes, RetiredNodes::EMPTY).defer(guard);
        let p = Arc::into_raw(self.value.take().expect("present until consumed"));
        // SAFETY: `p` is from `Arc::into_raw` and carries one count, the tree's,
        // which readers may still rely on until they unpin.
        unsafe { XArray::<T>::defer_tree_drop(p, guard) };
    }

    /// The tree's reference, to drop whenever the caller likes, and the
    /// unlinked nodes, which still need a grace period ([`RetiredNodes`]).
    ///
    /// # Safety
    /// The value must not be freed before every thread that was pinned when
    /// it was unlinked has unpinned: the caller keeps another reference that
    /// it gives up only after such a grace period (for instance once a
    /// function it deferred after the unlink has run).
    pub unsafe fn into_arc(mut self) -> (Arc<T>, RetiredNodes) {
        let nodes = std::mem::replace(&mut self.nodes, RetiredNodes::EMPTY);
        (self.value.take().expect("present until consumed"), nodes)
    }
}

impl<T: Send + Sync + 'static> Drop for Unlinked<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            let nodes = std::mem::replace(&mut self.nodes, RetiredNodes::EMPTY);
            Unlinked {
                value: Some(value),
                nodes,
            }
            .defer_drop(&pin());
        }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Unlinked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unlinked")
            .field("nodes", &self.nodes.nodes.len())
            .finish_non_exhaustive()
    }
}

/// Tree nodes a writer unlinked, to be freed after a grace period: an erase
/// unlinks the nodes it empties and the top nodes it collapses. Usually
/// there are none. [`RetiredNodes::defer`] retires them; dropping the value
/// does the same with a guard of its own (a pin; see [`XArray::lock`] on
/// pinning while holding the lock).
#[must_use = "dropping it pins to retire the nodes"]
pub struct RetiredNodes {
    /// Empty, hence unallocated, in the usual case: the value is moved
    /// around on every erase and must stay small.
    nodes: Vec<RetiredNode>,
}

/// An unlinked node, its spacing erased (so that [`RetiredNodes`] and
/// [`Unlinked`] need no parameter for it): where it is and how to free it.
struct RetiredNode {
    node: *mut u8,
    destroy: unsafe fn(*mut u8),
}

/// Frees a node of spacing `S`.
///
/// # Safety
/// `p` is a `Node<S>` from `alloc_node` that no reader can still reach.
unsafe fn destroy_node<const S: usize>(p: *mut u8) {
    // SAFETY: by the contract; `alloc_node` used the global allocator and
    // `Node<S>`'s layout, as `Box` does.
    drop(unsafe { Box::from_raw(p.cast::<Node<S>>()) });
}

// SAFETY: the nodes are unlinked and owned by this value alone; they are
// only ever handed to the epoch collector, from whichever thread.
unsafe impl Send for RetiredNodes {}

impl RetiredNodes {
    const EMPTY: RetiredNodes = RetiredNodes { nodes: Vec::new() };

    fn push<const S: usize>(&mut self, n: *mut Node<S>) {
        self.nodes.push(RetiredNode {
            node: n.cast(),
            destroy: destroy_node::<S>,
        });
    }

    /// Whether there is nothing to retire (the usual case).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Frees the nodes after a grace period of `guard`'s collector.
    ///
    /// # Panics
    /// If there are nodes and `guard` is not pinned on crossbeam-epoch's
    /// default collector.
    pub fn defer(mut self, guard: &Guard) {
        if self.nodes.is_empty() {
            return;
        }
        assert!(
            guard.collector().is_some(),
            "unishrink_xarray: RetiredNodes::defer needs a pinned guard"
        );
        check_guard(guard);
        for RetiredNode { node, destroy } in self.nodes.drain(..) {
            let node = node as usize;
            // SAFETY: each node was unlinked under the writer lock and is
            // never touched by a writer again; readers that found it before
            // the unlink are pinned, so the epoch scheme frees it only after
            // they unpin (loom_xarray, ASan stress test).
            unsafe { guard.defer_unchecked(move || destroy(node as *mut u8)) };
        }
    }
}

impl Default for RetiredNodes {
    /// None.
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Drop for RetiredNodes {
    fn drop(&mut self) {
        if !self.nodes.is_empty() {
            std::mem::take(self).defer(&pin());
        }
    }
}

impl fmt::Debug for RetiredNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetiredNodes")
            .field("len", &self.nodes.len())
            .finish()
    }
}

/// The writer lock of an [`XArray`], held: see [`XArray::lock`]. Writes made
/// through it are serialized with every other writer of the tree; lock-free
/// readers see them exactly as they see the unlocked methods' writes.
pub struct XaLock<'a, T: Send + Sync + 'static, W: Send = (), const S: usize = 1> {
    xa: &'a XArray<T, W, S>,
    st: MutexGuard<'a, WriterState<W>>,
}

impl<T: Send + Sync + 'static, W: Send, const S: usize> fmt::Debug for XaLock<'_, T, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XaLock")
            .field("len", &self.xa.len())
            .finish()
    }
}

impl<'a, T: Send + Sync + 'static, W: Send, const S: usize> XaLock<'a, T, W, S> {
    /// The caller's state that this lock guards (see [`XArray::with_state`]).
    pub fn state(&mut self) -> &mut W {
        &mut self.st.user
    }

    /// Looks `index` up without an epoch guard. The reference lives as long as
    /// this borrow of the lock: a value is unlinked only under the lock, and
    /// freed only after it was unlinked.
    pub fn load(&self, index: u64) -> Option<&T> {
        let p = self.xa.lookup(index).cast::<T>();
        // SAFETY: we hold the writer lock, so no node or value reachable now can
        // be unlinked (hence retired, hence freed) until this borrow ends.
        unsafe { p.as_ref() }
    }

    /// [`XArray::alloc`] under the held lock.
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc(&mut self, value: Arc<T>, range: RangeInclusive<u64>) -> Result<u64, AllocError> {
        let (start, end) = range.into_inner();
        if start > end {
            return Err(AllocError::EmptyRange);
        }
        // No pin: an allocation retires nothing, and under the writer lock no
        // node can be freed. (A writer's pins are not free for readers: each
        // one may trigger a collection that reads their epoch slots.)
        let mut value = Some(value);
        if start == 0 {
            if let Some(id) = self.xa.alloc_from_zero(&mut value, end) {
                return Ok(id);
            }
        }
        let id = self.xa.find_free(start, end).ok_or(AllocError::Full)?;
        let old = self.xa.insert_locked(id, &mut value)?;
        debug_assert!(old.is_null());
        Ok(id)
    }

    /// [`XArray::remove`] under the held lock: unlinks the entry at `index` and
    /// drops the tree's count of it after a grace period of `guard`'s collector.
    /// Returns whether there was one.
    ///
    /// # Panics
    /// If `guard` is not pinned on crossbeam-epoch's default collector (an
    /// unprotected guard would free at once, under readers' feet).
    pub fn remove(&mut self, index: u64, guard: &Guard) -> bool {
        assert!(
            guard.collector().is_some(),
            "unishrink_xarray: XaLock::remove needs a pinned guard"
        );
        check_guard(guard);
        let mut retired = RetiredNodes::EMPTY;
        let old = self.xa.erase_locked(index, &mut retired, &mut self.st);
        retired.defer(guard);
        let Some(old) = old else {
            return false;
        };
        // SAFETY: `old` was unlinked under the lock; from `Arc::into_raw`.
        unsafe { XArray::<T, W>::defer_tree_drop(old, guard) };
        true
    }

    /// Unlinks the entry at `index` and hands the tree's reference to the
    /// caller as an [`Unlinked`], which carries the duty `remove` fulfils
    /// itself: not to free the value, nor the nodes the erase unlinked, before
    /// a grace period. For a caller that tracks grace periods of its own (one
    /// deferred function for a batch of unlinked values instead of one per
    /// value) and that wants no pin at all in the common case: unlike
    /// `remove`, `take` needs no guard.
    pub fn take(&mut self, index: u64) -> Option<Unlinked<T>> {
        let mut nodes = RetiredNodes::EMPTY;
        let old = self.xa.erase_locked(index, &mut nodes, &mut self.st);
        let Some(old) = old else {
            // Nothing erased, nothing unlinked.
            debug_assert!(nodes.is_empty());
            return None;
        };
        // SAFETY: `old` came from `Arc::into_raw` and carries the tree's count,
        // which we adopt; it is unlinked, so the tree will not drop it again.
        let value = unsafe { Arc::from_raw(old) };
        Some(Unlinked {
            value: Some(value),
            nodes,
        })
    }

    /// Number of entries (exact: no writer can run meanwhile).
    pub fn len(&self) -> usize {
        self.xa.len()
    }

    /// `true` if the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.xa.is_empty()
    }
}

#[cfg(test)]
mod tests;
