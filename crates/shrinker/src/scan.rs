//! The callback interface and the scan arithmetic of `do_shrink_slab`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use unishrink_memcg::Memcg;

/// The kernel's `DEFAULT_SEEKS`: cost of recreating an object, relative.
pub const DEFAULT_SEEKS: u32 = 2;
/// The kernel's `SHRINK_BATCH`: objects per `scan_objects` call by default.
pub const SHRINK_BATCH: u64 = 128;
/// Counts above this are taken as this (2^32 objects in one (memcg, node) of
/// one shrinker). A corrupted or lying count can then make one pass call
/// `scan_objects` at most `2 * MAX_FREEABLE / batch` times instead of
/// effectively forever; real caches stay far below it.
pub const MAX_FREEABLE: u64 = 1 << 32;
/// The gentlest reclaim priority (`DEF_PRIORITY`); 0 scans everything.
pub const DEF_PRIORITY: u32 = 12;

/// What `count_objects` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// `SHRINK_EMPTY`: nothing at all here. For a memcg-aware shrinker the
    /// walker clears its bit (and re-checks, so a racing add is not lost).
    Empty,
    /// This many objects could be freed (0: none right now, keep the bit).
    Objects(u64),
}

/// What `scan_objects` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// This many objects were freed.
    Freed(u64),
    /// `SHRINK_STOP`: no progress possible now; stop this shrinker for this pass.
    Stop,
}

/// The control value passed to callbacks (the kernel's `shrink_control`).
#[derive(Debug)]
pub struct ShrinkControl<'a> {
    /// The memcg being reclaimed (the root for global shrinkers).
    pub memcg: &'a Memcg,
    /// The node being reclaimed (0 for shrinkers that are not NUMA-aware).
    pub nid: usize,
    /// How many objects `scan_objects` should look at.
    pub nr_to_scan: u64,
    /// Set to `nr_to_scan` before `scan_objects`; the callee may lower (or
    /// raise) it to report how many it actually scanned.
    pub nr_scanned: u64,
}

/// A shrinker's callbacks. Implemented by caches, pools and allocators.
///
/// Callbacks may block and may run concurrently on several threads (one
/// reclaim walk per thread). They are foreign code to the registry: a panic
/// is caught, reported in [`ShrinkReport::panics`](crate::ShrinkReport), and
/// does not unbalance any reference count.
pub trait Shrink: Send + Sync + 'static {
    /// How many objects could be freed for `sc.memcg` on `sc.nid`.
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count;
    /// Free up to `sc.nr_to_scan` objects; report how many were freed.
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan;
}

impl<T: Shrink + ?Sized> Shrink for std::sync::Arc<T> {
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        (**self).count_objects(sc)
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        (**self).scan_objects(sc)
    }
}

impl<T: Shrink + ?Sized> Shrink for Box<T> {
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        (**self).count_objects(sc)
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        (**self).scan_objects(sc)
    }
}

/// A [`Shrink`] made of two closures; see [`from_fns`].
pub struct FnShrink<C, S> {
    count: C,
    scan: S,
}

