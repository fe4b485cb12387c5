//! `cargo xtask bench`: is Dave Chinner's unification as fast as the kernel's
//! split design, and faster than the designs before it?
//!
//! Every workload ([`workloads`]) is generic over
//! [`unishrink_baselines::Design`] and runs on `rwsem`, `srcu`, `split` and
//! (feature `unified`) `unified`; `drop_caches` also runs on `nobitmap` (the
//! pre-bitmap kernel). Each design runs in its own process (`bench --design
//! <name>`, which prints its rows as JSON), in [`ROUNDS`] rounds, and the
//! parent keeps each row's better round (see the README for why). Results go to stdout as tables with
//! the ratios `unified / split` and `unified / rwsem`, to
//! `target/bench/report.json` and `report.md` (with the goals and whether
//! they pass), and to `traversal.svg` / `registration.svg`.
//!
//! Profiles: `--quick` (default, ≤ 3 minutes on 2 cores) and `--full`
//! (longer measurements, 1 s block, 10,000 cycles, 4,000 memcgs, 10,000
//! memcgs really built for the memory figure).

mod plot;
mod report;
mod workloads;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use unishrink_baselines::rwsem::Rwsem;
use unishrink_baselines::split::Split;
use unishrink_baselines::srcu::Srcu;
use unishrink_baselines::Design;
use workloads::Make;

/// Sizes and time budgets of one run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Profile {
    pub(crate) name: &'static str,
    pub(crate) map_nr_max: Vec<usize>,
    pub(crate) set_bits: Vec<usize>,
    #[serde(serialize_with = "ser_dur")]
    pub(crate) measure: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub(crate) reg_time: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub(crate) block: Duration,
    pub(crate) blocked_cycles: usize,
    pub(crate) drop_memcgs: usize,
    pub(crate) mem_memcgs: usize,
    pub(crate) visit_sets: Vec<usize>,
    /// Longest allowed setup (allocation of `map_nr_max` shrinkers) per size.
    #[serde(serialize_with = "ser_dur")]
    pub(crate) setup_budget: Duration,
    /// Workloads to run (`--only`); all of [`WORKLOADS`] by default.
    pub(crate) only: Vec<String>,
}

/// Workload names accepted by `--only`.
pub(crate) const WORKLOADS: [&str; 6] = [
    "traversal",
    "registration",
    "blocked",
    "drop_caches",
    "memory",
    "visit",
];

impl Profile {
    /// Whether workload `name` (one of [`WORKLOADS`]) is to run.
    pub(crate) fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|w| w == name)
    }
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Profile {
    fn quick() -> Self {
        Self {
            name: "quick",
            only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
            map_nr_max: vec![64, 4096, 262_144],
            set_bits: vec![1, 16, 256],
            measure: Duration::from_millis(150),
            reg_time: Duration::from_millis(700),
            block: Duration::from_millis(200),
            blocked_cycles: 1000,
            drop_memcgs: 4000,
            mem_memcgs: 1000,
            visit_sets: vec![16, 256, 4096],
            setup_budget: Duration::from_secs(40),
        }
    }

    fn full() -> Self {
        Self {
            name: "full",
            only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
            measure: Duration::from_millis(600),
            reg_time: Duration::from_secs(3),
            block: Duration::from_secs(1),
            blocked_cycles: 10_000,
            drop_memcgs: 4000,
            mem_memcgs: 10_000,
            setup_budget: Duration::from_secs(300),
            ..Self::quick()
        }
    }
}

/// Progress lines on stderr with elapsed time.
pub(crate) struct Progress {
    start: Instant,
}

impl Progress {
    pub(crate) fn step(&mut self, what: &str) {
        eprintln!("[{:7.1}s] {what}", self.start.elapsed().as_secs_f64());
    }
}

/// `traversal` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Traversal {
    pub(crate) design: String,
    pub(crate) target: String,
    pub(crate) map_nr_max: usize,
    pub(crate) set_bits: usize,
    pub(crate) ns_per_call: f64,
}

/// `registration` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) design: String,
    pub(crate) ops_per_sec_idle: f64,
    pub(crate) ops_per_sec_reclaiming: f64,
    /// Walks the reclaim thread completed during the best reclaiming sample
    /// (~140 ms long).
    pub(crate) reclaim_walks: u64,
    /// Cycles/s while a walker reclaims a *second* instance of the design:
    /// shares nothing but the process (allocator, epoch collector).
    pub(crate) ops_per_sec_reclaiming_elsewhere: f64,
}

/// `blocked_shrinker` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Blocked {
    pub(crate) design: String,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
    pub(crate) cycles: usize,
    pub(crate) block_us: f64,
    pub(crate) cycles_over_half_block: usize,
}

