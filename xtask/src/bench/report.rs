//! Tables (markdown, also printed on stdout) and the goals.

use std::fmt::Write;

use super::{Goal, Results};

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.prec$}"))
}

fn designs(res: &Results) -> Vec<&str> {
    res.rows.designs.iter().map(String::as_str).collect()
}

/// The whole report as markdown.
pub(crate) fn markdown(res: &Results) -> String {
    let mut s = String::new();
    let ds = designs(res);
    let _ = writeln!(
        s,
        "# unishrink bench ({} profile, commit `{}`)\n",
        res.profile.name, res.commit
    );
    let _ = writeln!(
        s,
        "Designs: {}. Ratios are `unified / split` and `unified / rwsem` (n/a while `unified` is not built).\n",
        ds.join(", ")
    );
    let _ = writeln!(
        s,
        "Load average (1/5/15 min, runnable/total, last pid) before: `{}`, after: `{}`. \
         Timings are best-of-N to reduce the effect of other load on this shared machine.\n",
        res.loadavg.first().map_or("?", String::as_str),
        res.loadavg.last().map_or("?", String::as_str)
    );

    // 1. traversal
    let _ = writeln!(
        s,
        "## 1. traversal: ns per shrink_slab call (priority 0, trivial callbacks)\n"
    );
    let _ = write!(s, "| target | map_nr_max | set_bits |");
    for d in &ds {
        let _ = write!(s, " {d} |");
    }
    let _ = writeln!(s, " unified/split | unified/rwsem |");
    let _ = writeln!(s, "|{}", "---|".repeat(5 + ds.len()));
    let mut keys: Vec<(String, usize, usize)> = res
        .rows
        .traversal
        .iter()
        .map(|t| (t.target.clone(), t.map_nr_max, t.set_bits))
        .collect();
    keys.sort();
    keys.dedup();
    for (target, m, sb) in &keys {
        let get = |d: &str| {
            res.rows
                .traversal
                .iter()
                .find(|t| {
                    t.design == d && &t.target == target && t.map_nr_max == *m && t.set_bits == *sb
                })
                .map(|t| t.ns_per_call)
        };
        let _ = write!(s, "| {target} | {m} | {sb} |");
        for d in &ds {
            let _ = write!(s, " {} |", cell(get(d), 1));
        }
        let _ = writeln!(
            s,
            " {} | {} |",
            ratio(get("unified"), get("split")),
            ratio(get("unified"), get("rwsem"))
        );
    }

    // 2. registration
    let _ = writeln!(
        s,
        "\n## 2. registration: alloc+register+free cycles/s (100 other shrinkers)\n"
    );
    let _ = writeln!(
        s,
        "| design | idle | reclaiming | reclaiming/idle | reclaim walks | walker on another instance | that / idle |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let reg = |d: &str| res.rows.registration.iter().find(|r| r.design == d);
    for r in &res.rows.registration {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.2} | {} | {:.0} | {:.2} |",
            r.design,
            r.ops_per_sec_idle,
            r.ops_per_sec_reclaiming,
            r.ops_per_sec_reclaiming / r.ops_per_sec_idle,
            r.reclaim_walks,
            r.ops_per_sec_reclaiming_elsewhere,
            r.ops_per_sec_reclaiming_elsewhere / r.ops_per_sec_idle,
        );
    }
    for b in ["split", "rwsem"] {
        let (u, o) = (reg("unified"), reg(b));
        let _ = writeln!(
            s,
            "| unified / {b} | {} | {} | | | | |",
            ratio(u.map(|r| r.ops_per_sec_idle), o.map(|r| r.ops_per_sec_idle)),
            ratio(
                u.map(|r| r.ops_per_sec_reclaiming),
                o.map(|r| r.ops_per_sec_reclaiming)
            ),
        );
    }

    // 3. blocked shrinker
    let block = res
        .rows
        .blocked_shrinker
        .first()
        .map_or(0.0, |b| b.block_us);
    let _ = writeln!(
        s,
        "\n## 3. blocked shrinker: register+free latency (µs) while a scan blocks for {:.0} ms\n",
        block / 1000.0
    );
    let _ = writeln!(
        s,
        "| design | p50 | p99 | max | cycles | cycles > block/2 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let bl = |d: &str| res.rows.blocked_shrinker.iter().find(|r| r.design == d);
    for r in &res.rows.blocked_shrinker {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.0} | {} | {} |",
            r.design, r.p50_us, r.p99_us, r.max_us, r.cycles, r.cycles_over_half_block
        );
    }
    for b in ["split", "rwsem"] {
        let (u, o) = (bl("unified"), bl(b));
        let _ = writeln!(
            s,
            "| unified / {b} | {} | {} | {} | | |",
            ratio(u.map(|r| r.p50_us), o.map(|r| r.p50_us)),
            ratio(u.map(|r| r.p99_us), o.map(|r| r.p99_us)),
            ratio(u.map(|r| r.max_us), o.map(|r| r.max_us)),
        );
    }

    // 4. drop_caches
    let _ = writeln!(
        s,
        "\n## 4. drop_caches: seconds to reclaim everything (priority 12 → 0 over every memcg)\n"
    );
    let _ = writeln!(
        s,
        "| design | memcgs | shrinkers | seconds | objects freed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let dc = |d: &str| {
        res.rows
            .drop_caches
            .iter()
            .find(|r| r.design == d)
            .map(|r| r.seconds)
    };
    for r in &res.rows.drop_caches {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {} |",
            r.design, r.memcgs, r.shrinkers, r.seconds, r.freed
        );
    }
    for b in ["split", "rwsem", "nobitmap"] {
        let _ = writeln!(
            s,
            "| unified / {b} | | | {} | |",
            ratio(dc("unified"), dc(b))
        );
    }

    // 5. memory
    let _ = writeln!(s, "\n## 5. memory: shrinker_info bytes, 10,000 memcgs × 10,000 ids, 2 used per memcg, 1 node\n");
    let _ = writeln!(s, "| design | bytes | MiB | how |");
    let _ = writeln!(s, "|---|---|---|---|");
    let mem = |d: &str| {
        res.rows
            .memory
            .iter()
            .find(|r| r.design == d)
            .map(|r| r.bytes as f64)
    };
    for r in &res.rows.memory {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} |",
            r.design,
            r.bytes,
            r.bytes as f64 / 1048576.0,
            r.method
        );
    }
    for b in ["split", "rwsem"] {
        let _ = writeln!(
            s,
            "| unified / {b} | {} | | |",
            ratio(mem("unified"), mem(b))
        );
    }

    // 6. visit overhead
    let _ = writeln!(s, "\n## 6. visit overhead: ns per visited shrinker (child memcg, dense ids) vs a direct loop\n");
    // `unified` runs with per-shrinker counters off (the kernel keeps none);
    // `unified+stats` is the same registry with them on (the default).
    let mut vds: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
    if res
        .rows
        .visit_overhead
        .iter()
        .any(|v| v.design == "unified+stats")
    {
        vds.push("unified+stats".into());
    }
    let _ = write!(s, "| set_bits | direct |");
    for d in &vds {
        let _ = write!(s, " {d} |");
    }
    let _ = writeln!(s, " unified/split | unified/rwsem |");
    let _ = writeln!(s, "|{}", "---|".repeat(4 + vds.len()));
    let mut sets: Vec<usize> = res.rows.visit_overhead.iter().map(|v| v.set_bits).collect();
    sets.sort_unstable();
    sets.dedup();
    for n in sets {
        let get = |d: &str| {
            res.rows
                .visit_overhead
                .iter()
                .find(|v| v.design == d && v.set_bits == n)
        };
        let direct = res
            .rows
            .visit_overhead
            .iter()
            .filter(|v| v.set_bits == n)
            .map(|v| v.direct_ns_per_visit)
            .fold(f64::INFINITY, f64::min);
        let _ = write!(s, "| {n} | {direct:.1} |");
        for d in &vds {
            let _ = write!(s, " {} |", cell(get(d).map(|v| v.ns_per_visit), 1));
        }
        let f = |d: &str| get(d).map(|v| v.ns_per_visit);
        let _ = writeln!(
            s,
            " {} | {} |",
            ratio(f("unified"), f("split")),
            ratio(f("unified"), f("rwsem"))
        );
    }

    if !res.rows.skipped.is_empty() {
        let _ = writeln!(s, "\n## Skipped\n");
        for k in &res.rows.skipped {
            let _ = writeln!(s, "- {k}");
        }
    }

    // goals
    let _ = writeln!(s, "\n## Goals\n");
    let _ = writeln!(s, "| goal | measured | result |");
    let _ = writeln!(s, "|---|---|---|");
    for g in &res.goals {
        let r = match g.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        let _ = writeln!(s, "| {} | {} | {r} |", g.goal, g.measured);
    }
    s
}

