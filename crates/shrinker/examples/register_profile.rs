//! A tight alloc+register+free loop, for profilers.
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
    let _root = reg.online_root().unwrap();
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
    drop(others);
}