/// `drop_caches` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DropCaches {
    pub(crate) design: String,
    pub(crate) memcgs: usize,
    pub(crate) shrinkers: usize,
    pub(crate) seconds: f64,
    pub(crate) freed: u64,
}

/// `memory` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Memory {
    pub(crate) design: String,
    pub(crate) memcgs: usize,
    pub(crate) ids: usize,
    pub(crate) used_per_memcg: usize,
    pub(crate) bytes: u64,
    pub(crate) measured_memcgs: usize,
    pub(crate) method: String,
}

/// `visit_overhead` row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct VisitOverhead {
    pub(crate) design: String,
    pub(crate) set_bits: usize,
    pub(crate) ns_per_visit: f64,
    pub(crate) direct_ns_per_visit: f64,
}

/// One goal and whether it was met (`pass: null` when unified was not built).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Goal {
    pub(crate) goal: String,
    pub(crate) measured: String,
    pub(crate) pass: Option<bool>,
}

/// Everything `report.json` holds.
#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) profile: Profile,
    /// The measured rows; their arrays are top-level keys of `report.json`.
    #[serde(flatten)]
    pub(crate) rows: Part,
    pub(crate) goals: Vec<Goal>,
    /// `git describe` of the workspace (which crates were measured).
    pub(crate) commit: String,
    /// `/proc/loadavg` before and after the run (the machine is shared).
    pub(crate) loadavg: Vec<String>,
}

/// What one design's process measured (`bench --design <name>` prints it as
/// JSON on stdout; the parent merges the parts into [`Results`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Part {
    pub(crate) designs: Vec<String>,
    pub(crate) traversal: Vec<Traversal>,
    pub(crate) registration: Vec<Registration>,
    pub(crate) blocked_shrinker: Vec<Blocked>,
    pub(crate) drop_caches: Vec<DropCaches>,
    pub(crate) memory: Vec<Memory>,
    pub(crate) visit_overhead: Vec<VisitOverhead>,
    /// Measurements left out, with the reason.
    pub(crate) skipped: Vec<String>,
    /// Sorted per-cycle latencies of the blocked-shrinker run (for the plot;
    /// not in `report.json`, handed from child to parent beside the part).
    #[serde(skip)]
    pub(crate) blocked_raw: Vec<(String, Vec<f64>)>,
}

/// Isolated runs of each design; see [`Part::keep_best`].
const ROUNDS: usize = 2;

/// Extra rounds, fresh processes again, that run only the traversal (see
/// `main`).
const TRAVERSAL_EXTRA_ROUNDS: usize = 2;

/// Keeps, row by row, the better of `a` and `b` (rows match on `key`).
fn best_rows<T>(
    a: &mut Vec<T>,
    b: Vec<T>,
    same: impl Fn(&T, &T) -> bool,
    better: impl Fn(&T, &T) -> bool,
) {
    for row in b {
        match a.iter_mut().find(|r| same(r, &row)) {
            Some(r) if better(&row, r) => *r = row,
            Some(_) => {}
            None => a.push(row),
        }
    }
}

impl Part {
    /// Merges another round of the same design: the faster figure of each row
    /// (other load on the machine only ever slows a run down). A
    /// blocked-shrinker row travels with its latency list; memory is
    /// deterministic and kept from the first round.
    fn keep_best(&mut self, other: Part) {
        best_rows(
            &mut self.traversal,
            other.traversal,
            |a, b| {
                (&a.design, &a.target, a.map_nr_max, a.set_bits)
                    == (&b.design, &b.target, b.map_nr_max, b.set_bits)
            },
            |new, old| new.ns_per_call < old.ns_per_call,
        );
        // Idle and reclaiming throughput are kept independently: each is the
        // best that one round's machine allowed.
        for row in other.registration {
            match self
                .registration
                .iter_mut()
                .find(|r| r.design == row.design)
            {
                Some(r) => {
                    r.ops_per_sec_idle = r.ops_per_sec_idle.max(row.ops_per_sec_idle);
                    if row.ops_per_sec_reclaiming > r.ops_per_sec_reclaiming {
                        r.ops_per_sec_reclaiming = row.ops_per_sec_reclaiming;
                        r.reclaim_walks = row.reclaim_walks;
                    }
                    r.ops_per_sec_reclaiming_elsewhere = r
                        .ops_per_sec_reclaiming_elsewhere
                        .max(row.ops_per_sec_reclaiming_elsewhere);
                }
                None => self.registration.push(row),
            }
        }
        if let (Some(mine), Some(theirs)) = (
            self.blocked_shrinker.first(),
            other.blocked_shrinker.first(),
        ) {
            if theirs.p99_us < mine.p99_us {
                self.blocked_shrinker = other.blocked_shrinker;
                self.blocked_raw = other.blocked_raw;
            }
        } else if self.blocked_shrinker.is_empty() {
            self.blocked_shrinker = other.blocked_shrinker;
            self.blocked_raw = other.blocked_raw;
        }
        best_rows(
            &mut self.drop_caches,
            other.drop_caches,
            |a, b| a.design == b.design,
            |new, old| new.seconds < old.seconds,
        );
        best_rows(
            &mut self.visit_overhead,
            other.visit_overhead,
            |a, b| (&a.design, a.set_bits) == (&b.design, b.set_bits),
            |new, old| new.ns_per_visit < old.ns_per_visit,
        );
        for s in other.skipped {
            if !self.skipped.contains(&s) {
                self.skipped.push(s);
            }
        }
    }
}