fn goal(goal: &str, measured: Option<(String, bool)>) -> Goal {
    match measured {
        Some((m, pass)) => Goal {
            goal: goal.into(),
            measured: m,
            pass: Some(pass),
        },
        None => Goal {
            goal: goal.into(),
            measured:
                "n/a (unified not built, the size skipped, or the workload left out by --only)"
                    .into(),
            pass: None,
        },
    }
}

/// Evaluate the goals of the bench issue against the results.
pub(crate) fn goals(res: &Results) -> Vec<Goal> {
    let trav = |d: &str, target: &str, m: usize, sb: usize| {
        res.rows
            .traversal
            .iter()
            .find(|t| t.design == d && t.target == target && t.map_nr_max == m && t.set_bits == sb)
            .map(|t| t.ns_per_call)
    };
    // The profile's sizes, so the goal reads right even when traversal was left out.
    let max_m = res.profile.map_nr_max.iter().copied().max().unwrap_or(0);
    let min_m = res.profile.map_nr_max.iter().copied().min().unwrap_or(0);
    let mut v = Vec::new();

    v.push(goal(
        &format!("traversal memcg 16 bits: unified@{max_m} ≤ 1.5 × unified@{min_m}"),
        trav("unified", "memcg", max_m, 16)
            .zip(trav("unified", "memcg", min_m, 16))
            .map(|(hi, lo)| {
                (
                    format!("{hi:.1} ns vs {lo:.1} ns = {:.2}×", hi / lo),
                    hi <= 1.5 * lo,
                )
            }),
    ));

    let root_ratios: Vec<(usize, usize, f64)> = res
        .rows
        .traversal
        .iter()
        .filter(|t| t.design == "unified" && t.target == "root")
        .filter_map(|t| {
            trav("split", "root", t.map_nr_max, t.set_bits)
                .map(|s| (t.map_nr_max, t.set_bits, t.ns_per_call / s))
        })
        .collect();
    v.push(goal(
        "traversal root: unified ≤ 1.0 × split at every size",
        (!root_ratios.is_empty()).then(|| {
            let worst =
                root_ratios
                    .iter()
                    .copied()
                    .fold((0, 0, 0.0f64), |a, b| if b.2 > a.2 { b } else { a });
            (
                format!(
                    "worst unified/split = {:.2} (map_nr_max {}, {} bits)",
                    worst.2, worst.0, worst.1
                ),
                worst.2 <= 1.0,
            )
        }),
    ));

    let reg = |d: &str| res.rows.registration.iter().find(|r| r.design == d);
    v.push(goal(
        "registration: unified reclaiming/idle ≥ 0.9",
        reg("unified").map(|u| {
            let r = u.ops_per_sec_reclaiming / u.ops_per_sec_idle;
            (format!("{r:.2}"), r >= 0.9)
        }),
    ));
    v.push(goal(
        "registration: unified idle ≥ rwsem idle",
        reg("unified").zip(reg("rwsem")).map(|(u, r)| {
            (
                format!("{:.0}/s vs {:.0}/s", u.ops_per_sec_idle, r.ops_per_sec_idle),
                u.ops_per_sec_idle >= r.ops_per_sec_idle,
            )
        }),
    ));

    let bl = |d: &str| res.rows.blocked_shrinker.iter().find(|r| r.design == d);
    v.push(goal(
        "blocked shrinker: unified p99 ≤ 100 µs",
        bl("unified").map(|u| (format!("{:.1} µs", u.p99_us), u.p99_us <= 100.0)),
    ));
    v.push(Goal {
        goal: "blocked shrinker: rwsem max ≥ block time".into(),
        measured: bl("rwsem").map_or("n/a".into(), |r| {
            format!("{:.0} µs (block {:.0} µs)", r.max_us, r.block_us)
        }),
        pass: bl("rwsem").map(|r| r.max_us >= r.block_us),
    });

    let dc = |d: &str| {
        res.rows
            .drop_caches
            .iter()
            .find(|r| r.design == d)
            .map(|r| r.seconds)
    };
    v.push(goal(
        "drop_caches: unified ≤ split",
        dc("unified")
            .zip(dc("split"))
            .map(|(u, s)| (format!("{u:.4} s vs {s:.4} s"), u <= s)),
    ));
    v.push(goal(
        "drop_caches: unified ≥ 100× faster than nobitmap",
        dc("unified")
            .zip(dc("nobitmap"))
            .map(|(u, n)| (format!("{:.0}×", n / u), n >= 100.0 * u)),
    ));

    let mem = |d: &str| {
        res.rows
            .memory
            .iter()
            .find(|r| r.design == d)
            .map(|r| r.bytes as f64)
    };
    v.push(goal(
        "memory: unified ≤ 1/50 of split",
        mem("unified")
            .zip(mem("split"))
            .map(|(u, s)| (format!("1/{:.0}", s / u), u * 50.0 <= s)),
    ));
    v
}
