//! A tight register+free loop for one design, with 100 other memcg-aware
//! shrinkers registered (bits in a child and the root), as in the bench's
//! registration workload when idle; for profilers and quick A/B runs.
//!
//! `cargo run --release -p unishrink-baselines --features unified --example design_register -- <design> [cycles]`
//! with `<design>` one of `rwsem`, `srcu`, `split`, `unified`.
use std::hint::black_box;
use std::time::Instant;

use unishrink_baselines::rwsem::Rwsem;
use unishrink_baselines::split::Split;
use unishrink_baselines::srcu::Srcu;
use unishrink_baselines::{from_fns, Count, Design, DesignConfig, Scan, ShrinkerSpec};

fn run<D: Design>(d: D, cycles: u64) {
    let root = d.root();
    let child = d.create_memcg(&root).expect("memcg");
    let spec = ShrinkerSpec::new("bench")
        .memcg_aware(true)
        .numa_aware(true);
    let cb = from_fns(|_| Count::Objects(10), |_| Scan::Freed(0));
    let others: Vec<_> = (0..100)
        .map(|_| {
            let h = d.register(&spec, cb.clone()).expect("register");
            d.set_shrinker_bit(&child, 0, &h).expect("bit");
            d.set_shrinker_bit(&root, 0, &h).expect("bit");
            h
        })
        .collect();
    let start = Instant::now();
    for _ in 0..cycles {
        let h = d.register(&spec, cb.clone()).expect("register");
        d.free(black_box(h)).expect("free");
    }
    let ns = start.elapsed().as_nanos() as f64 / cycles as f64;
    println!("{}: {ns:.1} ns/cycle", d.name());
    for h in others {
        d.free(h).expect("free");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let design = args.get(1).map_or("unified", String::as_str);
    let cycles = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let cfg = DesignConfig { nr_nodes: 1 };
    match design {
        "rwsem" => run(Rwsem::new(cfg).expect("design"), cycles),
        "srcu" => run(Srcu::new(cfg).expect("design"), cycles),
        "split" => run(Split::new(cfg).expect("design"), cycles),
        #[cfg(feature = "unified")]
        "unified" => run(
            unishrink_baselines::unified::Unified::new(cfg).expect("design"),
            cycles,
        ),
        other => eprintln!("unknown design `{other}` (rwsem, srcu, split, unified)"),
    }
}
