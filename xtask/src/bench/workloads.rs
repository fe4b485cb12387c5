//! The six workloads, written once against [`Design`] and run on every design.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use unishrink_baselines::scan::do_shrink_slab;
use unishrink_baselines::{
    from_fns, memcg_cache, Callbacks, Count, Design, DesignConfig, Scan, ShrinkCtl, ShrinkerSpec,
    DEF_PRIORITY,
};

use super::{
    Blocked, DropCaches, Memory, Profile, Progress, Registration, Traversal, VisitOverhead,
};

type R<T> = Result<T, String>;

/// Builds a fresh instance of a design.
pub(crate) type Make<D> = dyn Fn() -> Result<D, unishrink_baselines::Error>;

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// Priority of the traversal/visit walks: 0, so both callbacks run on every visit.
const WALK_PRIORITY: u32 = 0;

/// Count returns 10, scan frees nothing: state is identical after every walk
/// (at priority 0: delta 20, one scan of 20, nothing deferred).
pub(crate) fn trivial() -> Arc<dyn Callbacks> {
    from_fns(|_| Count::Objects(10), |_| Scan::Freed(0))
}

/// [`trivial`] that also counts its `count_objects` calls (relaxed, uncontended),
/// so the harness can check a walk visits exactly the shrinkers it should.
fn counting(visits: Arc<AtomicU64>) -> Arc<dyn Callbacks> {
    from_fns(
        move |_| {
            visits.fetch_add(1, Ordering::Relaxed);
            Count::Objects(10)
        },
        |_| Scan::Freed(0),
    )
}

fn memcg_spec() -> ShrinkerSpec {
    ShrinkerSpec::new("bench")
        .memcg_aware(true)
        .numa_aware(true)
}

/// Lets the epoch collector finish the garbage of the frees just done, so a
/// walk is timed in steady state rather than while it pays for setup: every
/// pinning thread runs expired deferred frees, and up to 262,143 freed
/// shrinkers would otherwise be reclaimed inside the timed walks. Applies to
/// every design alike (all retire memory through crossbeam-epoch's default
/// collector); a flush with nothing left is cheap.
fn settle() {
    for _ in 0..4096 {
        crossbeam_epoch::pin().flush();
    }
}

/// Samples per figure of [`ns_per_call`] and [`ns_per_call_each`].
const SAMPLES: usize = 15;

/// Iterations of `f` that take about `budget / SAMPLES`.
fn calibrate(budget: Duration, f: &mut dyn FnMut()) -> u64 {
    let mut n: u64 = 1;
    let calib = loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let el = t.elapsed();
        if el >= Duration::from_millis(5) || n >= 1 << 30 {
            break el.as_secs_f64() / n as f64;
        }
        n *= 2;
    };
    let per_sample = budget.as_secs_f64() / SAMPLES as f64;
    ((per_sample / calib.max(1e-9)) as u64).max(1)
}

/// ns per call of `f`: the fastest of [`SAMPLES`] samples filling `budget`
/// (the machine is shared, so the minimum is the figure least polluted by
/// other load).
pub(crate) fn ns_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    ns_per_call_each(budget, &mut [&mut f])[0]
}

/// [`ns_per_call`] of each closure, each with `budget`, their samples
/// interleaved: figures compared with each other (a memcg and a root walk
/// of one instance) then see the same spells of other load on this shared
/// machine, and each figure's samples span the whole measurement instead
/// of one slice of it. (Spells of ~20% slowdown lasting a few hundred ms
/// are common here; a figure whose samples all fell into one was off by
/// that much.)
pub(crate) fn ns_per_call_each(budget: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let iters: Vec<u64> = fs.iter_mut().map(|f| calibrate(budget, &mut **f)).collect();
    let mut best = vec![f64::INFINITY; fs.len()];
    for _ in 0..SAMPLES {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..iters[i] {
                f();
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64() * 1e9 / iters[i] as f64);
        }
    }
    best
}

