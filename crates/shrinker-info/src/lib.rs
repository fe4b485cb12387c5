//! Per-(memcg, node) `shrinker_info`: one "may have objects here" bit and one
//! `nr_deferred` counter per shrinker id, allocated lazily, grown by pointer
//! swap, read and written without locks.
//!
//! This crate knows nothing about shrinkers or cgroups; a [`ShrinkerInfo`] is
//! just a growable, concurrent map from ids `0..map_nr_max` to
//! `(bit, counter)`.
//!
//! # Concepts
//!
//! **Units.** Ids are grouped in *units* of [`UNIT_BITS`] (64) consecutive ids.
//! A unit is one `AtomicU64` bitmap word plus a pointer to a block of 64
//! `AtomicU64` `nr_deferred` counters. A unit is allocated the first time one
//! of its ids gets a bit ([`ShrinkerInfo::set_bit`]) or a non-zero deferred
//! count ([`ShrinkerInfo::add_nr_deferred`]); its counter block is allocated
//! only on the first non-zero add. Memory therefore follows the
//! `(memcg, shrinker)` pairs actually used: an info with `map_nr_max` 10,000
//! and two bits set costs about 1.4 KB (one pointer per unit, 8 bytes per 64
//! ids, plus two 16-byte units), where the kernel's eager layout costs 80 KB.
//!
//! **The array.** The *published array* has one slot per unit (a pointer,
//! null = absent unit) and a two-level *summary*: level 1 has one bit per unit
//! ("this unit may have set bits"), level 2 one bit per level-1 word ("this
//! level-1 word may be non-zero"). A walk ([`ShrinkerInfo::iter_set_bits`])
//! scans the level-2 words, then only the flagged level-1 words, then only the
//! flagged units, so its cost follows the number of set bits rather than
//! `map_nr_max`: at 262,144 ids (4,096 units) the fixed part of a walk is a
//! single level-2 word. Summary bits are *conservative*: a set summary bit may
//! cover an empty unit (walks clean those lazily), but a unit with a set bit
//! always has its summary bits set, in every array it can be found through.
//!
//! **Ownership.** Units are owned by the [`ShrinkerInfo`], not by an array,
//! and are freed only when the info is dropped. [`ShrinkerInfo::expand`]
//! builds a bigger array that copies the unit *pointers* of the current one,
//! publishes it with a single pointer swap ([`arc_swap::ArcSwap`]), and lets
//! the old array go when its last reader drops it. Because old and new arrays
//! share the units, a bit set or a counter added through an old array is
//! never lost.
//!
//! **Writers.** Unit installation and expansion are serialized by a small
//! mutex inside the info (they are rare). Everything else is lock-free: the
//! `set_bit` fast path (unit present) is a fence and a few atomic RMWs,
//! `test_bit`/`nr_deferred` are plain loads, walks take no lock at all.
//! Unit installation always goes into the *current* array, re-loaded under
//! the mutex, so a concurrent expansion (which copies under the same mutex)
//! can never drop a freshly installed unit.
//!
//! # The summary protocol and why no bit is lost
//!
//! The argument below uses only `SeqCst` *fences*, coherence and the
//! atomicity of read-modify-writes, never the global order of `SeqCst`
//! loads/stores: that makes it checkable by loom (which models `SeqCst`
//! accesses as acquire/release but models `SeqCst` fences exactly). There are
//! three actors:
//!
//! * **set_bit(id)**: `fence` (the barrier `set_shrinker_bit` needs, see
//!   below); `unit.word |= bit`; `fence`; *mark* the unit in the array it
//!   used; then re-load the current array and, while it differs from the one
//!   last marked, mark it too. *Mark* = if the level-1 bit is already set,
//!   stop (whoever set it also handles level 2); else set it, `fence`, and set
//!   the level-2 bit if it is clear.
//! * **expand** builds the new summary conservatively (a summary bit for
//!   every non-null unit, whatever its word says), publishes it, then
//!   `fence`.
//! * **walk**: on a level-1 bit whose unit word reads 0 it clears the level-1
//!   bit, `fence`, re-reads the word, and if it became non-zero it marks the
//!   unit again (levels 1 and 2). On a level-2 bit whose level-1 word reads 0
//!   it does the same one level up (clear, `fence`, re-read, restore).
//!
//! *Store-buffering argument.* Take a setter that writes the word (`W`),
//! fences (`F_s`) and then reads a summary bit (`L`), and a walker that clears
//! that summary bit (`C`), fences (`F_w`) and re-reads the word (`R`). The two
//! fences are ordered: if `F_s` comes first, `R` sees `W` and the walker
//! restores the bit; if `F_w` comes first, `L` sees `C` (bit clear), so the
//! setter writes the bit after the clear and it survives. Either way the
//! summary ends up covering the set word. The same argument applies between
//! levels 1 and 2, with the level-1 word in the role of the unit word; a
//! walker that *restores* a level-1 bit behaves as a setter for level 2.
//!
//! *Growth argument.* A walker of the *new* array `B` may clear a summary bit
//! before the setter's `W`, while the setter marked only the *old* array `A`.
//! The expander's fence after publishing `B` happens before the walker's
//! fence (the walker obtained `B` through the publication), so if `F_w`
//! precedes `F_s` the setter's re-load, which follows `F_s`, sees `B` or a
//! newer array and marks it; if `F_s` precedes `F_w`, `R` sees `W` as above.
//! A set made through a retired array is thus propagated to every array a
//! later walk can start from. Arrays published after the setter's unit was
//! installed get the unit's summary bit at construction.
//!
//! # `set_bit` and SHRINK_EMPTY
//!
//! [`ShrinkerInfo::set_bit`] issues a full `SeqCst` fence *before* setting the
//! bit. A cache does "add object; set_bit"; the walker, seeing an empty count,
//! does "clear_bit; fence(SeqCst); count again; if non-zero set_bit". The two
//! fences forbid the store-buffering outcome where the cache's `set_bit` is
//! overwritten by the clear while the walker's re-count misses the new object.
//! (Here the word updates are themselves ordered read-modify-writes, which
//! already order this particular race; the fence is what the
//! `set_shrinker_bit` contract promises callers, and it keeps the protocol
//! correct for a set that finds its bit already set. The loom model
//! `shrink_empty_no_lost_bit` fails if `set_bit` skips an already-set bit
//! without the fence.)
//!
//! # Memory-allocation failure
//!
//! Growth and unit/counter allocation are fallible
//! ([`InfoError::OutOfMemory`]): arrays are built with
//! `Vec::try_reserve_exact`, units and counter blocks with `std::alloc::alloc`
//! plus a null check. On failure nothing has been published, so the previous
//! array, bits and counters stay intact. (The fixed-size `Arc` header of an
//! array, about 80 bytes, uses the infallible `Arc::new`: there is no stable
//! fallible `Arc` constructor.) With the cargo feature `fault-injection` (and
//! in this crate's unit tests) each info has a "fail the next N allocations"
//! hook, `ShrinkerInfo::fail_next_allocations`; it is per info, not global.
//!
//! # Loom
//!
//! `arc-swap` has no loom support, so under `cfg(loom)` the array is published
//! through a loom `AtomicPtr` and replaced arrays go on a *retire list* that
//! is freed when the info is dropped (a stand-in for arc-swap's deferred
//! reclamation: it never frees early, so the models check the bit protocol,
//! not reclamation, which arc-swap owns). All protocol atomics and the mutex
//! come from the `sync` facade; see `tests/loom_info.rs`.
//!
//! # Example
//!
//! ```
//! use unishrink_shrinker_info::{InfoError, ShrinkerInfo};
//!
//! let info = ShrinkerInfo::new(100)?; // rounded up to 128 ids
//! assert_eq!(info.map_nr_max(), 128);
//! info.set_bit(3)?;
//! info.set_bit(70)?;
//! info.expand(10_000)?; // bits survive growth
//! info.set_bit(9_000)?;
//! assert_eq!(info.iter_set_bits().collect::<Vec<_>>(), vec![3, 70, 9_000]);
//!
//! info.add_nr_deferred(70, 5)?;
//! assert_eq!(info.xchg_nr_deferred(70), 5);
//! assert_eq!(info.nr_deferred(70), 0);
//!
//! assert_eq!(
//!     info.set_bit(20_000),
//!     Err(InfoError::IdOutOfRange { id: 20_000, map_nr_max: 10_048 })
//! );
//! # Ok::<(), InfoError>(())
//! ```

