//! A randomized soak test of the unified shrinker core, checking its
//! invariants continuously while many threads race.
//!
//! # What runs
//!
//! `T` worker threads share one [`Registry`] (memcgs enabled, several NUMA
//! nodes) and, for a time budget, repeatedly pick an operation from their
//! own [`Schedule`] (a `StdRng` seeded with `seed + thread`, so a seed
//! reproduces each thread's sequence of attempted operations):
//!
//! * **caches**: a quarter of the shrinkers are real
//!   `LruShrinker`s over a
//!   `ListLru` of counted items (adds,
//!   deletes by handle, walks, reparenting by the lru's own hook); the others
//!   are simulated caches that keep per-(memcg, node)
//!   object counts, as `list_lru` would. Adding the first object of a
//!   (memcg, node) calls `set_shrinker_bit` under the cache lock; a reparent
//!   hook moves a dying memcg's objects to its parent and sets the parent's
//!   bit. `count_objects` reports `SHRINK_EMPTY` for an empty list;
//!   `scan_objects` frees what it is asked; some caches return `SHRINK_STOP`
//!   now and then, some panic now and then.
//! * **shrinkers** are allocated, registered (or dropped unregistered) and
//!   freed by threads other than the ones that allocated them;
//! * **memcgs** are created under random online parents and taken offline
//!   (leaves only; the others are refused with `HasChildren`);
//! * **reclaim**: `shrink_slab` at random priorities and nodes, on one memcg
//!   or on a whole subtree; spurious `set_shrinker_bit` calls race with the
//!   walkers' SHRINK_EMPTY clears.
//!
//! # What is checked
//!
//! Continuously (each failure is a *violation*, counted and described):
//! * no callback of a shrinker runs after its `free` returned (the cache has
//!   a `freed` flag, set right after `free` returns and checked on entry to
//!   and exit from every callback);
//! * callbacks are only called where they belong (global → root, not
//!   NUMA-aware → node 0), and no operation returns an unexpected error;
//! * reparenting conserves objects and `nr_deferred`: half of the offlines
//!   are *checked*: they run exclusively (no other offline, no walk or add
//!   on the child or parent — see *gates* below) and compare, per node, per
//!   shrinker id, `child + parent` before with `parent` after.
//!
//! At the end, once the threads have stopped:
//! * objects: for every cache, `added == freed + still present` (list_lru
//!   caches: `added == disposed by walks + deleted + on the lists`, and at
//!   teardown every item value ever created has been dropped), and the
//!   frees reported by `shrink_slab` equal the frees the caches performed;
//!   every panic a callback raised was reported in `ShrinkReport::panics`;
//! * no object is stranded in an offline memcg, and every (memcg, node)
//!   holding objects of a live memcg-aware cache has its shrinker bit set
//!   (no bit lost to a SHRINK_EMPTY clear, an offline or a spurious set);
//! * teardown: every shrinker frees, every memcg goes offline, the IDR is
//!   empty, the reparent hook unregisters, and after the epoch collector has
//!   run every shrinker's callback object has been dropped (counted) — no
//!   leak, no unbalanced reference. (Memcg memory itself is checked by
//!   LeakSanitizer when run with `--asan`.)
//!
//! A watchdog thread ends the process if no operation completes for
//! [`Config::watchdog`]: it prints which operation every thread is in, then
//! the summary line with one more violation, and exits with status 1.
//!
//! # Gates
//!
//! Each memcg of the harness has a reader-writer *gate*: walks and adds hold
//! the target memcg's gate for reading; a checked offline holds the child's
//! and the parent's for writing (after a tree-wide offline lock for
//! writing). Unchecked offlines take only that offline lock for reading, so
//! they do race with walks and adds on the memcgs involved. The gates are
//! the harness's, not the library's: the library takes no such lock.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use unishrink_stress::{run, Config};
//!
//! let outcome = run(&Config {
//!     threads: 2,
//!     duration: Duration::from_secs(5),
//!     max_ops_per_thread: Some(200),
//!     seed: 7,
//!     ..Config::default()
//! });
//! assert_eq!(outcome.violations, 0, "{:?}", outcome.messages);
//! assert!(outcome.summary_line().starts_with("stress: "));
//! ```

mod schedule;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use unishrink_list_lru::{ListLru, LruHandle, LruShrinker, LruWalk};
use unishrink_shrinker::{
    Count, Error, Memcg, MemcgConfig, MemcgError, MemcgId, RegisteredShrinker, Registry, Scan,
    Shrink, ShrinkControl, ShrinkerConfig, ShrinkerFlags, ShrinkerId,
};

pub use schedule::{schedule, Op, Schedule, Step};

/// Prefix of the panics that the simulated caches raise on purpose.
pub const INJECTED_PANIC: &str = "stress: injected panic";

/// A deliberate bug in the harness, to show that the checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// The reparent hook drops the child's objects instead of moving them.
    DropItemsOnReparent,
    /// Adding the first object does not set the shrinker bit.
    SkipBitOnAdd,
    /// The first `FreeShrinker` forgets its handle instead of freeing it.
    LeakShrinker,
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Time budget (workers stop starting new operations after it).
    pub duration: Duration,
    /// Worker threads.
    pub threads: usize,
    /// Seed: thread `i` uses `StdRng::seed_from_u64(seed + i)`.
    pub seed: u64,
    /// Optional bound on operations per thread (tests use it to stay small).
    pub max_ops_per_thread: Option<u64>,
    /// No operation completing for this long is a hang (default 10 s).
    pub watchdog: Duration,
    /// NUMA nodes of the simulated machine.
    pub nr_nodes: usize,
    /// At most this many memcgs (root included) exist at once.
    pub max_memcgs: usize,
    /// At most this many shrinkers are registered at once.
    pub max_shrinkers: usize,
    /// A deliberate harness bug (tests of the checker only).
    pub sabotage: Option<Sabotage>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            threads: 4,
            seed: 0,
            max_ops_per_thread: None,
            watchdog: Duration::from_secs(10),
            nr_nodes: 2,
            max_memcgs: 48,
            max_shrinkers: 40,
            sabotage: None,
        }
    }
}

