//! A tight alloc+register+free loop, for profilers.
//!
//! `register_profile [iters] [idle|reclaiming]`
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
    // Second argument `reclaiming`: another thread walks the root meanwhile.
    let reclaiming = std::env::args().nth(2).as_deref() == Some("reclaiming");
    let others: Vec<_> = (0..100)
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
                    std::hint::black_box(reg.shrink_slab(&root, 0, 12).unwrap());
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