/// Workload 1 (traversal): `map_nr_max` shrinkers allocated, all but `set_bits` of them
/// (spread across the id space) freed; bits of the survivors set in a child
/// memcg and in the root. Measured from the largest `set_bits` down, freeing
/// survivors in between (each smaller set is a subset of the previous one).
pub(crate) fn traversal<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<Traversal>,
    skipped: &mut Vec<String>,
) -> R<()> {
    for &m in &p.map_nr_max {
        let d = make().map_err(e)?;
        let root = d.root();
        let child = d.create_memcg(&root).map_err(e)?;
        prog.step(&format!(
            "traversal {} map_nr_max={m}: allocating",
            d.name()
        ));
        let visits = Arc::new(AtomicU64::new(0));
        let cb = counting(visits.clone());
        let mut hs: Vec<Option<D::Shrinker>> = Vec::with_capacity(m);
        let t = Instant::now();
        let mut too_slow = None;
        for i in 0..m {
            hs.push(Some(d.register(&memcg_spec(), cb.clone()).map_err(e)?));
            // A design whose registration is too slow for this size (e.g. a
            // stand-in crate) is skipped at this size rather than stalling the run.
            if i % 1024 == 1023 {
                // Linear projection; the elapsed check also catches superlinear setups.
                let el = t.elapsed().as_secs_f64();
                let projected = el * m as f64 / (i + 1) as f64;
                if projected > p.setup_budget.as_secs_f64()
                    || el > p.setup_budget.as_secs_f64() / 2.0
                {
                    too_slow = Some(projected);
                    break;
                }
            }
        }
        if let Some(projected) = too_slow {
            let why = format!(
                "traversal {} map_nr_max={m}: skipped, allocating {m} shrinkers would take ~{projected:.0} s \
                 (budget {:.0} s)",
                d.name(),
                p.setup_budget.as_secs_f64()
            );
            prog.step(&why);
            skipped.push(why);
            for h in hs.into_iter().flatten() {
                d.free(h).map_err(e)?;
            }
            continue;
        }
        let mut sets: Vec<usize> = p.set_bits.iter().copied().filter(|&s| s <= m).collect();
        sets.sort_unstable_by(|a, b| b.cmp(a));
        for &sb in &sets {
            let keep = |i: usize| i % (m / sb) == 0;
            for (i, h) in hs.iter_mut().enumerate() {
                if !keep(i) {
                    if let Some(h) = h.take() {
                        d.free(h).map_err(e)?;
                    }
                }
            }
            for h in hs.iter().flatten() {
                d.set_shrinker_bit(&child, 0, h).map_err(e)?;
                d.set_shrinker_bit(&root, 0, h).map_err(e)?;
            }
            settle();
            let targets = [("memcg", &child), ("root", &root)];
            for (target, mc) in targets {
                // Check the walk visits exactly the survivors before timing it.
                let before = visits.load(Ordering::Relaxed);
                d.shrink_slab(mc, 0, WALK_PRIORITY).map_err(e)?;
                let seen = visits.load(Ordering::Relaxed) - before;
                if seen != sb as u64 {
                    return Err(format!(
                        "traversal {} {target}: visited {seen}, expected {sb}",
                        d.name()
                    ));
                }
            }
            prog.step(&format!(
                "traversal {} memcg+root map_nr_max={m} set_bits={sb}",
                d.name()
            ));
            let (mut walk_memcg, mut walk_root) = (
                || {
                    black_box(d.shrink_slab(&child, 0, WALK_PRIORITY).ok());
                },
                || {
                    black_box(d.shrink_slab(&root, 0, WALK_PRIORITY).ok());
                },
            );
            let ns = ns_per_call_each(p.measure, &mut [&mut walk_memcg, &mut walk_root]);
            for ((target, _), ns) in targets.iter().zip(ns) {
                out.push(Traversal {
                    design: d.name().into(),
                    target: (*target).into(),
                    map_nr_max: m,
                    set_bits: sb,
                    ns_per_call: ns,
                });
            }
        }
        prog.step(&format!("traversal {} map_nr_max={m}: freeing", d.name()));
        for h in hs.into_iter().flatten() {
            d.free(h).map_err(e)?;
        }
    }
    Ok(())
}