/// A bad command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// An option this program does not know.
    Unknown(String),
    /// An option without its value.
    MissingValue(String),
    /// A value that does not parse or is out of range.
    BadValue {
        /// The option.
        option: String,
        /// The value given.
        value: String,
    },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(o) => write!(f, "unknown option {o:?}"),
            Self::MissingValue(o) => write!(f, "option {o} needs a value"),
            Self::BadValue { option, value } => write!(f, "bad value {value:?} for {option}"),
        }
    }
}

impl std::error::Error for ArgError {}

/// Usage text of the binary.
pub const USAGE: &str = "usage: unishrink-stress [--seconds N] [--threads T] [--seed S] \
[--ops N-per-thread] [--watchdog SECS] [--nodes N]";

/// Parses `--seconds N --threads T --seed S --ops N --watchdog S --nodes N`.
/// Without `--seed`, `default_seed` is used (the binary passes the clock).
pub fn parse_args(args: &[String], default_seed: u64) -> Result<Config, ArgError> {
    let mut cfg = Config {
        seed: default_seed,
        ..Config::default()
    };
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let mut value = || it.next().ok_or_else(|| ArgError::MissingValue(opt.clone()));
        let bad = |v: &str| ArgError::BadValue {
            option: opt.clone(),
            value: v.to_owned(),
        };
        match opt.as_str() {
            "--seconds" => {
                let v = value()?;
                let s: f64 = v.parse().map_err(|_| bad(v))?;
                cfg.duration = Duration::try_from_secs_f64(s).map_err(|_| bad(v))?;
            }
            "--watchdog" => {
                let v = value()?;
                let s: f64 = v.parse().map_err(|_| bad(v))?;
                cfg.watchdog = Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(v))?;
            }
            "--threads" => {
                let v = value()?;
                cfg.threads = v.parse().ok().filter(|&t| t > 0).ok_or_else(|| bad(v))?;
            }
            "--nodes" => {
                let v = value()?;
                cfg.nr_nodes = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or_else(|| bad(v))?;
            }
            "--seed" => {
                let v = value()?;
                cfg.seed = v.parse().map_err(|_| bad(v))?;
            }
            "--ops" => {
                let v = value()?;
                cfg.max_ops_per_thread = Some(v.parse().map_err(|_| bad(v))?);
            }
            _ => return Err(ArgError::Unknown(opt.clone())),
        }
    }
    Ok(cfg)
}

/// Installs a panic hook that stays silent for [`INJECTED_PANIC`]s and
/// forwards every other panic to the previous hook. Process-wide: meant for
/// the binary's `main` (the library never calls it).
pub fn install_quiet_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| p.downcast_ref::<String>().map(String::as_str));
        if !msg.is_some_and(|m| m.starts_with(INJECTED_PANIC)) {
            prev(info);
        }
    }));
}

/// Result of a run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Operations completed, over all threads.
    pub ops: u64,
    /// Worker threads.
    pub threads: usize,
    /// Wall time of the run (workers + final checks).
    pub elapsed: Duration,
    /// Invariant violations found.
    pub violations: u64,
    /// Descriptions of the first violations.
    pub messages: Vec<String>,
    /// Operations completed per kind.
    pub per_op: Vec<(Op, u64)>,
    /// Objects freed by `shrink_slab` over the run.
    pub freed: u64,
    /// Offlines that were checked for conservation.
    pub checked_offlines: u64,
    /// Items added to list_lru caches.
    pub lru_items: u64,
}

impl Outcome {
    /// `stress: <ops> ops, <T> threads, <secs> s, <V> violations`.
    pub fn summary_line(&self) -> String {
        summary(self.ops, self.threads, self.elapsed, self.violations)
    }
}

fn summary(ops: u64, threads: usize, elapsed: Duration, violations: u64) -> String {
    format!(
        "stress: {ops} ops, {threads} threads, {:.1} s, {violations} violations",
        elapsed.as_secs_f64()
    )
}

const MAX_MESSAGES: usize = 20;

/// Collects violations.
#[derive(Default)]
struct Checker {
    count: AtomicU64,
    messages: Mutex<Vec<String>>,
    injected_panics: AtomicU64,
}

impl Checker {
    fn fail(&self, msg: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut m = self.messages.lock();
        if m.len() < MAX_MESSAGES {
            m.push(msg);
        }
    }
}

/// A memcg as the harness sees it.
struct Slot {
    memcg: Memcg,
    parent: Option<Arc<Slot>>,
    gate: RwLock<()>,
    drops: Arc<AtomicU64>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A simulated cache: object counts per (memcg id, node).
struct Cache {
    id: AtomicU32,
    memcg_aware: bool,
    numa_aware: bool,
    panic_every: u64,
    stop_every: u64,
    scans: AtomicU64,
    freed: AtomicBool,
    lists: Mutex<HashMap<u32, Vec<u64>>>,
    added: AtomicU64,
    removed: AtomicU64,
    nr_nodes: usize,
    checker: Arc<Checker>,
}

impl Cache {
    fn id(&self) -> ShrinkerId {
        ShrinkerId(self.id.load(Ordering::Acquire))
    }

    /// The (memcg key, node) a callback addresses, after checking it may be
    /// called at all.
    fn check_call(&self, sc: &ShrinkControl<'_>, what: &str) -> (u32, usize) {
        if self.freed.load(Ordering::Acquire) {
            self.checker.fail(format!(
                "{what} of shrinker {} ran after its free returned",
                self.id()
            ));
        }
        if !self.numa_aware && sc.nid != 0 {
            self.checker.fail(format!(
                "{what} of NUMA-unaware shrinker {} called for node {}",
                self.id(),
                sc.nid
            ));
        }
        if !self.memcg_aware && !sc.memcg.is_root() {
            self.checker.fail(format!(
                "{what} of global shrinker {} called for {}",
                self.id(),
                sc.memcg.id()
            ));
        }
        (sc.memcg.id().0, sc.nid.min(self.nr_nodes - 1))
    }

