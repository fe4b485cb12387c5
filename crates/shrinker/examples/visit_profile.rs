//! A tight `shrink_slab` loop over 256 trivial memcg-aware shrinkers, for
//! profilers (`perf record`, `valgrind --tool=callgrind`).
//!
//! `visit_profile [iters] [stats|nostats] [child|root]`
use unishrink_shrinker::*;

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    // Second argument `nostats`: per-shrinker counters off.
    let stats = std::env::args().nth(2).as_deref() != Some("nostats");
    // Third argument `root`: walk the root (global shrinkers) instead of a child.
    let at_root = std::env::args().nth(3).as_deref() == Some("root");
    let reg = Registry::with_options(
        MemcgConfig {
            nr_nodes: 1,
            ..MemcgConfig::default()
        },
        RegistryOptions {
            stats,
            ..RegistryOptions::default()
        },
    );
    let root = reg.online_root().unwrap();
    let child = reg.create_memcg(&root).unwrap();
    let handles: Vec<_> = (0..256)
        .map(|i| {
            let h = reg
                .alloc(
                    ShrinkerConfig::new(format!("s{i}")).flags(if at_root {
                        ShrinkerFlags::NONE
                    } else {
                        ShrinkerFlags::MEMCG_AWARE
                    }),
                    from_fns(|_| Count::Objects(100), |_| Scan::Freed(0)),
                )
                .unwrap()
                .register();
            if !at_root {
                h.set_bit(&child, 0).unwrap();
            }
            h
        })
        .collect();
    let start = std::time::Instant::now();
    let mut visited = 0;
    for _ in 0..iters {
        let target = if at_root { &root } else { &child };
        visited += reg.shrink_slab(target, 0, 0).unwrap().visited;
    }
    let el = start.elapsed();
    println!(
        "{visited} visits, {:.1} ns/visit",
        el.as_nanos() as f64 / visited as f64
    );
    drop(handles);
}