/// An instance, its root, a child memcg and the registered shrinkers.
type Populated<D> = (
    Arc<D>,
    <D as Design>::Memcg,
    <D as Design>::Memcg,
    Vec<<D as Design>::Shrinker>,
);

/// A fresh instance with a child memcg and 100 memcg-aware shrinkers whose
/// bits are set in the child and the root (the registration workload's setup).
fn populated<D: Design>(make: &Make<D>) -> R<Populated<D>> {
    let d = Arc::new(make().map_err(e)?);
    let root = d.root();
    let child = d.create_memcg(&root).map_err(e)?;
    let mut hs = Vec::new();
    for _ in 0..100 {
        let h = d.register(&memcg_spec(), trivial()).map_err(e)?;
        d.set_shrinker_bit(&child, 0, &h).map_err(e)?;
        d.set_shrinker_bit(&root, 0, &h).map_err(e)?;
        hs.push(h);
    }
    Ok((d, root, child, hs))
}

/// About how long one sample of the registration workload lasts. Short, and
/// many of them instead of long ones: this shared machine has slow spells of
/// seconds, and the longer a sample, the likelier it overlaps one. (With
/// samples of 600 ms, the full profile's best reclaiming/idle ratios of one
/// unchanged build ranged over 0.89–1.01.)
const REG_SAMPLE: Duration = Duration::from_millis(140);

/// Samples per condition and round: `p.reg_time` in samples of about
/// [`REG_SAMPLE`] (5 in the quick profile, 21 in the full one).
fn reg_samples(p: &Profile) -> u32 {
    ((p.reg_time.as_millis() / REG_SAMPLE.as_millis()) as u32).max(1)
}

/// What the registration workload's walker thread is asked to walk.
enum WalkCmd {
    /// The instance being registered on (the "reclaiming" condition).
    Same,
    /// A second instance, populated alike (the "elsewhere" reference).
    Other,
}