    fn check_exit(&self, what: &str) {
        if self.freed.load(Ordering::Acquire) {
            self.checker.fail(format!(
                "{what} of shrinker {} still running after its free returned",
                self.id()
            ));
        }
    }

    fn present(&self) -> u64 {
        self.lists.lock().values().flatten().sum()
    }
}

/// The callback object handed to the registry; counts its drop.
struct CacheShrink {
    cache: Arc<Cache>,
    drops: Arc<AtomicU64>,
}

impl Drop for CacheShrink {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::AcqRel);
    }
}

impl Shrink for CacheShrink {
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        let c = &self.cache;
        let (key, nid) = c.check_call(sc, "count_objects");
        let n = c.lists.lock().get(&key).map_or(0, |v| v[nid]);
        c.check_exit("count_objects");
        if n == 0 {
            Count::Empty
        } else {
            Count::Objects(n)
        }
    }

    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        let c = &self.cache;
        let (key, nid) = c.check_call(sc, "scan_objects");
        let k = c.scans.fetch_add(1, Ordering::Relaxed) + 1;
        if c.panic_every > 0 && k % c.panic_every == 0 {
            c.checker.injected_panics.fetch_add(1, Ordering::Relaxed);
            panic!("{INJECTED_PANIC} (shrinker {})", c.id());
        }
        if c.stop_every > 0 && k % c.stop_every == 0 {
            return Scan::Stop;
        }
        let taken = {
            let mut lists = c.lists.lock();
            match lists.get_mut(&key) {
                Some(v) => {
                    let t = v[nid].min(sc.nr_to_scan);
                    v[nid] -= t;
                    t
                }
                None => 0,
            }
        };
        c.removed.fetch_add(taken, Ordering::Relaxed);
        c.check_exit("scan_objects");
        Scan::Freed(taken)
    }
}

/// An item on a list_lru cache; counts its drop (leak check).
struct Item(Arc<AtomicU64>);

impl Drop for Item {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the callbacks of a list_lru cache share with the harness (not the
/// lru itself: the registry must not own the last clone of a `ListLru`).
struct LruState {
    id: AtomicU32,
    freed: AtomicBool,
    disposed: AtomicU64,
    checker: Arc<Checker>,
}

/// A cache built on `unishrink-list-lru`.
struct LruCache {
    lru: ListLru<Item>,
    state: Arc<LruState>,
    added: AtomicU64,
    deleted: AtomicU64,
}

impl LruCache {
    fn id(&self) -> ShrinkerId {
        ShrinkerId(self.state.id.load(Ordering::Acquire))
    }
}

/// A registered cache of either kind.
enum Live {
    Sim(RegisteredShrinker, Arc<Cache>),
    Lru(LruShrinker<Item>, Arc<LruCache>),
}

/// Per-thread progress, read by the watchdog.
#[derive(Default)]
struct ThreadState {
    op: AtomicU8,
    ops: AtomicU64,
}

const IDLE: u8 = u8::MAX;
const ALL_OPS: [Op; 8] = [
    Op::AddItems,
    Op::Walk,
    Op::SubtreeWalk,
    Op::SpuriousBit,
    Op::AllocShrinker,
    Op::FreeShrinker,
    Op::CreateMemcg,
    Op::OfflineMemcg,
];

fn op_code(op: Op) -> u8 {
    ALL_OPS.iter().position(|&o| o == op).unwrap_or(0) as u8
}

fn op_name(code: u8) -> String {
    ALL_OPS
        .get(usize::from(code))
        .map_or_else(|| "idle".to_owned(), |o| format!("{o:?}"))
}

struct World {
    cfg: Config,
    reg: Registry,
    checker: Arc<Checker>,
    slots: Mutex<Vec<Arc<Slot>>>,
    caches: Arc<Mutex<Vec<Arc<Cache>>>>,
    live: Mutex<Vec<Live>>,
    lru_caches: Mutex<Vec<Arc<LruCache>>>,
    items_created: AtomicU64,
    items_dropped: Arc<AtomicU64>,
    offline_lock: RwLock<()>,
    shrink_created: AtomicU64,
    shrink_drops: Arc<AtomicU64>,
    slot_created: AtomicU64,
    slot_drops: Arc<AtomicU64>,
    walk_freed: AtomicU64,
    walk_panics: AtomicU64,
    checked_offlines: AtomicU64,
    leaked: Mutex<Vec<RegisteredShrinker>>,
    per_op: [AtomicU64; 8],
}

fn pick<T: Clone>(v: &[T], word: u64) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[(word % v.len() as u64) as usize].clone())
    }
}

impl World {
    fn new(cfg: &Config) -> Arc<Self> {
        let reg = Registry::new(MemcgConfig {
            nr_nodes: cfg.nr_nodes,
            ..MemcgConfig::default()
        });
        let checker = Arc::new(Checker::default());
        let slot_drops = Arc::new(AtomicU64::new(0));
        let root = reg
            .online_root()
            .expect("a fresh registry brings its root up");
        Arc::new(Self {
            cfg: cfg.clone(),
            reg,
            checker,
            slots: Mutex::new(vec![Arc::new(Slot {
                memcg: root,
                parent: None,
                gate: RwLock::new(()),
                drops: slot_drops.clone(),
            })]),
            caches: Arc::new(Mutex::new(Vec::new())),
            live: Mutex::new(Vec::new()),
            lru_caches: Mutex::new(Vec::new()),
            items_created: AtomicU64::new(0),
            items_dropped: Arc::new(AtomicU64::new(0)),
            offline_lock: RwLock::new(()),
            shrink_created: AtomicU64::new(0),
            shrink_drops: Arc::new(AtomicU64::new(0)),
            slot_created: AtomicU64::new(1),
            slot_drops,
            walk_freed: AtomicU64::new(0),
            walk_panics: AtomicU64::new(0),
            checked_offlines: AtomicU64::new(0),
            leaked: Mutex::new(Vec::new()),
            per_op: Default::default(),
        })
    }

