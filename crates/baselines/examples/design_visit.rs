//! A tight `shrink_slab` loop over trivial memcg-aware shrinkers for one
//! design, for profilers and for quick A/B runs of the visit cost.
//!
//! `cargo run --release -p unishrink-baselines --features unified --example design_visit -- <design> [child|root] [shrinkers] [walks] [stride]`
//! with `<design>` one of `rwsem`, `srcu`, `split`, `unified`. With a
//! `stride` above 1, `shrinkers × stride` are registered and all but every
//! `stride`-th freed again, so ids (and memory) are sparse, as in the bench's
//! traversal at `set_bits < map_nr_max`.
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use unishrink_baselines::rwsem::Rwsem;
use unishrink_baselines::split::Split;
use unishrink_baselines::srcu::Srcu;
use unishrink_baselines::{from_fns, Count, Design, DesignConfig, Scan, ShrinkerSpec};

fn run<D: Design>(d: D, at_root: bool, n: usize, walks: u64, stride: usize) {
    let root = d.root();
    let child = d.create_memcg(&root).expect("memcg");
    let target = if at_root { &root } else { &child };
    // As the bench's `trivial()`: small enough that no work is ever deferred.
    let cb = from_fns(|_| Count::Objects(10), |_| Scan::Freed(0));
    let spec = ShrinkerSpec::new("profile").memcg_aware(true);
    let all: Vec<_> = (0..n * stride)
        .map(|_| d.register(&spec, Arc::clone(&cb)).expect("register"))
        .collect();
    let mut hs = Vec::with_capacity(n);
    for (i, h) in all.into_iter().enumerate() {
        if i % stride == 0 {
            d.set_shrinker_bit(target, 0, &h).expect("bit");
            hs.push(h);
        } else {
            d.free(h).expect("free");
        }
    }
    let start = Instant::now();
    for _ in 0..walks {
        black_box(d.shrink_slab(target, 0, 0).expect("walk"));
    }
    let ns = start.elapsed().as_nanos() as f64 / (walks as f64 * n as f64);
    println!(
        "{} {}: {ns:.1} ns/visit",
        d.name(),
        if at_root { "root" } else { "child" }
    );
    for h in hs {
        d.free(h).expect("free");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let design = args.get(1).map_or("split", String::as_str);
    let at_root = args.get(2).map(String::as_str) == Some("root");
    let n = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
    let walks = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let stride = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let cfg = DesignConfig { nr_nodes: 1 };
    match design {
        "rwsem" => run(Rwsem::new(cfg).expect("design"), at_root, n, walks, stride),
        "srcu" => run(Srcu::new(cfg).expect("design"), at_root, n, walks, stride),
        "split" => run(Split::new(cfg).expect("design"), at_root, n, walks, stride),
        #[cfg(feature = "unified")]
        "unified" => run(
            unishrink_baselines::unified::Unified::new(cfg).expect("design"),
            at_root,
            n,
            walks,
            stride,
        ),
        other => eprintln!("unknown design `{other}` (rwsem, srcu, split, unified)"),
    }
}