mod sync;

use std::alloc::{alloc, dealloc, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr;
#[cfg(not(loom))]
use std::sync::Arc;

use sync::{fence, AtomicPtr, AtomicU64, Mutex, MutexGuard, Ordering::SeqCst};

#[cfg(not(loom))]
use arc_swap::ArcSwap;

/// Number of shrinker ids per unit (and per bitmap word).
pub const UNIT_BITS: usize = 64;

/// Errors returned by [`ShrinkerInfo`] operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    /// `id` is not below the info's current capacity `map_nr_max`.
    IdOutOfRange {
        /// The offending id.
        id: usize,
        /// The capacity at the time of the call.
        map_nr_max: usize,
    },
    /// An allocation failed (or the requested capacity cannot be represented).
    /// Nothing was changed.
    OutOfMemory,
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::IdOutOfRange { id, map_nr_max } => {
                write!(f, "shrinker id {id} out of range (map_nr_max {map_nr_max})")
            }
            InfoError::OutOfMemory => f.write_str("out of memory for shrinker_info"),
        }
    }
}

impl std::error::Error for InfoError {}

/// Block of per-id deferred counters of one unit.
type Counters = [AtomicU64; UNIT_BITS];

/// 64 ids: the bitmap word and the lazily allocated counter block.
struct Unit {
    word: AtomicU64,
    /// Null until the first non-zero `add_nr_deferred`; installed by CAS.
    counters: AtomicPtr<Counters>,
}

/// One published array: unit slots plus the two summary levels.
struct Array {
    /// Capacity in ids, a multiple of `UNIT_BITS`.
    nr_max: usize,
    /// One slot per unit; the pointees are owned by the `ShrinkerInfo`.
    units: Box<[AtomicPtr<Unit>]>,
    /// Level 1: one bit per unit.
    l1: Box<[AtomicU64]>,
    /// Level 2: one bit per level-1 word.
    l2: Box<[AtomicU64]>,
}

fn try_atomic_vec<T>(n: usize, mut mk: impl FnMut(usize) -> T) -> Result<Box<[T]>, InfoError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| InfoError::OutOfMemory)?;
    for i in 0..n {
        v.push(mk(i));
    }
    Ok(v.into_boxed_slice())
}