    /// The reparent hook: moves every cache's objects from `child` to
    /// `parent` (what list_lru does), setting the parent's bit where a list
    /// becomes non-empty. Holds no `World` reference (the registry holds the
    /// hook), only what it needs.
    fn reparent_hook(&self) -> unishrink_memcg::ReparentHook {
        let caches = self.caches.clone();
        let checker = self.checker.clone();
        let reg = self.reg.clone();
        let sabotage = self.cfg.sabotage;
        Arc::new(move |child: &Memcg, parent: &Memcg| {
            let snapshot: Vec<Arc<Cache>> = caches.lock().clone();
            for cache in snapshot {
                let mut lists = cache.lists.lock();
                let Some(moved) = lists.remove(&child.id().0) else {
                    continue;
                };
                if sabotage == Some(Sabotage::DropItemsOnReparent) {
                    continue;
                }
                let dst = lists
                    .entry(parent.id().0)
                    .or_insert_with(|| vec![0; cache.nr_nodes]);
                for (nid, n) in moved.into_iter().enumerate() {
                    let was_empty = dst[nid] == 0;
                    dst[nid] += n;
                    if n > 0 && was_empty && cache.memcg_aware {
                        match reg.set_shrinker_bit(parent, nid, cache.id()) {
                            Ok(()) | Err(Error::NoSuchShrinker(_)) => {}
                            Err(e) => checker.fail(format!(
                                "reparent: set_shrinker_bit({}, {nid}, {}) failed: {e}",
                                parent.id(),
                                cache.id()
                            )),
                        }
                    }
                }
            }
        })
    }

    /// A live cache: `Ok` simulated, `Err` list_lru.
    fn pick_live(&self, word: u64) -> Option<Result<Arc<Cache>, Arc<LruCache>>> {
        let live = self.live.lock();
        if live.is_empty() {
            return None;
        }
        Some(match &live[(word % live.len() as u64) as usize] {
            Live::Sim(_, c) => Ok(c.clone()),
            Live::Lru(_, c) => Err(c.clone()),
        })
    }

    fn slot_of(&self, id: MemcgId) -> Option<Arc<Slot>> {
        self.slots
            .lock()
            .iter()
            .find(|s| s.memcg.id() == id && s.memcg.is_online())
            .cloned()
    }

    fn step(&self, step: Step) {
        let w = step.words;
        match step.op {
            Op::AddItems => self.add_items(w),
            Op::Walk => {
                let Some(slot) = pick(&self.slots.lock(), w[0]) else {
                    return;
                };
                self.walk(
                    &slot,
                    (w[1] % self.cfg.nr_nodes as u64) as usize,
                    (w[2] % 13) as u32,
                );
            }
            Op::SubtreeWalk => {
                let Some(slot) = pick(&self.slots.lock(), w[0]) else {
                    return;
                };
                let nid = (w[1] % self.cfg.nr_nodes as u64) as usize;
                for m in self.reg.memcgs().iter_subtree(&slot.memcg) {
                    if let Some(s) = self.slot_of(m.id()) {
                        self.walk(&s, nid, (w[2] % 13) as u32);
                    }
                }
            }
            Op::SpuriousBit => {
                let Some(id) = self
                    .pick_live(w[0])
                    .map(|c| c.map_or_else(|l| l.id(), |c| c.id()))
                else {
                    return;
                };
                let Some(slot) = pick(&self.slots.lock(), w[1]) else {
                    return;
                };
                let nid = (w[2] % self.cfg.nr_nodes as u64) as usize;
                match self.reg.set_shrinker_bit(&slot.memcg, nid, id) {
                    Ok(())
                    | Err(Error::NoSuchShrinker(_))
                    | Err(Error::Memcg(MemcgError::Offline(_))) => {}
                    Err(e) => self.checker.fail(format!("spurious set_shrinker_bit: {e}")),
                }
            }
            Op::AllocShrinker => self.alloc_shrinker(w),
            Op::FreeShrinker => self.free_shrinker(w),
            Op::CreateMemcg => self.create_memcg(w),
            Op::OfflineMemcg => self.offline_memcg(w),
        }
    }

    fn walk(&self, slot: &Slot, nid: usize, priority: u32) {
        let _g = slot.gate.read();
        match self.reg.shrink_slab(&slot.memcg, nid, priority) {
            Ok(r) => {
                self.walk_freed.fetch_add(r.freed, Ordering::Relaxed);
                self.walk_panics
                    .fetch_add(r.panics.len() as u64, Ordering::Relaxed);
                for p in &r.panics {
                    if !p.message.starts_with(INJECTED_PANIC) {
                        self.checker
                            .fail(format!("unexpected callback panic: {}", p.message));
                    }
                }
            }
            Err(e) => self.checker.fail(format!(
                "shrink_slab({}, {nid}, {priority}): {e}",
                slot.memcg.id()
            )),
        }
    }

