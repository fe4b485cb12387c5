//! The drop_caches workload of `cargo xtask bench` for one design, repeated,
//! for profilers: 4,000 memcgs with one memcg-aware shrinker each (objects
//! only in that memcg) plus 100 global shrinkers; priority 12 → 0 over every
//! memcg until everything is freed.
//!
//! `cargo run --release -p unishrink-baselines --features unified --example design_drop -- <design> [memcgs] [rounds]`
use std::time::Instant;

use unishrink_baselines::rwsem::Rwsem;
use unishrink_baselines::split::Split;
use unishrink_baselines::srcu::Srcu;
use unishrink_baselines::{memcg_cache as cache, Design, DesignConfig, ShrinkerSpec};

const OBJECTS: u64 = 1000;

/// The measured part (a separate function so that
/// `valgrind --tool=callgrind --toggle-collect='*drop_caches*'` sees only it).
#[inline(never)]
fn drop_caches<D: Design>(d: &D, memcgs: &[D::Memcg]) -> u64 {
    let mut freed = 0;
    for prio in (0..=12).rev() {
        for m in memcgs {
            freed += d.shrink_slab(m, 0, prio).expect("walk");
        }
    }
    freed
}

fn once<D: Design>(d: D, memcgs: usize) -> f64 {
    let root = d.root();
    let mut hs = Vec::new();
    let mut all = vec![root.clone()];
    for _ in 0..100 {
        let cb = cache(d.memcg_id(&root), OBJECTS);
        hs.push(
            d.register(&ShrinkerSpec::new("global"), cb)
                .expect("register"),
        );
    }
    let spec = ShrinkerSpec::new("memcg")
        .memcg_aware(true)
        .numa_aware(true);
    for _ in 0..memcgs {
        let m = d.create_memcg(&root).expect("memcg");
        let h = d
            .register(&spec, cache(d.memcg_id(&m), OBJECTS))
            .expect("register");
        d.set_shrinker_bit(&m, 0, &h).expect("bit");
        hs.push(h);
        all.push(m);
    }
    let t = Instant::now();
    let freed = drop_caches(&d, &all);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(freed, (100 + memcgs as u64) * OBJECTS);
    for h in hs {
        d.free(h).expect("free");
    }
    secs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let design = args.get(1).map_or("split", String::as_str).to_string();
    let memcgs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4000);
    let rounds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let cfg = DesignConfig { nr_nodes: 1 };
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let s = match design.as_str() {
            "rwsem" => once(Rwsem::new(cfg).expect("design"), memcgs),
            "nobitmap" => once(Rwsem::nobitmap(cfg).expect("design"), memcgs),
            "srcu" => once(Srcu::new(cfg).expect("design"), memcgs),
            "split" => once(Split::new(cfg).expect("design"), memcgs),
            #[cfg(feature = "unified")]
            "unified" => once(
                unishrink_baselines::unified::Unified::new(cfg).expect("design"),
                memcgs,
            ),
            other => {
                eprintln!("unknown design `{other}`");
                return;
            }
        };
        best = best.min(s);
    }
    println!("{design}: best of {rounds}: {best:.4} s");
}