impl<C, S> Shrink for FnShrink<C, S>
where
    C: Fn(&ShrinkControl<'_>) -> Count + Send + Sync + 'static,
    S: Fn(&mut ShrinkControl<'_>) -> Scan + Send + Sync + 'static,
{
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        (self.count)(sc)
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        (self.scan)(sc)
    }
}

/// Builds a shrinker from a count closure and a scan closure.
///
/// ```
/// use unishrink_shrinker::{from_fns, Count, Scan};
/// let s = from_fns(|_sc| Count::Objects(10), |sc| Scan::Freed(sc.nr_to_scan));
/// # let _ = s;
/// ```
pub fn from_fns<C, S>(count: C, scan: S) -> FnShrink<C, S>
where
    C: Fn(&ShrinkControl<'_>) -> Count + Send + Sync + 'static,
    S: Fn(&mut ShrinkControl<'_>) -> Scan + Send + Sync + 'static,
{
    FnShrink { count, scan }
}

/// Where `do_shrink_slab` keeps the work it owes to the next pass.
pub trait DeferredCounter {
    /// Takes the whole deferred count, leaving zero.
    fn xchg(&self) -> u64;
    /// Adds `delta` back; returns the new value.
    fn add(&self, delta: u64) -> u64;
    /// The current value.
    fn get(&self) -> u64;
}

impl DeferredCounter for std::cell::Cell<u64> {
    fn xchg(&self) -> u64 {
        self.replace(0)
    }
    fn add(&self, delta: u64) -> u64 {
        let v = self.get().saturating_add(delta);
        self.set(v);
        v
    }
    fn get(&self) -> u64 {
        std::cell::Cell::get(self)
    }
}

/// Scan parameters of one shrinker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanParams {
    /// Cost to recreate an object; 0 means "free half of freeable".
    pub seeks: u32,
    /// Objects per `scan_objects` call (0 means [`SHRINK_BATCH`]).
    pub batch: u64,
}

impl Default for ScanParams {
    fn default() -> Self {
        Self {
            seeks: DEFAULT_SEEKS,
            batch: SHRINK_BATCH,
        }
    }
}

/// Everything the kernel's `mm_shrink_slab_start`/`end` tracepoints carry
/// about one `do_shrink_slab` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanTrace {
    /// Deferred work taken at the start.
    pub nr_deferred: u64,
    /// What `count_objects` returned (0 for [`Count::Empty`]).
    pub freeable: u64,
    /// New work computed from `freeable`, `priority` and `seeks`.
    pub delta: u64,
    /// Total scan target for this call.
    pub total_scan: u64,
    /// Objects actually scanned.
    pub scanned: u64,
    /// Objects freed.
    pub freed: u64,
    /// Deferred count after adding back the remainder.
    pub new_nr_deferred: u64,
    /// Whether `scan_objects` returned [`Scan::Stop`].
    pub stopped: bool,
}

/// Result of [`do_shrink_slab`].
#[derive(Debug)]
pub enum ScanOutcome {
    /// `count_objects` returned [`Count::Empty`]; nothing was scanned and the
    /// deferred count was not touched.
    Empty,
    /// The pass ran; `trace.freed` objects were freed.
    Done(ScanTrace),
    /// A callback panicked. Deferred work is still accounted (the remainder
    /// was added back as if the panicking call scanned nothing).
    Panicked(ScanTrace, Box<dyn Any + Send + 'static>),
}

/// Scan target for new work: `(freeable >> priority) * 4 / seeks`, or
/// `freeable / 2` when `seeks == 0`.
pub fn scan_delta(freeable: u64, priority: u32, seeks: u32) -> u64 {
    if seeks == 0 {
        freeable / 2
    } else {
        (freeable.checked_shr(priority).unwrap_or(0)).saturating_mul(4) / u64::from(seeks)
    }
}

/// One shrinker, one (memcg, node): the kernel's `do_shrink_slab`.
///
/// The arithmetic is the kernel's: take the deferred count; `delta` from
/// [`scan_delta`]; `total_scan = (nr_deferred >> priority) + delta`, capped at
/// `2 * freeable`; call `scan_objects` in batches while `total_scan >= batch`
/// **or** `total_scan >= freeable` (so small caches are still scanned when the
/// whole cache is targeted); `nr_scanned` as written back by the callee is
/// what counts; stop at [`Scan::Stop`]; defer `nr_deferred + delta - scanned`
/// (not below 0, capped at `2 * freeable`) to the next pass.
///
/// Deviations, all for robustness against foreign callbacks: arithmetic
/// saturates instead of wrapping, counts are clamped to [`MAX_FREEABLE`],
/// and a call reporting `nr_scanned == 0` ends the loop (the kernel would
/// spin forever on such a callee).
pub fn do_shrink_slab(
    shrink: &dyn Shrink,
    params: ScanParams,
    sc: &mut ShrinkControl<'_>,
    priority: u32,
    deferred: &dyn DeferredCounter,
) -> ScanOutcome {
    let mut trace = ScanTrace::default();
    let mut rec = Recorded {
        trace: &mut trace,
        tracing: crate::trace::enabled(),
    };
    match scan_pass(shrink, params, sc, priority, deferred, &mut rec) {
        Pass::Empty => ScanOutcome::Empty,
        Pass::Done(_) => ScanOutcome::Done(trace),
        Pass::Panicked(_, payload) => ScanOutcome::Panicked(trace, payload),
    }
}

/// How a [`scan_pass`] ended, with the objects freed.
pub(crate) enum Pass {
    /// `count_objects` returned [`Count::Empty`].
    Empty,
    /// The pass ran.
    Done(u64),
    /// A callback panicked (deferred work still accounted).
    Panicked(u64, Box<dyn Any + Send + 'static>),
}

/// Where [`scan_pass`] puts the figures of a pass. A walk nobody watches
/// (no tracing subscriber, per-shrinker counters off) uses [`Quiet`]: the
/// figures then stay in registers. Writing them all to a [`ScanTrace`] on
/// every visit cost tens of stores, and each locked instruction of the
/// visit (the reference count, the deferred counter, the epoch pin) waits
/// for every earlier store to drain.
pub(crate) trait Recorder {
    /// Whether `end` wants the deferred count after the add-back (a load
    /// when nothing is added back).
    const WANTS_NEW_DEFERRED: bool;
    /// After the deferred count was taken and the target computed.
    fn start(&mut self, sc: &ShrinkControl<'_>, priority: u32, params: ScanParams, s: Start);
    /// At the end of the pass.
    fn end(&mut self, scanned: u64, freed: u64, stopped: bool, new_nr_deferred: u64);
}

/// The figures known when scanning starts.
#[derive(Clone, Copy)]
pub(crate) struct Start {
    pub(crate) nr_deferred: u64,
    pub(crate) freeable: u64,
    pub(crate) delta: u64,
    pub(crate) total_scan: u64,
}

/// Records nothing.
pub(crate) struct Quiet;

impl Recorder for Quiet {
    const WANTS_NEW_DEFERRED: bool = false;
    #[inline(always)]
    fn start(&mut self, _: &ShrinkControl<'_>, _: u32, _: ScanParams, _: Start) {}
    #[inline(always)]
    fn end(&mut self, _: u64, _: u64, _: bool, _: u64) {}
}

/// Records into a [`ScanTrace`], and emits the start event when tracing.
pub(crate) struct Recorded<'t> {
    pub(crate) trace: &'t mut ScanTrace,
    pub(crate) tracing: bool,
}

impl Recorder for Recorded<'_> {
    const WANTS_NEW_DEFERRED: bool = true;
    #[inline]
    fn start(&mut self, sc: &ShrinkControl<'_>, priority: u32, params: ScanParams, s: Start) {
        let t = &mut *self.trace;
        t.nr_deferred = s.nr_deferred;
        t.freeable = s.freeable;
        t.delta = s.delta;
        t.total_scan = s.total_scan;
        if self.tracing {
            crate::trace::start(sc.memcg, sc.nid, priority, params, t);
        }
    }
    #[inline]
    fn end(&mut self, scanned: u64, freed: u64, stopped: bool, new_nr_deferred: u64) {
        let t = &mut *self.trace;
        t.scanned = scanned;
        t.freed = freed;
        t.stopped = stopped;
        t.new_nr_deferred = new_nr_deferred;
    }
}

/// [`do_shrink_slab`] for the walk, generic over the counter and the
/// [`Recorder`] so that both inline: the caller asks once per walk whether
/// anyone watches.
#[inline(always)]
pub(crate) fn scan_pass<D: DeferredCounter + ?Sized, R: Recorder>(
    shrink: &dyn Shrink,
    params: ScanParams,
    sc: &mut ShrinkControl<'_>,
    priority: u32,
    deferred: &D,
    rec: &mut R,
) -> Pass {
    let counted = catch_unwind(AssertUnwindSafe(|| shrink.count_objects(sc)));
    let freeable = match counted {
        Err(payload) => return Pass::Panicked(0, payload),
        Ok(Count::Empty) => return Pass::Empty,
        Ok(Count::Objects(0)) => return Pass::Done(0),
        Ok(Count::Objects(n)) => n.min(MAX_FREEABLE),
    };
    let batch_size = if params.batch == 0 {
        SHRINK_BATCH
    } else {
        params.batch
    };
    let nr = deferred.xchg();
    let delta = scan_delta(freeable, priority, params.seeks);
    let cap = freeable.saturating_mul(2);
    let mut total_scan = nr
        .checked_shr(priority)
        .unwrap_or(0)
        .saturating_add(delta)
        .min(cap);
    rec.start(
        sc,
        priority,
        params,
        Start {
            nr_deferred: nr,
            freeable,
            delta,
            total_scan,
        },
    );

    let (mut scanned, mut freed, mut stopped) = (0u64, 0u64, false);
    let mut panic = None;
    while total_scan >= batch_size || total_scan >= freeable {
        let nr_to_scan = batch_size.min(total_scan);
        sc.nr_to_scan = nr_to_scan;
        sc.nr_scanned = nr_to_scan;
        match catch_unwind(AssertUnwindSafe(|| shrink.scan_objects(sc))) {
            Err(payload) => {
                panic = Some(payload);
                break;
            }
            Ok(Scan::Stop) => {
                stopped = true;
                break;
            }
            Ok(Scan::Freed(n)) => freed = freed.saturating_add(n),
        }
        let done = sc.nr_scanned;
        total_scan = total_scan.saturating_sub(done);
        scanned = scanned.saturating_add(done);
        if done == 0 {
            break;
        }
    }

    let next_deferred = nr.saturating_add(delta).saturating_sub(scanned).min(cap);
    // Adding zero would only report the current value: read it instead,
    // and only for a recorder that wants it.
    let new_nr_deferred = if next_deferred != 0 {
        deferred.add(next_deferred)
    } else if R::WANTS_NEW_DEFERRED {
        deferred.get()
    } else {
        0
    };
    rec.end(scanned, freed, stopped, new_nr_deferred);
    match panic {
        Some(payload) => Pass::Panicked(freed, payload),
        None => Pass::Done(freed),
    }
}

/// Renders a panic payload as text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