    fn add_items(&self, w: [u64; 4]) {
        let cache = match self.pick_live(w[0]) {
            None => return,
            Some(Err(lru)) => return self.add_lru_items(&lru, w),
            Some(Ok(c)) => c,
        };
        let mut slot = if cache.memcg_aware {
            let Some(s) = pick(&self.slots.lock(), w[1]) else {
                return;
            };
            s
        } else {
            self.slots.lock()[0].clone()
        };
        let nid = if cache.numa_aware {
            (w[2] % self.cfg.nr_nodes as u64) as usize
        } else {
            0
        };
        let n = 1 + w[3] % 64;
        loop {
            // Objects of a dying memcg go to its nearest online ancestor
            // (the root never goes offline).
            while !slot.memcg.is_online() {
                slot = slot.parent.clone().expect("the root stays online");
            }
            let _g = slot.gate.read();
            let mut lists = cache.lists.lock();
            // Rechecked under the cache lock: the reparent hook takes it
            // after the memcg is marked offline, so either it sees our
            // objects or we see the memcg offline.
            if !slot.memcg.is_online() {
                continue;
            }
            let list = lists
                .entry(slot.memcg.id().0)
                .or_insert_with(|| vec![0; cache.nr_nodes]);
            let was_empty = list[nid] == 0;
            list[nid] += n;
            cache.added.fetch_add(n, Ordering::Relaxed);
            if was_empty && cache.memcg_aware && self.cfg.sabotage != Some(Sabotage::SkipBitOnAdd) {
                match self.reg.set_shrinker_bit(&slot.memcg, nid, cache.id()) {
                    // Freed meanwhile; or going offline, and the hook
                    // (which waits for our cache lock) sets the parent's bit.
                    Ok(())
                    | Err(Error::NoSuchShrinker(_))
                    | Err(Error::Memcg(MemcgError::Offline(_))) => {}
                    Err(e) => self.checker.fail(format!(
                        "set_shrinker_bit({}, {nid}, {}): {e}",
                        slot.memcg.id(),
                        cache.id()
                    )),
                }
            }
            return;
        }
    }