/// Workload 2 (registration): alloc+register+free cycles per second with 100 other
/// shrinkers registered, idle and while a reclaim thread walks continuously.
///
/// The three conditions (idle, reclaiming, walker on another instance)
/// alternate in samples of `reg_time / reg_samples(p)`, best of each kept, so
/// that their ratio compares figures that saw the same spells of other load
/// on this shared machine. Between its samples the walker thread blocks on a
/// channel, so "idle" is idle.
pub(crate) fn registration<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<Registration>,
) -> R<()> {
    let (d, root, child, others) = populated(make)?;
    let samples = reg_samples(p);
    let sample = p.reg_time / samples;
    let cycles = |d: &D| -> R<f64> {
        let spec = memcg_spec();
        let cb = trivial();
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < sample {
            for _ in 0..64 {
                let h = d.register(&spec, cb.clone()).map_err(e)?;
                d.free(h).map_err(e)?;
            }
            n += 64;
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    };
    // The reference for "reclaiming": a walker on a second instance of the
    // design, populated alike, that shares no data with the registering
    // thread, only the process (allocator, epoch collector).
    let (other, other_root, other_child, other_hs) = populated(make)?;
    // Padded: the walker reads it on every walk, and a small allocation the
    // registering thread writes (the callbacks' `Arc`, say) must not share
    // its cache line.
    let stop = Arc::new(crossbeam_utils::CachePadded::new(AtomicBool::new(false)));
    let (cmd_tx, cmd_rx) = mpsc::channel::<WalkCmd>();
    let (ack_tx, ack_rx) = mpsc::channel::<u64>();
    let walker = {
        let stop = stop.clone();
        let (d, root, child) = (d.clone(), root.clone(), child.clone());
        let (o, o_root, o_child) = (other.clone(), other_root.clone(), other_child.clone());
        thread::spawn(move || {
            for cmd in cmd_rx {
                let (d, root, child) = match cmd {
                    WalkCmd::Same => (&d, &root, &child),
                    WalkCmd::Other => (&o, &o_root, &o_child),
                };
                let _ = ack_tx.send(0);
                let mut walks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    black_box(d.shrink_slab(child, 0, DEF_PRIORITY).ok());
                    black_box(d.shrink_slab(root, 0, DEF_PRIORITY).ok());
                    walks += 2;
                }
                let _ = ack_tx.send(walks);
            }
        })
    };
    let lost = || "registration: the walker thread died".to_string();
    // One sample of `cycles` while the walker walks what `cmd` says.
    let walked = |cmd: WalkCmd| -> R<(f64, u64)> {
        stop.store(false, Ordering::Relaxed);
        cmd_tx.send(cmd).map_err(|_| lost())?;
        ack_rx.recv().map_err(|_| lost())?;
        let ops = cycles(&d);
        stop.store(true, Ordering::Relaxed);
        let walks = ack_rx.recv().map_err(|_| lost())?;
        Ok((ops?, walks))
    };
    let (mut idle, mut busy, mut nwalks, mut elsewhere) = (0f64, 0f64, 0u64, 0f64);
    // Two rounds of alternating samples, best of each condition: other load
    // on the machine only lowers figures.
    for round in 0..2 {
        prog.step(&format!(
            "registration {}: idle / reclaiming / another instance reclaimed, \
             {samples} samples each (round {})",
            d.name(),
            round + 1
        ));
        for _ in 0..samples {
            idle = idle.max(cycles(&d)?);
            let (b, w) = walked(WalkCmd::Same)?;
            if b > busy {
                busy = b;
                nwalks = w;
            }
            elsewhere = elsewhere.max(walked(WalkCmd::Other)?.0);
        }
    }
    drop(cmd_tx);
    walker
        .join()
        .map_err(|_| "reclaim thread panicked".to_string())?;
    for h in others {
        d.free(h).map_err(e)?;
    }
    for h in other_hs {
        other.free(h).map_err(e)?;
    }
    out.push(Registration {
        design: d.name().into(),
        ops_per_sec_idle: idle,
        ops_per_sec_reclaiming: busy,
        reclaim_walks: nwalks,
        ops_per_sec_reclaiming_elsewhere: elsewhere,
    });
    Ok(())
}

/// Workload 3 (blocked shrinker): a shrinker's scan blocks for `p.block` inside a walk
/// on another thread; meanwhile `p.blocked_cycles` register/free cycles.
pub(crate) fn blocked<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<Blocked>,
    raw: &mut Vec<(String, Vec<f64>)>,
) -> R<()> {
    let d = Arc::new(make().map_err(e)?);
    let root = d.root();
    let child = d.create_memcg(&root).map_err(e)?;
    let mut others = Vec::new();
    for _ in 0..100 {
        let h = d.register(&memcg_spec(), trivial()).map_err(e)?;
        d.set_shrinker_bit(&child, 0, &h).map_err(e)?;
        others.push(h);
    }
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let block = p.block;
    let blocker = from_fns(
        |_| Count::Objects(1000),
        move |_| {
            if let Some(tx) = started_tx.lock().map(|mut g| g.take()).ok().flatten() {
                let _ = tx.send(());
                // The simulated stuck shrinker (e.g. a hung network filesystem).
                thread::sleep(block);
            }
            Scan::Freed(0)
        },
    );
    let bh = d.register(&memcg_spec(), blocker).map_err(e)?;
    d.set_shrinker_bit(&child, 0, &bh).map_err(e)?;
    d.set_shrinker_bit(&root, 0, &bh).map_err(e)?;
    prog.step(&format!(
        "blocked {} (block {:?}, {} cycles)",
        d.name(),
        p.block,
        p.blocked_cycles
    ));
    let reclaimer = {
        let (d, child) = (d.clone(), child.clone());
        thread::spawn(move || {
            black_box(d.shrink_slab(&child, 0, 0).ok());
        })
    };
    started_rx
        .recv()
        .map_err(|_| "blocking shrinker never ran".to_string())?;
    let spec = memcg_spec();
    let cb = trivial();
    let mut lat = Vec::with_capacity(p.blocked_cycles);
    for _ in 0..p.blocked_cycles {
        let t = Instant::now();
        let h = d.register(&spec, cb.clone()).map_err(e)?;
        d.free(h).map_err(e)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    reclaimer
        .join()
        .map_err(|_| "reclaim thread panicked".to_string())?;
    d.free(bh).map_err(e)?;
    for h in others {
        d.free(h).map_err(e)?;
    }
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let block_us = p.block.as_secs_f64() * 1e6;
    out.push(Blocked {
        design: d.name().into(),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: pct(1.0),
        cycles: lat.len(),
        block_us,
        cycles_over_half_block: lat.iter().filter(|&&l| l > block_us / 2.0).count(),
    });
    raw.push((d.name().into(), sorted));
    Ok(())
}

const DROP_OBJECTS: u64 = 1000;

/// Workload 4 (drop_caches): `p.drop_memcgs` memcgs each with one memcg-aware shrinker
/// holding objects only there (bit set only there) + 100 global shrinkers
/// holding objects at the root; priority 12 → 0 over every memcg.
pub(crate) fn drop_caches<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<DropCaches>,
) -> R<()> {
    // Three fresh runs, fastest kept (the run is destructive: objects are freed).
    let mut best: Option<DropCaches> = None;
    for _ in 0..3 {
        let r = drop_caches_once(make, p, prog)?;
        if best.as_ref().map_or(true, |b| r.seconds < b.seconds) {
            best = Some(r);
        }
    }
    out.extend(best);
    Ok(())
}