impl Part {
    /// Appends another design's rows.
    fn extend(&mut self, p: Part) {
        self.designs.extend(p.designs);
        self.traversal.extend(p.traversal);
        self.registration.extend(p.registration);
        self.blocked_shrinker.extend(p.blocked_shrinker);
        self.drop_caches.extend(p.drop_caches);
        self.memory.extend(p.memory);
        self.visit_overhead.extend(p.visit_overhead);
        self.skipped.extend(p.skipped);
        self.blocked_raw.extend(p.blocked_raw);
    }
}

/// The processes of one run, in order: each design's workloads, then the
/// counters-on registry (visit overhead only) and the no-bitmap walk
/// (drop_caches only).
const DESIGN_RUNS: [&str; 6] = [
    "rwsem",
    "srcu",
    "split",
    "unified",
    "unified+stats",
    "nobitmap",
];

type R<T> = Result<T, String>;

fn run_design<D: Design>(
    make: &Make<D>,
    p: &Profile,
    prog: &mut Progress,
    res: &mut Part,
) -> R<()> {
    res.designs
        .push(make().map_err(|e| e.to_string())?.name().into());
    if p.runs("traversal") {
        workloads::traversal(make, p, prog, &mut res.traversal, &mut res.skipped)?;
    }
    if p.runs("registration") {
        workloads::registration(make, p, prog, &mut res.registration)?;
    }
    if p.runs("blocked") {
        workloads::blocked(
            make,
            p,
            prog,
            &mut res.blocked_shrinker,
            &mut res.blocked_raw,
        )?;
    }
    if p.runs("drop_caches") {
        workloads::drop_caches(make, p, prog, &mut res.drop_caches)?;
    }
    if p.runs("visit") {
        workloads::visit_overhead(make, p, prog, &mut res.visit_overhead)?;
    }
    if p.runs("memory") {
        workloads::memory(make, p, prog, &mut res.memory)?;
    }
    Ok(())
}

/// Runs what `design` (one of [`DESIGN_RUNS`]) contributes, in this process.
fn run_one(design: &str, p: &Profile, prog: &mut Progress) -> R<Part> {
    let cfg = workloads::cfg();
    let mut part = Part::default();
    match design {
        "rwsem" => run_design(&move || Rwsem::new(cfg), p, prog, &mut part)?,
        "srcu" => run_design(&move || Srcu::new(cfg), p, prog, &mut part)?,
        "split" => run_design(&move || Split::new(cfg), p, prog, &mut part)?,
        #[cfg(feature = "unified")]
        "unified" => run_design(
            &move || unishrink_baselines::unified::Unified::new(cfg),
            p,
            prog,
            &mut part,
        )?,
        // The default registry keeps per-shrinker counters; show their cost.
        #[cfg(feature = "unified")]
        "unified+stats" if p.runs("visit") => workloads::visit_overhead(
            &move || unishrink_baselines::unified::Unified::with_stats(cfg, true),
            p,
            prog,
            &mut part.visit_overhead,
        )?,
        "nobitmap" if p.runs("drop_caches") => workloads::drop_caches(
            &move || Rwsem::nobitmap(cfg),
            p,
            prog,
            &mut part.drop_caches,
        )?,
        "unified+stats" | "nobitmap" => {}
        #[cfg(not(feature = "unified"))]
        "unified" => {}
        other => {
            return Err(format!(
                "bench: unknown design `{other}` (one of {})",
                DESIGN_RUNS.join(", ")
            ))
        }
    }
    Ok(part)
}

/// Runs `design` in a child process (`bench --design`), so that no design
/// inherits another's heap fragmentation or epoch garbage: in one process the
/// designs measured later paid for the earlier ones' frees.
fn run_isolated(design: &str, args: &[String], prog: &mut Progress) -> R<Part> {
    let exe = std::env::current_exe().map_err(|e| format!("bench: own executable: {e}"))?;
    prog.step(&format!("{design}: own process"));
    let out = std::process::Command::new(exe)
        .arg("bench")
        .args(args)
        .args(["--design", design])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("bench: starting the {design} process: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bench: the {design} process failed ({})",
            out.status
        ));
    }
    let (mut part, raw): (Part, Vec<(String, Vec<f64>)>) =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bench: {design} results: {e}"))?;
    part.blocked_raw = raw;
    Ok(part)
}

fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// The workspace root (parent of this package's manifest directory).
fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Entry point of `cargo xtask bench`.
pub(crate) fn main(args: &[String]) -> R<()> {
    let mut p = Profile::quick();
    let mut only = None;
    let mut design = None;
    // Passed on to each design's process.
    let mut child_args = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--full" => {
                p = Profile::full();
                child_args.push(a.clone());
            }
            "--quick" => {
                p = Profile::quick();
                child_args.push(a.clone());
            }
            "--only" => {
                let list = args
                    .next()
                    .ok_or("bench: `--only` needs a comma-separated list of workloads")?;
                let names: Vec<String> = list.split(',').map(|w| w.trim().to_string()).collect();
                if let Some(bad) = names.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
                    return Err(format!(
                        "bench: unknown workload `{bad}` (one of {})",
                        WORKLOADS.join(", ")
                    ));
                }
                child_args.extend([a.clone(), list.clone()]);
                only = Some(names);
            }
            "--design" => {
                design = Some(
                    args.next()
                        .ok_or("bench: `--design` needs a design name")?
                        .clone(),
                );
            }
            other => {
                return Err(format!(
                    "bench: unknown option `{other}` (use --quick, --full or --only <workloads>)"
                ))
            }
        }
    }
    if let Some(only) = only {
        p.only = only;
    }
    let mut prog = Progress {
        start: Instant::now(),
    };
    prog.step(&format!("profile {}", p.name));
    if let Some(design) = design {
        // A child: measure one design, hand the rows to the parent.
        let part = run_one(&design, &p, &mut prog)?;
        let json = serde_json::to_string(&(&part, &part.blocked_raw)).map_err(|e| e.to_string())?;
        println!("{json}");
        return Ok(());
    }
    let mut res = Results {
        profile: p.clone(),
        rows: Part::default(),
        goals: Vec::new(),
        commit: git_describe(),
        loadavg: vec![loadavg()],
    };
    // Two rounds, each design in a fresh process per round, and the better
    // figure of the two kept: the machine is shared, and a process sometimes
    // lands in a slow spell (or a slow heap layout) for its whole life.
    let mut parts: Vec<(&str, Part)> = Vec::new();
    for round in 1..=ROUNDS {
        prog.step(&format!("round {round} of {ROUNDS}"));
        for design in DESIGN_RUNS {
            if design.starts_with("unified") && !cfg!(feature = "unified") {
                continue;
            }
            let part = run_isolated(design, &child_args, &mut prog)?;
            match parts.iter_mut().find(|(d, _)| *d == design) {
                Some((_, best)) => best.keep_best(part),
                None => parts.push((design, part)),
            }
        }
    }
    // Two more rounds for the traversal alone (~6 s per design each): its
    // 1-bit rows are ~80 ns walks, and a process in a slow spell of this
    // shared machine runs them ~20% slower from start to end (the 256-bit
    // rows at 262,144 up to ~40%); with two rounds a design drew two slow
    // processes often enough to flip the root goal, and once in six quick
    // runs with three.
    if p.only.is_empty() || p.only.iter().any(|w| w == "traversal") {
        let mut args: Vec<String> = Vec::new();
        let mut it = child_args.iter();
        while let Some(a) = it.next() {
            if a == "--only" {
                it.next();
            } else {
                args.push(a.clone());
            }
        }
        args.extend(["--only".to_string(), "traversal".to_string()]);
        for round in ROUNDS + 1..=ROUNDS + TRAVERSAL_EXTRA_ROUNDS {
            prog.step(&format!("round {round} (traversal only)"));
            for (design, best) in parts.iter_mut() {
                best.keep_best(run_isolated(design, &args, &mut prog)?);
            }
        }
    }
    for (_, part) in parts {
        res.rows.extend(part);
    }

    res.loadavg.push(loadavg());
    res.goals = report::goals(&res);
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let md = report::markdown(&res);
    print!("{md}");
    let json = serde_json::to_string_pretty(&res).map_err(|e| e.to_string())?;
    let write = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("report.json", &json)?;
    write("report.md", &md)?;
    let mut wrote = vec!["report.{json,md}"];
    type Plot = fn(&Results, &std::path::Path) -> R<bool>;
    let plots: [(&str, Plot); 2] = [
        ("traversal.svg", plot::traversal),
        ("registration.svg", plot::registration),
    ];
    for (name, draw) in plots {
        let path = dir.join(name);
        if draw(&res, &path)? {
            wrote.push(name);
        } else {
            // No stale plot from an earlier run beside this report.
            let _ = std::fs::remove_file(&path);
        }
    }
    prog.step(&format!("wrote {}/{}", dir.display(), wrote.join(", ")));
    Ok(())
}