    /// Adds items to a list_lru cache (the lru itself redirects adds to an
    /// offline memcg to its nearest online ancestor), deleting some again by
    /// handle. Holds the offline lock for reading: a *checked* offline never
    /// sees an add land in its parent behind the gates' back.
    fn add_lru_items(&self, cache: &LruCache, w: [u64; 4]) {
        let Some(slot) = pick(&self.slots.lock(), w[1]) else {
            return;
        };
        let nid = (w[2] % self.cfg.nr_nodes as u64) as usize;
        let _ol = self.offline_lock.read();
        let mut last: Option<LruHandle> = None;
        for _ in 0..1 + w[3] % 8 {
            self.items_created.fetch_add(1, Ordering::Relaxed);
            match cache
                .lru
                .add(&slot.memcg, nid, Item(self.items_dropped.clone()))
            {
                Ok(h) => {
                    cache.added.fetch_add(1, Ordering::Relaxed);
                    last = Some(h);
                }
                Err(e) => self.checker.fail(format!("list_lru add: {e}")),
            }
        }
        if let Some(h) = last.filter(|_| w[3] % 4 == 0) {
            // A walk may have taken it meanwhile: then del reports None.
            if cache.lru.del(&h).is_some() {
                cache.deleted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn alloc_lru_shrinker(&self, w: [u64; 4]) {
        let state = Arc::new(LruState {
            id: AtomicU32::new(u32::MAX),
            freed: AtomicBool::new(false),
            disposed: AtomicU64::new(0),
            checker: self.checker.clone(),
        });
        let lru = ListLru::new(&self.reg);
        let (si, sd) = (state.clone(), state.clone());
        let config = ShrinkerConfig::new(format!("lru-{}", w[2] % 1000))
            .seeks([0, 1, 2, 4][(w[2] % 4) as usize])
            .batch([0, 16, 128][(w[3] % 3) as usize]);
        let rotate = w[1] % 3 == 0;
        let n = AtomicU64::new(0);
        let shrinker = LruShrinker::new(
            lru.clone(),
            config,
            move |_item: &mut Item| {
                if si.freed.load(Ordering::Acquire) {
                    si.checker.fail(format!(
                        "list_lru isolate of shrinker {} ran after its free returned",
                        si.id.load(Ordering::Relaxed)
                    ));
                }
                if rotate && n.fetch_add(1, Ordering::Relaxed) % 5 == 4 {
                    LruWalk::Rotate
                } else {
                    LruWalk::Removed
                }
            },
            move |item: Item| {
                sd.disposed.fetch_add(1, Ordering::Relaxed);
                drop(item);
            },
        );
        let shrinker = match shrinker {
            Ok(s) => s,
            Err(e) => {
                self.checker.fail(format!("LruShrinker::new: {e}"));
                return;
            }
        };
        state.id.store(shrinker.id().0, Ordering::Release);
        let cache = Arc::new(LruCache {
            lru,
            state,
            added: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
        });
        self.lru_caches.lock().push(cache.clone());
        self.live.lock().push(Live::Lru(shrinker, cache));
    }

    fn alloc_shrinker(&self, w: [u64; 4]) {
        if self.live.lock().len() >= self.cfg.max_shrinkers {
            return;
        }
        if w[1] % 4 == 3 {
            return self.alloc_lru_shrinker(w);
        }
        let memcg_aware = w[0] % 5 != 0;
        let numa_aware = w[0] % 2 == 0;
        let cache = Arc::new(Cache {
            id: AtomicU32::new(u32::MAX),
            memcg_aware,
            numa_aware,
            panic_every: if w[1] % 8 == 0 { 37 } else { 0 },
            stop_every: if w[1] % 8 == 1 { 5 } else { 0 },
            scans: AtomicU64::new(0),
            freed: AtomicBool::new(false),
            lists: Mutex::new(HashMap::new()),
            added: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            nr_nodes: self.cfg.nr_nodes,
            checker: self.checker.clone(),
        });
        let mut flags = ShrinkerFlags::NONE;
        if memcg_aware {
            flags = flags | ShrinkerFlags::MEMCG_AWARE;
        }
        if numa_aware {
            flags = flags | ShrinkerFlags::NUMA_AWARE;
        }
        let config = ShrinkerConfig::new(format!("sim-{}", w[2] % 1000))
            .flags(flags)
            .seeks([0, 1, 2, 4][(w[2] % 4) as usize])
            .batch([0, 16, 128][(w[3] % 3) as usize]);
        self.shrink_created.fetch_add(1, Ordering::AcqRel);
        let shrink = CacheShrink {
            cache: cache.clone(),
            drops: self.shrink_drops.clone(),
        };
        let allocated = match self.reg.alloc(config, shrink) {
            Ok(a) => a,
            Err(e) => {
                self.checker.fail(format!("alloc: {e}"));
                return;
            }
        };
        cache.id.store(allocated.id().0, Ordering::Release);
        if w[3] % 10 == 0 {
            // Allocated but never registered: dropping releases the id.
            drop(allocated);
            return;
        }
        self.caches.lock().push(cache.clone());
        let h = allocated.register();
        self.live.lock().push(Live::Sim(h, cache));
    }

    fn free_shrinker(&self, w: [u64; 4]) {
        let taken = {
            let mut live = self.live.lock();
            if live.is_empty() {
                return;
            }
            let i = (w[0] % live.len() as u64) as usize;
            live.swap_remove(i)
        };
        let (h, cache) = match taken {
            Live::Sim(h, c) => (h, c),
            Live::Lru(s, c) => {
                // Frees the shrinker (waiting for its callbacks); the lru
                // and its items stay with the harness for the final counts.
                drop(s.into_lru());
                c.state.freed.store(true, Ordering::Release);
                return;
            }
        };
        if self.cfg.sabotage == Some(Sabotage::LeakShrinker) {
            let mut leaked = self.leaked.lock();
            if leaked.is_empty() {
                leaked.push(h);
                return;
            }
        }
        match h.free() {
            Ok(()) => cache.freed.store(true, Ordering::Release),
            Err(e) => self.checker.fail(format!("free outside callbacks: {e}")),
        }
    }

    fn create_memcg(&self, w: [u64; 4]) {
        let parent = {
            let slots = self.slots.lock();
            if slots.len() >= self.cfg.max_memcgs {
                return;
            }
            pick(&slots, w[0]).expect("the root is always there")
        };
        match self.reg.create_memcg(&parent.memcg) {
            Ok(m) => {
                self.slot_created.fetch_add(1, Ordering::Relaxed);
                self.slots.lock().push(Arc::new(Slot {
                    memcg: m,
                    parent: Some(parent),
                    gate: RwLock::new(()),
                    drops: self.slot_drops.clone(),
                }));
            }
            Err(Error::Memcg(MemcgError::Offline(_))) => {}
            Err(e) => self.checker.fail(format!("create_memcg: {e}")),
        }
    }

    fn offline_memcg(&self, w: [u64; 4]) {
        let slot = {
            let slots = self.slots.lock();
            if slots.len() < 2 {
                return;
            }
            slots[1 + (w[0] % (slots.len() as u64 - 1)) as usize].clone()
        };
        let parent = slot.parent.clone().expect("not the root");
        let result = if w[1] % 2 == 0 {
            self.checked_offline(&slot, &parent)
        } else {
            let _ol = self.offline_lock.read();
            self.reg.offline_memcg(&slot.memcg)
        };
        match result {
            Ok(()) => self.slots.lock().retain(|s| !Arc::ptr_eq(s, &slot)),
            Err(Error::Memcg(MemcgError::HasChildren(_)))
            | Err(Error::Memcg(MemcgError::Offline(_))) => {}
            Err(e) => self
                .checker
                .fail(format!("offline {}: {e}", slot.memcg.id())),
        }
    }

    /// Per node, per id: `nr_deferred` of `m`.
    fn deferred(m: &Memcg, len: usize) -> Vec<Vec<u64>> {
        (0..m.nr_nodes())
            .map(|nid| {
                let info = m.shrinker_info(nid).expect("nid < nr_nodes");
                (0..len).map(|id| info.nr_deferred(id)).collect()
            })
            .collect()
    }

    /// Offline with nothing else touching the child or the parent, checking
    /// that objects and `nr_deferred` move to the parent exactly.
    fn checked_offline(&self, slot: &Slot, parent: &Slot) -> Result<(), Error> {
        let _ol = self.offline_lock.write();
        let _gc = slot.gate.write();
        let _gp = parent.gate.write();
        let (c, p) = (&slot.memcg, &parent.memcg);
        if !c.is_online() {
            return Err(Error::Memcg(MemcgError::Offline(c.id())));
        }
        let info_len = |m: &Memcg| m.shrinker_info(0).map_or(0, |i| i.map_nr_max());
        let len = info_len(c).max(info_len(p));
        let (dc, dp) = (Self::deferred(c, len), Self::deferred(p, len));
        let caches: Vec<Arc<Cache>> = self.caches.lock().clone();
        let items = |key: u32| -> Vec<Option<Vec<u64>>> {
            caches
                .iter()
                .map(|k| k.lists.lock().get(&key).cloned())
                .collect()
        };
        let (ic, ip) = (items(c.id().0), items(p.id().0));
        let lrus: Vec<Arc<LruCache>> = self.lru_caches.lock().clone();
        let lru_counts = |m: &Memcg| -> Vec<Vec<u64>> {
            lrus.iter()
                .map(|l| {
                    (0..self.cfg.nr_nodes)
                        .map(|nid| l.lru.count(m, nid).unwrap_or(u64::MAX))
                        .collect()
                })
                .collect()
        };
        let (lc, lp) = (lru_counts(c), lru_counts(p));
        self.reg.offline_memcg(c)?;
        let (mc, mp) = (lru_counts(c), lru_counts(p));
        for (k, l) in lrus.iter().enumerate() {
            for nid in 0..self.cfg.nr_nodes {
                if mp[k][nid] != lc[k][nid] + lp[k][nid] || mc[k][nid] != 0 {
                    self.checker.fail(format!(
                        "offline {} -> {}: list_lru of shrinker {} node {nid}: child {} + parent \
                         {} before, parent {} (child {}) after",
                        c.id(),
                        p.id(),
                        l.id(),
                        lc[k][nid],
                        lp[k][nid],
                        mp[k][nid],
                        mc[k][nid]
                    ));
                }
            }
        }
        self.checked_offlines.fetch_add(1, Ordering::Relaxed);

        let after = Self::deferred(p, len);
        let left = Self::deferred(c, len);
        for nid in 0..after.len() {
            for id in 0..len {
                let want = dc[nid][id].saturating_add(dp[nid][id]);
                if after[nid][id] != want || left[nid][id] != 0 {
                    self.checker.fail(format!(
                        "offline {} -> {}: nr_deferred of id {id} node {nid}: child {} + parent {} \
                         before, parent {} (child {}) after",
                        c.id(),
                        p.id(),
                        dc[nid][id],
                        dp[nid][id],
                        after[nid][id],
                        left[nid][id]
                    ));
                }
            }
        }
        let (jc, jp) = (items(c.id().0), items(p.id().0));
        for (k, cache) in caches.iter().enumerate() {
            let zero = vec![0; cache.nr_nodes];
            let before_c = ic[k].as_ref().unwrap_or(&zero);
            let before_p = ip[k].as_ref().unwrap_or(&zero);
            let after_p = jp[k].as_ref().unwrap_or(&zero);
            let want: Vec<u64> = before_c.iter().zip(before_p).map(|(a, b)| a + b).collect();
            if *after_p != want || jc[k].is_some() {
                self.checker.fail(format!(
                    "offline {} -> {}: objects of shrinker {}: child {before_c:?} + parent \
                     {before_p:?} before, parent {after_p:?} (child {:?}) after",
                    c.id(),
                    p.id(),
                    cache.id(),
                    jc[k]
                ));
            }
        }
        Ok(())
    }

    /// Checks made once the workers have stopped.
    fn final_checks(&self) {
        let caches: Vec<Arc<Cache>> = self.caches.lock().clone();
        let mut removed = 0;
        for c in &caches {
            let (added, rm, present) = (
                c.added.load(Ordering::Relaxed),
                c.removed.load(Ordering::Relaxed),
                c.present(),
            );
            removed += rm;
            if added != rm + present {
                self.checker.fail(format!(
                    "shrinker {}: {added} objects added != {rm} freed + {present} present",
                    c.id()
                ));
            }
        }
        let lrus: Vec<Arc<LruCache>> = self.lru_caches.lock().clone();
        for l in &lrus {
            let (added, deleted, disposed, present) = (
                l.added.load(Ordering::Relaxed),
                l.deleted.load(Ordering::Relaxed),
                l.state.disposed.load(Ordering::Relaxed),
                l.lru.total(),
            );
            removed += disposed;
            if added != deleted + disposed + present {
                self.checker.fail(format!(
                    "list_lru of shrinker {}: {added} added != {deleted} deleted + {disposed} \
                     disposed + {present} listed",
                    l.id()
                ));
            }
            if l.state.freed.load(Ordering::Acquire) {
                continue;
            }
            for m in self.reg.memcgs().iter() {
                for nid in 0..self.cfg.nr_nodes {
                    let n = l.lru.count(&m, nid).unwrap_or(0);
                    let info = m.shrinker_info(nid).expect("nid < nr_nodes");
                    if n > 0 && !info.test_bit(l.id().0 as usize) {
                        self.checker.fail(format!(
                            "lost bit: list_lru shrinker {} has {n} items in ({}, node {nid}) \
                             but its bit is clear",
                            l.id(),
                            m.id()
                        ));
                    }
                }
            }
        }
        let reported = self.walk_freed.load(Ordering::Relaxed);
        if reported != removed {
            self.checker.fail(format!(
                "shrink_slab reported {reported} freed, caches freed {removed}"
            ));
        }
        let (inj, rep) = (
            self.checker.injected_panics.load(Ordering::Relaxed),
            self.walk_panics.load(Ordering::Relaxed),
        );
        if inj != rep {
            self.checker
                .fail(format!("{inj} callback panics raised, {rep} reported"));
        }
        for c in &caches {
            let freed = c.freed.load(Ordering::Acquire);
            for (&key, counts) in c.lists.lock().iter() {
                if counts.iter().all(|&n| n == 0) {
                    continue;
                }
                let Some(m) = self.reg.memcgs().lookup(MemcgId(key)) else {
                    self.checker.fail(format!(
                        "shrinker {}: objects {counts:?} stranded in offline memcg{key}",
                        c.id()
                    ));
                    continue;
                };
                if freed || !c.memcg_aware {
                    continue;
                }
                for (nid, &n) in counts.iter().enumerate() {
                    let info = m.shrinker_info(nid).expect("nid < nr_nodes");
                    if n > 0 && !info.test_bit(c.id().0 as usize) {
                        self.checker.fail(format!(
                            "lost bit: shrinker {} has {n} objects in ({}, node {nid}) \
                             but its bit is clear",
                            c.id(),
                            m.id()
                        ));
                    }
                }
            }
        }
    }

    /// Frees every shrinker and offlines every memcg; checks nothing is left.
    fn teardown(&self) {
        let live: Vec<_> = std::mem::take(&mut *self.live.lock());
        for l in live {
            let (h, cache) = match l {
                Live::Sim(h, c) => (h, c),
                Live::Lru(s, c) => {
                    drop(s.into_lru());
                    c.state.freed.store(true, Ordering::Release);
                    continue;
                }
            };
            match h.free() {
                Ok(()) => cache.freed.store(true, Ordering::Release),
                Err(e) => self.checker.fail(format!("teardown free: {e}")),
            }
        }
        loop {
            let slots: Vec<Arc<Slot>> = self.slots.lock().iter().skip(1).cloned().collect();
            if slots.is_empty() {
                break;
            }
            let mut progress = false;
            for s in slots {
                match self.reg.offline_memcg(&s.memcg) {
                    Ok(()) => {
                        progress = true;
                        self.slots.lock().retain(|x| !Arc::ptr_eq(x, &s));
                    }
                    Err(Error::Memcg(MemcgError::HasChildren(_))) => {}
                    Err(e) => {
                        self.checker
                            .fail(format!("teardown offline {}: {e}", s.memcg.id()));
                        self.slots.lock().retain(|x| !Arc::ptr_eq(x, &s));
                    }
                }
            }
            if !progress {
                self.checker
                    .fail("teardown: no memcg could go offline".into());
                break;
            }
        }
        let leaked = self.leaked.lock().len();
        if self.reg.len() != leaked {
            self.checker.fail(format!(
                "teardown: {} shrinkers still in the IDR",
                self.reg.len()
            ));
        }
        if self.reg.memcgs().nr_online() != 1 {
            self.checker.fail(format!(
                "teardown: {} memcgs online (want only the root)",
                self.reg.memcgs().nr_online()
            ));
        }
        // Objects are all in the root now: recheck conservation there.
        self.final_checks();
        // Every list_lru item value ever created must be dropped once the
        // lists are drained (disposed and deleted ones already were).
        for l in self.lru_caches.lock().iter() {
            drop(l.lru.drain());
        }
        let (created, dropped) = (
            self.items_created.load(Ordering::Relaxed),
            self.items_dropped.load(Ordering::Relaxed),
        );
        if created != dropped {
            self.checker.fail(format!(
                "leak: {created} list_lru items created, {dropped} dropped"
            ));
        }
    }
}

/// Runs the stress test and its checks. Blocks for about `cfg.duration`
/// (less with `max_ops_per_thread`). On a hang (see [`Config::watchdog`]) it
/// prints the per-thread state and the summary line and exits the process
/// with status 1.
pub fn run(cfg: &Config) -> Outcome {
    let start = Instant::now();
    let threads = cfg.threads.max(1);
    let world = World::new(cfg);
    let hook = world
        .reg
        .memcgs()
        .register_reparent_hook(world.reparent_hook());
    let states: Arc<Vec<ThreadState>> =
        Arc::new((0..threads).map(|_| ThreadState::default()).collect());
    let deadline = start + cfg.duration;

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = {
        let states = states.clone();
        let limit = cfg.watchdog;
        std::thread::spawn(move || watchdog(&states, limit, start, &done_rx))
    };

    std::thread::scope(|s| {
        for t in 0..threads {
            let world = &world;
            let state = &states[t];
            s.spawn(move || {
                let mut sched = Schedule::new(world.cfg.seed, t);
                let max = world.cfg.max_ops_per_thread.unwrap_or(u64::MAX);
                let mut n = 0;
                while n < max && Instant::now() < deadline {
                    let step = sched.next_step();
                    state.op.store(op_code(step.op), Ordering::Relaxed);
                    world.step(step);
                    world.per_op[usize::from(op_code(step.op))].fetch_add(1, Ordering::Relaxed);
                    state.op.store(IDLE, Ordering::Relaxed);
                    state.ops.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            });
        }
    });

    world.final_checks();
    // Counted before teardown: the final line reports the workers' work.
    let ops: u64 = states.iter().map(|s| s.ops.load(Ordering::Relaxed)).sum();
    world.teardown();
    if !world.reg.memcgs().unregister_reparent_hook(hook) {
        world
            .checker
            .fail("reparent hook was not registered".into());
    }
    let _ = done_tx.send(());
    let _ = watchdog.join();

    let checker = world.checker.clone();
    let created = world.shrink_created.load(Ordering::Acquire);
    let shrink_drops = world.shrink_drops.clone();
    let (slots_created, slot_drops) = (
        world.slot_created.load(Ordering::Relaxed),
        world.slot_drops.clone(),
    );
    let per_op = ALL_OPS
        .iter()
        .map(|&o| {
            (
                o,
                world.per_op[usize::from(op_code(o))].load(Ordering::Relaxed),
            )
        })
        .collect();
    let freed = world.walk_freed.load(Ordering::Relaxed);
    let checked_offlines = world.checked_offlines.load(Ordering::Relaxed);
    let lru_items = world.items_created.load(Ordering::Relaxed);
    let leaked = world.leaked.lock().len() as u64;
    if let Ok(w) = Arc::try_unwrap(world) {
        // Leaked handles (sabotage) must not be freed by this drop.
        std::mem::forget(std::mem::take(&mut *w.leaked.lock()));
        drop(w);
    } else {
        checker.fail("the harness still holds its world".into());
    }
    // Shrinkers are freed by the epoch collector after a grace period: let
    // it run (nobody else is pinned now) until everything has been dropped.
    for _ in 0..10_000 {
        if shrink_drops.load(Ordering::Acquire) + leaked >= created {
            break;
        }
        unishrink_xarray::pin().flush();
    }
    let dropped = shrink_drops.load(Ordering::Acquire);
    if dropped != created {
        checker.fail(format!(
            "leak: {created} shrinkers created, {dropped} dropped"
        ));
    }
    let sd = slot_drops.load(Ordering::Relaxed);
    if sd != slots_created {
        checker.fail(format!(
            "leak: {slots_created} memcg slots created, {sd} dropped"
        ));
    }

    let messages = checker.messages.lock().clone();
    Outcome {
        ops,
        threads,
        elapsed: start.elapsed(),
        violations: checker.count.load(Ordering::Relaxed),
        messages,
        per_op,
        freed,
        checked_offlines,
        lru_items,
    }
}

fn watchdog(states: &[ThreadState], limit: Duration, start: Instant, done: &mpsc::Receiver<()>) {
    let total = || -> u64 { states.iter().map(|s| s.ops.load(Ordering::Relaxed)).sum() };
    let mut last = total();
    let mut last_change = Instant::now();
    loop {
        match done.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = total();
        if now != last {
            last = now;
            last_change = Instant::now();
            continue;
        }
        if last_change.elapsed() >= limit {
            eprintln!(
                "stress: watchdog: no operation completed for {:.1} s",
                limit.as_secs_f64()
            );
            for (i, s) in states.iter().enumerate() {
                eprintln!(
                    "stress: thread {i}: in {}, {} ops done",
                    op_name(s.op.load(Ordering::Relaxed)),
                    s.ops.load(Ordering::Relaxed)
                );
            }
            println!("{}", summary(now, states.len(), start.elapsed(), 1));
            std::process::exit(1);
        }
    }
}