fn drop_caches_once<D: Design>(make: &Make<D>, p: &Profile, prog: &mut Progress) -> R<DropCaches> {
    let d = make().map_err(e)?;
    let root = d.root();
    prog.step(&format!(
        "drop_caches {}: {} memcgs",
        d.name(),
        p.drop_memcgs
    ));
    let mut hs = Vec::new();
    let mut memcgs = vec![root.clone()];
    for _ in 0..100 {
        hs.push(
            d.register(
                &ShrinkerSpec::new("global"),
                memcg_cache(d.memcg_id(&root), DROP_OBJECTS),
            )
            .map_err(e)?,
        );
    }
    for _ in 0..p.drop_memcgs {
        let m = d.create_memcg(&root).map_err(e)?;
        let h = d
            .register(&memcg_spec(), memcg_cache(d.memcg_id(&m), DROP_OBJECTS))
            .map_err(e)?;
        d.set_shrinker_bit(&m, 0, &h).map_err(e)?;
        hs.push(h);
        memcgs.push(m);
    }
    let expected = (100 + p.drop_memcgs as u64) * DROP_OBJECTS;
    let t = Instant::now();
    let mut freed = 0u64;
    for prio in (0..=DEF_PRIORITY).rev() {
        for m in &memcgs {
            freed += d.shrink_slab(m, 0, prio).map_err(e)?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if freed != expected {
        return Err(format!(
            "drop_caches {}: freed {freed}, expected {expected}",
            d.name()
        ));
    }
    for h in hs {
        d.free(h).map_err(e)?;
    }
    Ok(DropCaches {
        design: d.name().into(),
        memcgs: p.drop_memcgs,
        shrinkers: p.drop_memcgs + 100,
        seconds: secs,
        freed,
    })
}

/// Workload 5 (memory): 10,000 shrinker ids, then `p.mem_memcgs` memcgs
/// with 2 used ids each, all through the design's own API; measure
/// `info_bytes()` (for unified: `MemcgTree::shrinker_info_bytes`, the sum of
/// `ShrinkerInfo::bytes()`), scale per memcg to 10,000 memcgs.
pub(crate) fn memory<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<Memory>,
) -> R<()> {
    const MEMCGS: usize = 10_000;
    const IDS: usize = 10_000;
    let d = make().map_err(e)?;
    prog.step(&format!(
        "memory {}: {} memcgs x {IDS} ids",
        d.name(),
        p.mem_memcgs
    ));
    let root = d.root();
    let empty = d.info_bytes();
    let mut hs = Vec::with_capacity(IDS);
    for _ in 0..IDS {
        hs.push(d.register(&memcg_spec(), trivial()).map_err(e)?);
    }
    let mut ms = Vec::with_capacity(p.mem_memcgs);
    for i in 0..p.mem_memcgs {
        let m = d.create_memcg(&root).map_err(e)?;
        d.set_shrinker_bit(&m, 0, &hs[(2 * i) % IDS]).map_err(e)?;
        d.set_shrinker_bit(&m, 0, &hs[(2 * i + 1) % IDS])
            .map_err(e)?;
        ms.push(m);
    }
    let per_memcg = (d.info_bytes() - empty) as f64 / p.mem_memcgs as f64;
    let bytes = (per_memcg * MEMCGS as f64).round() as u64;
    let formula = (unishrink_baselines::FlatInfo::bytes_for(IDS) * MEMCGS) as u64;
    drop(ms);
    for h in hs {
        d.free(h).map_err(e)?;
    }
    out.push(Memory {
        design: d.name().into(),
        memcgs: MEMCGS,
        ids: IDS,
        used_per_memcg: 2,
        bytes,
        measured_memcgs: p.mem_memcgs,
        method: if d.name() == "unified" {
            format!(
                "registry API; MemcgTree::shrinker_info_bytes() (sum of ShrinkerInfo::bytes()) \
                 of {} real memcgs, scaled",
                p.mem_memcgs
            )
        } else {
            format!(
                "info_bytes() of {} real memcgs, scaled; flat layout formula gives {formula}",
                p.mem_memcgs
            )
        },
    });
    Ok(())
}

/// Workload 6 (visit overhead): `set_bits` shrinkers (ids 0..set_bits) with bits in a
/// child memcg; ns per visited shrinker of `shrink_slab` vs a direct loop
/// running the same callbacks through the same `do_shrink_slab`.
pub(crate) fn visit_overhead<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    out: &mut Vec<VisitOverhead>,
) -> R<()> {
    for &n in &p.visit_sets {
        let d = make().map_err(e)?;
        prog.step(&format!("visit_overhead {} set_bits={n}", d.name()));
        let child = d.create_memcg(&d.root()).map_err(e)?;
        let cb = counting(Arc::new(AtomicU64::new(0)));
        let mut hs = Vec::new();
        for _ in 0..n {
            let h = d.register(&memcg_spec(), cb.clone()).map_err(e)?;
            d.set_shrinker_bit(&child, 0, &h).map_err(e)?;
            hs.push(h);
        }
        let ns = ns_per_call(p.measure, || {
            black_box(d.shrink_slab(&child, 0, WALK_PRIORITY).ok());
        }) / n as f64;
        let direct = direct_ns_per_visit(p.measure, n);
        for h in hs {
            d.free(h).map_err(e)?;
        }
        out.push(VisitOverhead {
            design: d.name().into(),
            set_bits: n,
            ns_per_visit: ns,
            direct_ns_per_visit: direct,
        });
    }
    Ok(())
}

fn direct_ns_per_visit(budget: Duration, n: usize) -> f64 {
    let spec = memcg_spec();
    let cb = counting(Arc::new(AtomicU64::new(0)));
    let cbs: Vec<(Arc<dyn Callbacks>, AtomicU64)> =
        (0..n).map(|_| (cb.clone(), AtomicU64::new(0))).collect();
    ns_per_call(budget, || {
        let mut freed = 0;
        for (cb, deferred) in &cbs {
            let mut sc = ShrinkCtl {
                memcg: 1,
                nid: 0,
                nr_to_scan: 0,
                nr_scanned: 0,
            };
            freed += do_shrink_slab(&**cb, &spec, &mut sc, WALK_PRIORITY, deferred).freed();
        }
        black_box(freed);
    }) / n as f64
}

/// Default design configuration of the benchmarks (one node).
pub(crate) fn cfg() -> DesignConfig {
    DesignConfig { nr_nodes: 1 }
}