impl Array {
    /// Builds an array of `nr_max` ids (a multiple of 64) reusing the units of
    /// `old`, with a conservative summary (bit set for every present unit).
    /// `info` supplies the fault-injection hook (`None` while constructing).
    fn try_new(
        nr_max: usize,
        old: Option<&Array>,
        info: Option<&ShrinkerInfo>,
    ) -> Result<Array, InfoError> {
        let fault = || info.map_or(Ok(()), ShrinkerInfo::inject_fault);
        let nunits = nr_max / UNIT_BITS;
        let nl1 = nunits.div_ceil(UNIT_BITS);
        let nl2 = nl1.div_ceil(UNIT_BITS);
        let old_units = old.map_or(0, |a| a.units.len());
        fault()?;
        let units = try_atomic_vec(nunits, |u| {
            let p = if u < old_units {
                old.map_or(ptr::null_mut(), |a| a.units[u].load(SeqCst))
            } else {
                ptr::null_mut()
            };
            AtomicPtr::new(p)
        })?;
        fault()?;
        let l1 = try_atomic_vec(nl1, |w| {
            let mut bits = 0u64;
            for (b, slot) in units.iter().skip(w * UNIT_BITS).take(UNIT_BITS).enumerate() {
                if !slot.load(SeqCst).is_null() {
                    bits |= 1 << b;
                }
            }
            AtomicU64::new(bits)
        })?;
        fault()?;
        let l2 = try_atomic_vec(nl2, |w| {
            let mut bits = 0u64;
            for (b, word) in l1.iter().skip(w * UNIT_BITS).take(UNIT_BITS).enumerate() {
                if word.load(SeqCst) != 0 {
                    bits |= 1 << b;
                }
            }
            AtomicU64::new(bits)
        })?;
        Ok(Array {
            nr_max,
            units,
            l1,
            l2,
        })
    }

    /// Heap bytes of this array's slices plus its (Arc or Box) header.
    fn bytes(&self) -> usize {
        #[cfg(not(loom))]
        let header = std::mem::size_of::<Array>() + 2 * std::mem::size_of::<usize>();
        #[cfg(loom)]
        let header = std::mem::size_of::<Array>();
        header
            + std::mem::size_of_val(&*self.units)
            + std::mem::size_of_val(&*self.l1)
            + std::mem::size_of_val(&*self.l2)
    }

    fn unit_ptr(&self, u: usize) -> *mut Unit {
        self.units
            .get(u)
            .map_or(ptr::null_mut(), |s| s.load(SeqCst))
    }

    /// Sets the summary bits of unit `u`. The caller has issued a `SeqCst`
    /// fence after its own write below (unit word or level-1 bit restore).
    ///
    /// If the level-1 bit is already set, nothing is written: whoever set it
    /// is responsible for level 2 (and a walker that clears it re-reads the
    /// word after a fence, so it sees our write). Otherwise set it, fence,
    /// and do the same for level 2. See the crate docs for the argument.
    fn mark(&self, u: usize) {
        let (w1, b1) = (u / UNIT_BITS, 1u64 << (u % UNIT_BITS));
        if self.l1[w1].load(SeqCst) & b1 != 0 {
            return;
        }
        self.l1[w1].fetch_or(b1, SeqCst);
        fence(SeqCst);
        let (w2, b2) = (w1 / UNIT_BITS, 1u64 << (w1 % UNIT_BITS));
        if self.l2[w2].load(SeqCst) & b2 == 0 {
            self.l2[w2].fetch_or(b2, SeqCst);
        }
    }

    /// Walker side: unit `u` looked empty. Clear its level-1 bit, fence,
    /// re-read the word and restore if a setter raced; returns the re-read
    /// word.
    fn clear_unit_summary(&self, u: usize, unit: &Unit) -> u64 {
        let (w1, b1) = (u / UNIT_BITS, 1u64 << (u % UNIT_BITS));
        let prev = self.l1[w1].fetch_and(!b1, SeqCst);
        fence(SeqCst);
        let word = unit.word.load(SeqCst);
        if word != 0 {
            self.mark(u);
        } else if prev & !b1 == 0 {
            self.clear_l1_summary(w1);
        }
        word
    }

    /// Walker side: level-1 word `w1` looked empty. Same dance one level up.
    fn clear_l1_summary(&self, w1: usize) -> u64 {
        let (w2, b2) = (w1 / UNIT_BITS, 1u64 << (w1 % UNIT_BITS));
        self.l2[w2].fetch_and(!b2, SeqCst);
        fence(SeqCst);
        let word = self.l1[w1].load(SeqCst);
        if word != 0 {
            self.l2[w2].fetch_or(b2, SeqCst);
        }
        word
    }
}

/// A reference to a published array, valid while the info is borrowed.
struct ArrayRef<'a> {
    #[cfg(not(loom))]
    guard: arc_swap::Guard<Arc<Array>>,
    #[cfg(loom)]
    guard: &'a Array,
    _info: PhantomData<&'a ShrinkerInfo>,
}

impl Deref for ArrayRef<'_> {
    type Target = Array;
    fn deref(&self) -> &Array {
        &self.guard
    }
}

impl ArrayRef<'_> {
    fn same(&self, other: &ArrayRef<'_>) -> bool {
        ptr::eq::<Array>(&**self, &**other)
    }
}

/// Publication of the current array: arc-swap, or (loom) AtomicPtr + retire list.
struct Published {
    #[cfg(not(loom))]
    cur: ArcSwap<Array>,
    #[cfg(loom)]
    cur: AtomicPtr<Array>,
}

/// State protected by the info's mutex.
struct Locked {
    /// Loom only: replaced arrays, freed in `Drop`.
    #[cfg(loom)]
    retired: Vec<*mut Array>,
}

// SAFETY: `retired` (loom builds only) holds uniquely owned `Box<Array>`
// pointers; `Array` is itself `Send`, so moving the list between threads is
// sound. Exercised by every model of tests/loom_info.rs that expands.
#[cfg(loom)]
unsafe impl Send for Locked {}

