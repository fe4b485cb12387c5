//! A tight alloc+register+free loop, for profilers.
//!
//! `register_profile [iters] [idle|reclaiming|elsewhere]` (env `OTHERS`: shrinkers
//! registered besides the cycling one, default 100)
use unishrink_shrinker::*;

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    // Second argument `reclaiming`: another thread walks the root meanwhile;
    // `elsewhere`: it walks the root of another registry (shares no data,
    // only the process: the epoch collector and the allocator).
    let mode = std::env::args().nth(2).unwrap_or_default();
    let reclaiming = mode == "reclaiming" || mode == "elsewhere";
    let other_reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let other_root = other_reg.online_root().unwrap();
    let _other_shrinkers: Vec<_> = (0..100)
        .map(|i| {
            other_reg
                .alloc(
                    ShrinkerConfig::new(format!("x{i}")),
                    from_fns(|_| Count::Objects(1), |_| Scan::Freed(0)),
                )
                .unwrap()
                .register()
        })
        .collect();
    let (walk_reg, walk_root) = if mode == "elsewhere" {
        (&other_reg, &other_root)
    } else {
        (&reg, &root)
    };
    let n_others: u32 = std::env::var("OTHERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let others: Vec<_> = (0..n_others)
        .map(|i| {
            reg.alloc(
                ShrinkerConfig::new(format!("o{i}")),
                from_fns(|_| Count::Objects(1), |_| Scan::Freed(0)),
            )
            .unwrap()
            .register()
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        if reclaiming {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(walk_reg.shrink_slab(walk_root, 0, 12).unwrap());
                }
            });
        }
        let start = std::time::Instant::now();
        for _ in 0..iters {
            let s = reg
                .alloc(
                    ShrinkerConfig::new("cycle"),
                    from_fns(|_| Count::Objects(1), |_| Scan::Freed(0)),
                )
                .unwrap()
                .register();
            s.free().unwrap();
        }
        let el = start.elapsed();
        println!(
            "{:.0} cycles/s, {:.1} ns/cycle",
            iters as f64 / el.as_secs_f64(),
            el.as_nanos() as f64 / iters as f64
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    drop(others);
}