/// The per-(memcg, node) shrinker bitmap and `nr_deferred` counters.
///
/// See the [crate documentation](crate) for the protocol. All methods take
/// `&self` and may be called concurrently from any number of threads.
pub struct ShrinkerInfo {
    array: Published,
    /// Serializes unit installation and expansion.
    lock: Mutex<Locked>,
    /// Bytes of units and counter blocks (arrays are measured on demand).
    unit_bytes: std::sync::atomic::AtomicUsize,
    #[cfg(any(test, feature = "fault-injection"))]
    fail_next: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for ShrinkerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShrinkerInfo")
            .field("map_nr_max", &self.map_nr_max())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

fn round_up(n: usize) -> Result<usize, InfoError> {
    n.div_ceil(UNIT_BITS)
        .checked_mul(UNIT_BITS)
        .ok_or(InfoError::OutOfMemory)
}

const fn unit_layout() -> Layout {
    Layout::new::<Unit>()
}

const fn counters_layout() -> Layout {
    Layout::new::<Counters>()
}

impl ShrinkerInfo {
    /// Creates an info for ids `0..map_nr_max`, rounded up to a multiple of
    /// [`UNIT_BITS`]. Allocates the array (one pointer per 64 ids) but no units.
    pub fn new(map_nr_max: usize) -> Result<Self, InfoError> {
        let nr_max = round_up(map_nr_max)?;
        let arr = Array::try_new(nr_max, None, None)?;
        Ok(ShrinkerInfo {
            #[cfg(not(loom))]
            array: Published {
                cur: ArcSwap::from_pointee(arr),
            },
            #[cfg(loom)]
            array: Published {
                cur: AtomicPtr::new(Box::into_raw(Box::new(arr))),
            },
            lock: Mutex::new(Locked {
                #[cfg(loom)]
                retired: Vec::new(),
            }),
            unit_bytes: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(any(test, feature = "fault-injection"))]
            fail_next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Fault injection: make the next `n` allocations of this info fail with
    /// [`InfoError::OutOfMemory`] (array slices, units, counter blocks). Only
    /// with the cargo feature `fault-injection` (or in unit tests).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_allocations(&self, n: usize) {
        self.fail_next.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(any(test, feature = "fault-injection"))]
    fn inject_fault(&self) -> Result<(), InfoError> {
        use std::sync::atomic::Ordering::SeqCst as S;
        // A successful decrement means "this allocation fails".
        match self.fail_next.fetch_update(S, S, |n| n.checked_sub(1)) {
            Ok(_) => Err(InfoError::OutOfMemory),
            Err(_) => Ok(()),
        }
    }

    #[cfg(not(any(test, feature = "fault-injection")))]
    #[inline(always)]
    fn inject_fault(&self) -> Result<(), InfoError> {
        Ok(())
    }

    #[inline]
    fn load(&self) -> ArrayRef<'_> {
        #[cfg(not(loom))]
        {
            ArrayRef {
                guard: self.array.cur.load(),
                _info: PhantomData,
            }
        }
        #[cfg(loom)]
        {
            let p = self.array.cur.load(SeqCst);
            // SAFETY: arrays are published non-null from `new` on and are
            // freed only in `Drop` (retire list), which needs `&mut self`;
            // the returned reference borrows `self`. Checked by
            // tests/loom_info.rs (every model walks while another expands).
            ArrayRef {
                guard: unsafe { &*p },
                _info: PhantomData,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        // The lock protects no invariant a panic could break half-way.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unit behind a non-null slot pointer, borrowed from `self`.
    fn unit(&self, p: *mut Unit) -> Option<&Unit> {
        // SAFETY: unit pointers come only from `install_unit`, which
        // initializes them fully before publishing; units are freed only in
        // `Drop` (exclusive access), so they outlive `&self`. Checked by
        // tests/stress.rs under AddressSanitizer and tests/loom_info.rs.
        unsafe { p.as_ref() }
    }

    /// The current capacity in ids (a multiple of [`UNIT_BITS`]).
    pub fn map_nr_max(&self) -> usize {
        self.load().nr_max
    }

    /// Grows the capacity to at least `new_nr_max` ids (rounded up to a
    /// multiple of [`UNIT_BITS`]). A no-op if that is not larger than the
    /// current capacity. On failure the current array, bits and counters are
    /// left intact.
    pub fn expand(&self, new_nr_max: usize) -> Result<(), InfoError> {
        let nr_max = round_up(new_nr_max)?;
        let mut locked = self.lock();
        let cur = self.load();
        if nr_max <= cur.nr_max {
            return Ok(());
        }
        let arr = Array::try_new(nr_max, Some(&cur), Some(self))?;
        drop(cur);
        #[cfg(not(loom))]
        {
            let _ = &mut locked;
            self.array.cur.store(Arc::new(arr));
        }
        #[cfg(loom)]
        {
            let old = self.array.cur.swap(Box::into_raw(Box::new(arr)), SeqCst);
            locked.retired.push(old);
        }
        // Pairs with the fence in `set_bit` before its re-load: a setter
        // racing a walker of the new array must see the new array.
        fence(SeqCst);
        Ok(())
    }

    /// Returns the unit for slot `u`, installing it in the current array if
    /// absent. (`u` is valid in the current array whenever it was valid in
    /// any published one: capacity only grows.)
    fn install_unit(&self, u: usize) -> Result<&Unit, InfoError> {
        let _locked = self.lock();
        // Re-load under the lock: expansion copies slots under the same lock,
        // so installing into the current array can't be lost by a growth.
        let cur = self.load();
        let slot = cur.units.get(u).ok_or(InfoError::IdOutOfRange {
            id: u * UNIT_BITS,
            map_nr_max: cur.nr_max,
        })?;
        if let Some(unit) = self.unit(slot.load(SeqCst)) {
            return Ok(unit);
        }
        self.inject_fault()?;
        // SAFETY: `Unit` has non-zero size; the result is checked for null.
        let p = unsafe { alloc(unit_layout()) }.cast::<Unit>();
        if p.is_null() {
            return Err(InfoError::OutOfMemory);
        }
        // SAFETY: `p` is a fresh, suitably aligned allocation for one `Unit`.
        unsafe {
            p.write(Unit {
                word: AtomicU64::new(0),
                counters: AtomicPtr::new(ptr::null_mut()),
            });
        }
        slot.store(p, SeqCst);
        self.unit_bytes
            .fetch_add(unit_layout().size(), std::sync::atomic::Ordering::Relaxed);
        self.unit(p).ok_or(InfoError::OutOfMemory)
    }

    /// Looks up (or allocates) the unit of `id`; checks the range.
    fn unit_for_write(&self, arr: &Array, id: usize) -> Result<&Unit, InfoError> {
        if id >= arr.nr_max {
            return Err(InfoError::IdOutOfRange {
                id,
                map_nr_max: arr.nr_max,
            });
        }
        let u = id / UNIT_BITS;
        match self.unit(arr.unit_ptr(u)) {
            Some(unit) => Ok(unit),
            None => self.install_unit(u),
        }
    }

    /// `set_shrinker_bit`: marks `id` as "may have objects here".
    ///
    /// Issues a full `SeqCst` fence *before* setting the bit (pairs with the
    /// walker's fence in the SHRINK_EMPTY protocol). Allocates the id's unit
    /// on first use. Errors: [`InfoError::IdOutOfRange`] if
    /// `id >= map_nr_max()`, [`InfoError::OutOfMemory`] if the unit cannot
    /// be allocated (the bit is then not set).
    pub fn set_bit(&self, id: usize) -> Result<(), InfoError> {
        fence(SeqCst);
        let mut arr = self.load();
        let unit = self.unit_for_write(&arr, id)?;
        let u = id / UNIT_BITS;
        unit.word.fetch_or(1u64 << (id % UNIT_BITS), SeqCst);
        // Orders the word write before the summary reads and the array
        // re-loads below (pairs with the walker's and expand's fences).
        fence(SeqCst);
        // After an install, `arr` may predate the array the unit went into;
        // the loop below marks that one (and any newer) too.
        arr.mark(u);
        loop {
            let cur = self.load();
            if cur.same(&arr) {
                return Ok(());
            }
            cur.mark(u);
            arr = cur;
        }
    }

    /// Clears the bit of `id`. A no-op if `id` is out of range or its unit
    /// was never allocated. The summary is cleaned lazily by walks.
    pub fn clear_bit(&self, id: usize) {
        let arr = self.load();
        if let Some(unit) = self.unit(arr.unit_ptr(id / UNIT_BITS)) {
            unit.word.fetch_and(!(1u64 << (id % UNIT_BITS)), SeqCst);
        }
    }

    /// Whether the bit of `id` is set (false if out of range).
    pub fn test_bit(&self, id: usize) -> bool {
        let arr = self.load();
        self.unit(arr.unit_ptr(id / UNIT_BITS))
            .is_some_and(|unit| unit.word.load(SeqCst) & (1u64 << (id % UNIT_BITS)) != 0)
    }

    /// Iterates over the set bits in ascending id order.
    ///
    /// The walk uses the array current at the call (it keeps it alive) and
    /// visits only flagged summary words and units. Bits set or cleared
    /// concurrently may or may not be reported; a bit set before the call
    /// and not cleared during it is always reported. Empty units found on
    /// the way have their summary bits cleared (see crate docs).
    #[inline]
    pub fn iter_set_bits(&self) -> SetBits<'_> {
        SetBits {
            info: self,
            arr: self.load(),
            next_l2: 0,
            l2_idx: 0,
            l2_pending: 0,
            l1_idx: 0,
            l1_pending: 0,
            base: 0,
            pending: 0,
            unit: None,
        }
    }

    #[inline]
    fn counters_of<'a>(&'a self, unit: &'a Unit) -> Option<&'a Counters> {
        // SAFETY: counter blocks are fully initialized before their CAS
        // publication and freed only in `Drop`; see `unit`. Checked by
        // tests/stress.rs under AddressSanitizer.
        unsafe { unit.counters.load(SeqCst).as_ref() }
    }

    fn counter(&self, id: usize) -> Option<&AtomicU64> {
        let arr = self.load();
        let unit = self.unit(arr.unit_ptr(id / UNIT_BITS))?;
        self.counters_of(unit).map(|c| &c[id % UNIT_BITS])
    }

    /// The deferred count of `id`; 0 if out of range or never added.
    pub fn nr_deferred(&self, id: usize) -> u64 {
        self.counter(id).map_or(0, |c| c.load(SeqCst))
    }

    /// Atomically takes the deferred count of `id` (swaps it to 0). Never
    /// allocates; 0 if out of range or never added.
    pub fn xchg_nr_deferred(&self, id: usize) -> u64 {
        self.counter(id).map_or(0, |c| c.swap(0, SeqCst))
    }

    /// Adds `delta` to the deferred count of `id` (saturating at `u64::MAX`)
    /// and returns the new value. `delta == 0` never allocates. Errors:
    /// [`InfoError::IdOutOfRange`], [`InfoError::OutOfMemory`] (nothing added).
    pub fn add_nr_deferred(&self, id: usize, delta: u64) -> Result<u64, InfoError> {
        let arr = self.load();
        if id >= arr.nr_max {
            return Err(InfoError::IdOutOfRange {
                id,
                map_nr_max: arr.nr_max,
            });
        }
        if delta == 0 {
            return Ok(self.nr_deferred(id));
        }
        let unit = self.unit_for_write(&arr, id)?;
        let counters = match self.counters_of(unit) {
            Some(c) => c,
            None => self.install_counters(unit)?,
        };
        let c = &counters[id % UNIT_BITS];
        let mut cur = c.load(SeqCst);
        loop {
            let new = cur.saturating_add(delta);
            match c.compare_exchange_weak(cur, new, SeqCst, SeqCst) {
                Ok(_) => return Ok(new),
                Err(actual) => cur = actual,
            }
        }
    }

    fn install_counters<'a>(&'a self, unit: &'a Unit) -> Result<&'a Counters, InfoError> {
        self.inject_fault()?;
        let layout = counters_layout();
        // SAFETY: non-zero size; checked for null below.
        let p = unsafe { alloc(layout) }.cast::<Counters>();
        if p.is_null() {
            return Err(InfoError::OutOfMemory);
        }
        let first = p.cast::<AtomicU64>();
        for i in 0..UNIT_BITS {
            // SAFETY: `p` is a fresh allocation of 64 `AtomicU64`s; element
            // `i < 64` is in bounds and written exactly once.
            unsafe { first.add(i).write(AtomicU64::new(0)) };
        }
        match unit
            .counters
            .compare_exchange(ptr::null_mut(), p, SeqCst, SeqCst)
        {
            Ok(_) => {
                self.unit_bytes
                    .fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
            }
            Err(_) => {
                // Lost the race: free our block, use the winner's.
                // SAFETY: `p` was never published; allocated with `layout`.
                // AtomicU64 needs no drop (std), and loom atomics hold no
                // resources beyond the model's own bookkeeping.
                unsafe { dealloc(p.cast(), layout) };
            }
        }
        self.counters_of(unit).ok_or(InfoError::OutOfMemory)
    }

    /// A handle on the deferred counter of `id`, for a caller that takes and
    /// then adds back (as `do_shrink_slab` does): the unit is found once,
    /// instead of once per operation. Never allocates by itself.
    pub fn deferred_slot(&self, id: usize) -> DeferredSlot<'_> {
        let arr = self.load();
        let unit = if id < arr.nr_max {
            self.unit(arr.unit_ptr(id / UNIT_BITS))
        } else {
            None
        };
        DeferredSlot {
            info: self,
            unit,
            id,
        }
    }

    /// Moves every non-zero deferred count to the same id in `parent`
    /// (take with xchg, then add), growing `parent` first if one of the ids
    /// is beyond its capacity. On error (parent cannot grow or allocate) the
    /// count being moved is put back here, so the sum over both infos is
    /// conserved; counts already moved stay moved.
    pub fn reparent_into(&self, parent: &ShrinkerInfo) -> Result<(), InfoError> {
        let arr = self.load();
        for (u, slot) in arr.units.iter().enumerate() {
            let Some(unit) = self.unit(slot.load(SeqCst)) else {
                continue;
            };
            let Some(counters) = self.counters_of(unit) else {
                continue;
            };
            for (b, c) in counters.iter().enumerate() {
                if c.load(SeqCst) == 0 {
                    continue;
                }
                let id = u * UNIT_BITS + b;
                if id >= parent.map_nr_max() {
                    parent.expand(arr.nr_max)?;
                }
                let v = c.swap(0, SeqCst);
                if v == 0 {
                    continue;
                }
                if let Err(e) = parent.add_nr_deferred(id, v) {
                    // Put it back: our block exists, so no allocation.
                    let mut cur = c.load(SeqCst);
                    while let Err(a) =
                        c.compare_exchange_weak(cur, cur.saturating_add(v), SeqCst, SeqCst)
                    {
                        cur = a;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Heap bytes owned: the current array (header and slices), every unit
    /// and every counter block. Arrays retired by a growth but still held by
    /// a concurrent walk are not counted (transient), nor allocator overhead.
    pub fn bytes(&self) -> usize {
        self.load().bytes() + self.unit_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ShrinkerInfo {
    fn drop(&mut self) {
        #[cfg(loom)]
        let cur_ptr = self.array.cur.load(SeqCst);
        // Every unit ever installed is in the current array: installs go into
        // the current array, and growth copies all slots.
        {
            let arr = self.load();
            for slot in arr.units.iter() {
                let p = slot.load(SeqCst);
                if p.is_null() {
                    continue;
                }
                // SAFETY: `&mut self`: no reader can hold a unit or counter
                // reference (they borrow `self`), and old arrays never free
                // units, so each unit and block is freed exactly once here.
                // Checked by tests/stress.rs under AddressSanitizer (leaks
                // and double frees).
                unsafe {
                    let c = (*p).counters.load(SeqCst);
                    if !c.is_null() {
                        ptr::drop_in_place(c);
                        dealloc(c.cast(), counters_layout());
                    }
                    ptr::drop_in_place(p);
                    dealloc(p.cast(), unit_layout());
                }
            }
        }
        #[cfg(loom)]
        {
            let locked = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
            for p in locked.retired.drain(..).chain(std::iter::once(cur_ptr)) {
                // SAFETY: each pointer came from `Box::into_raw` and is
                // freed once; no references remain (`&mut self`).
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// The deferred counter of one id; see [`ShrinkerInfo::deferred_slot`].
///
/// Units are never freed while their info lives, so the unit found at
/// creation stays valid (and current: growth reuses units) for `'a`.
pub struct DeferredSlot<'a> {
    info: &'a ShrinkerInfo,
    unit: Option<&'a Unit>,
    id: usize,
}

impl fmt::Debug for DeferredSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSlot")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DeferredSlot<'_> {
    #[inline]
    fn counter(&self) -> Option<&AtomicU64> {
        let unit = self.unit?;
        self.info.counters_of(unit).map(|c| &c[self.id % UNIT_BITS])
    }

    /// Same as [`ShrinkerInfo::xchg_nr_deferred`] for this id.
    #[inline]
    pub fn xchg(&self) -> u64 {
        // A zero read needs no swap: the take linearizes at the load. This
        // saves a locked instruction on the common idle path.
        self.counter().map_or(0, |c| {
            if c.load(SeqCst) == 0 {
                0
            } else {
                c.swap(0, SeqCst)
            }
        })
    }

    /// The current value (0 if never added).
    pub fn get(&self) -> u64 {
        self.counter().map_or(0, |c| c.load(SeqCst))
    }

    /// Same as [`ShrinkerInfo::add_nr_deferred`] for this id.
    #[inline]
    pub fn add(&self, delta: u64) -> Result<u64, InfoError> {
        match self.counter() {
            Some(c) => {
                // One locked add instead of a load + CAS loop (this runs on
                // every visit). Saturation is restored after the fact: an add
                // that wrapped pins the counter at the maximum, which is
                // where a racing add would have left it anyway.
                let old = c.fetch_add(delta, SeqCst);
                match old.checked_add(delta) {
                    Some(new) => Ok(new),
                    None => {
                        c.store(u64::MAX, SeqCst);
                        Ok(u64::MAX)
                    }
                }
            }
            // First use (unit or counter block absent): the allocating path.
            None => self.info.add_nr_deferred(self.id, delta),
        }
    }
}

/// Iterator over the set bits of a [`ShrinkerInfo`], ascending; see
/// [`ShrinkerInfo::iter_set_bits`].
pub struct SetBits<'a> {
    info: &'a ShrinkerInfo,
    arr: ArrayRef<'a>,
    /// Next level-2 word to load.
    next_l2: usize,
    l2_idx: usize,
    l2_pending: u64,
    l1_idx: usize,
    l1_pending: u64,
    /// First id of the unit whose bits are in `pending`.
    base: usize,
    pending: u64,
    /// The unit whose bits are in `pending`.
    unit: Option<&'a Unit>,
}

impl<'a> SetBits<'a> {
    /// The deferred counter of `id`, an id this iterator just returned:
    /// found through the unit the walk is already in, without looking the
    /// array up again. (For any other id it falls back to a lookup.)
    #[inline]
    pub fn deferred_slot(&self, id: usize) -> DeferredSlot<'a> {
        match self.unit {
            Some(unit) if id / UNIT_BITS == self.base / UNIT_BITS => DeferredSlot {
                info: self.info,
                unit: Some(unit),
                id,
            },
            _ => self.info.deferred_slot(id),
        }
    }
}

impl fmt::Debug for SetBits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetBits")
            .field("map_nr_max", &self.arr.nr_max)
            .finish_non_exhaustive()
    }
}

impl SetBits<'_> {
    /// Whether another set bit follows, without consuming it (the walk asks
    /// before it pins anything).
    #[inline]
    pub fn has_next(&mut self) -> bool {
        self.fill()
    }

    /// Loads words until `pending` holds a set bit; `false` when none is left.
    #[inline]
    fn fill(&mut self) -> bool {
        loop {
            if self.pending != 0 {
                return true;
            }
            if self.l1_pending != 0 {
                let b = self.l1_pending.trailing_zeros() as usize;
                self.l1_pending &= self.l1_pending - 1;
                let u = self.l1_idx * UNIT_BITS + b;
                // Summary bits are only ever set for present units.
                let Some(unit) = self.info.unit(self.arr.unit_ptr(u)) else {
                    continue;
                };
                let mut word = unit.word.load(SeqCst);
                if word == 0 {
                    word = self.arr.clear_unit_summary(u, unit);
                }
                self.base = u * UNIT_BITS;
                self.pending = word;
                self.unit = Some(unit);
                continue;
            }
            if self.l2_pending != 0 {
                let b = self.l2_pending.trailing_zeros() as usize;
                self.l2_pending &= self.l2_pending - 1;
                self.l1_idx = self.l2_idx * UNIT_BITS + b;
                let mut word = self.arr.l1[self.l1_idx].load(SeqCst);
                if word == 0 {
                    word = self.arr.clear_l1_summary(self.l1_idx);
                }
                self.l1_pending = word;
                continue;
            }
            let Some(w) = self.arr.l2.get(self.next_l2) else {
                return false;
            };
            self.l2_idx = self.next_l2;
            self.next_l2 += 1;
            self.l2_pending = w.load(SeqCst);
        }
    }
}

impl Iterator for SetBits<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.pending == 0 && !self.fill() {
            return None;
        }
        let b = self.pending.trailing_zeros() as usize;
        self.pending &= self.pending - 1;
        Some(self.base + b)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ids(info: &ShrinkerInfo) -> Vec<usize> {
        info.iter_set_bits().collect()
    }

    #[test]
    fn new_rounds_and_allocates_no_units() {
        let info = ShrinkerInfo::new(1).unwrap();
        assert_eq!(info.map_nr_max(), 64);
        assert_eq!(
            info.unit_bytes.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        assert_eq!(ShrinkerInfo::new(0).unwrap().map_nr_max(), 0);
        assert_eq!(
            ShrinkerInfo::new(usize::MAX).err(),
            Some(InfoError::OutOfMemory)
        );
    }

    #[test]
    fn out_of_range() {
        let info = ShrinkerInfo::new(64).unwrap();
        assert_eq!(
            info.set_bit(64),
            Err(InfoError::IdOutOfRange {
                id: 64,
                map_nr_max: 64
            })
        );
        assert_eq!(
            info.add_nr_deferred(64, 1),
            Err(InfoError::IdOutOfRange {
                id: 64,
                map_nr_max: 64
            })
        );
        info.clear_bit(1000);
        assert!(!info.test_bit(1000));
        assert_eq!(info.nr_deferred(1000), 0);
        assert_eq!(info.xchg_nr_deferred(1000), 0);
        assert!(InfoError::OutOfMemory.to_string().contains("memory"));
    }

    #[test]
    fn delta_zero_and_xchg_never_allocate() {
        let info = ShrinkerInfo::new(128).unwrap();
        let before = info.bytes();
        assert_eq!(info.add_nr_deferred(5, 0), Ok(0));
        assert_eq!(info.xchg_nr_deferred(5), 0);
        assert_eq!(info.bytes(), before);
        assert_eq!(info.add_nr_deferred(5, u64::MAX), Ok(u64::MAX));
        assert_eq!(info.add_nr_deferred(5, 7), Ok(u64::MAX)); // saturates
        assert!(info.bytes() > before);
        // Adding a counter allocates a unit but must not set the bit.
        assert!(!info.test_bit(5));
        assert!(ids(&info).is_empty());
    }

    #[test]
    fn failed_expand_keeps_bits_and_counters() {
        let info = ShrinkerInfo::new(128).unwrap();
        info.set_bit(3).unwrap();
        info.set_bit(100).unwrap();
        info.add_nr_deferred(100, 42).unwrap();
        info.fail_next_allocations(1);
        assert_eq!(info.expand(100_000), Err(InfoError::OutOfMemory));
        assert_eq!(info.map_nr_max(), 128);
        assert_eq!(ids(&info), vec![3, 100]);
        assert_eq!(info.nr_deferred(100), 42);
        assert!(info.test_bit(3) && info.test_bit(100));
        info.expand(100_000).unwrap();
        assert_eq!(info.map_nr_max(), 100_032);
        assert_eq!(ids(&info), vec![3, 100]);
        assert_eq!(info.nr_deferred(100), 42);
    }

    #[test]
    fn failed_set_bit_and_add_return_oom() {
        let info = ShrinkerInfo::new(256).unwrap();
        info.fail_next_allocations(1);
        assert_eq!(info.set_bit(200), Err(InfoError::OutOfMemory));
        assert!(!info.test_bit(200));
        assert!(ids(&info).is_empty());
        info.set_bit(200).unwrap();
        info.fail_next_allocations(1);
        // Unit present, counter block allocation fails.
        assert_eq!(info.add_nr_deferred(200, 3), Err(InfoError::OutOfMemory));
        assert_eq!(info.nr_deferred(200), 0);
        assert_eq!(info.add_nr_deferred(200, 3), Ok(3));
    }

    #[test]
    fn reparent_failure_conserves() {
        let child = ShrinkerInfo::new(1024).unwrap();
        let parent = ShrinkerInfo::new(64).unwrap();
        child.add_nr_deferred(10, 5).unwrap();
        child.add_nr_deferred(700, 9).unwrap();
        // First allocation in the parent is the unit for id 10.
        parent.fail_next_allocations(1);
        assert_eq!(child.reparent_into(&parent), Err(InfoError::OutOfMemory));
        assert_eq!(child.nr_deferred(10) + parent.nr_deferred(10), 5);
        assert_eq!(child.nr_deferred(700), 9);
        child.reparent_into(&parent).unwrap();
        assert_eq!(parent.nr_deferred(10), 5);
        assert_eq!(parent.nr_deferred(700), 9);
        assert_eq!(parent.map_nr_max(), 1024);
        assert_eq!(child.nr_deferred(700), 0);
    }

    #[test]
    fn walk_cleans_summary() {
        let info = ShrinkerInfo::new(262_144).unwrap();
        info.set_bit(100_000).unwrap();
        info.clear_bit(100_000);
        let arr = info.load();
        let u = 100_000 / 64;
        assert_ne!(arr.l1[u / 64].load(SeqCst), 0);
        assert!(ids(&info).is_empty());
        assert_eq!(arr.l1[u / 64].load(SeqCst), 0);
        assert_eq!(arr.l2[0].load(SeqCst), 0);
        info.set_bit(100_001).unwrap();
        assert_eq!(ids(&info), vec![100_001]);
    }

    /// Memory goal: 10,000 ids with 2 set (in different units).
    #[test]
    fn bytes_for_10000_ids_with_2_set() {
        let info = ShrinkerInfo::new(10_000).unwrap();
        info.set_bit(17).unwrap();
        info.set_bit(9_001).unwrap();
        let b = info.bytes();
        let units = 10_048 / 64;
        let expect = units * 8 + 3 * 8 + 8 + std::mem::size_of::<Array>() + 16 + 2 * 16;
        assert_eq!(b, expect);
        println!(
            "bytes: one info (10,000 ids, 2 set) = {b} B; 10,000 infos = {} B ({:.2} MB)",
            b * 10_000,
            (b * 10_000) as f64 / 1e6
        );
        assert!(b * 10_000 <= 16_000_000);
        // Counter blocks are counted too.
        info.add_nr_deferred(17, 1).unwrap();
        assert_eq!(info.bytes(), b + 512);
    }
}
