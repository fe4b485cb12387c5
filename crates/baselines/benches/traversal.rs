//! Criterion bench of the traversal workload at one size: `shrink_slab` on a
//! child memcg and on the root, `map_nr_max = 4096` (4096 shrinkers allocated,
//! all but 16 freed, spread across the id space), trivial callbacks.
//! The full sweep is `cargo xtask bench`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use unishrink_baselines::rwsem::Rwsem;
use unishrink_baselines::split::Split;
use unishrink_baselines::srcu::Srcu;
use unishrink_baselines::{from_fns, Count, Design, DesignConfig, Scan, ShrinkerSpec};

const MAP_NR_MAX: usize = 4096;
const SET_BITS: usize = 16;

fn bench_design<D: Design>(c: &mut Criterion, d: D) {
    let root = d.root();
    let child = d.create_memcg(&root).expect("memcg");
    let cb = from_fns(|_| Count::Objects(10), |_| Scan::Freed(0));
    let spec = ShrinkerSpec::new("bench")
        .memcg_aware(true)
        .numa_aware(true);
    let mut keep = Vec::new();
    let mut drop_later = Vec::new();
    for i in 0..MAP_NR_MAX {
        let h = d.register(&spec, Arc::clone(&cb)).expect("register");
        if i % (MAP_NR_MAX / SET_BITS) == 0 {
            keep.push(h);
        } else {
            drop_later.push(h);
        }
    }
    for h in drop_later {
        d.free(h).expect("free");
    }
    for h in &keep {
        d.set_shrinker_bit(&child, 0, h).expect("bit");
        d.set_shrinker_bit(&root, 0, h).expect("bit");
    }
    let name = d.name();
    c.bench_function(
        &format!("traversal/{name}/memcg/{MAP_NR_MAX}/{SET_BITS}"),
        |b| b.iter(|| black_box(d.shrink_slab(&child, 0, 0).expect("shrink"))),
    );
    c.bench_function(
        &format!("traversal/{name}/root/{MAP_NR_MAX}/{SET_BITS}"),
        |b| b.iter(|| black_box(d.shrink_slab(&root, 0, 0).expect("shrink"))),
    );
    for h in keep {
        d.free(h).expect("free");
    }
}

fn traversal(c: &mut Criterion) {
    let cfg = DesignConfig::default();
    bench_design(c, Rwsem::new(cfg).expect("rwsem"));
    bench_design(c, Srcu::new(cfg).expect("srcu"));
    bench_design(c, Split::new(cfg).expect("split"));
    #[cfg(feature = "unified")]
    bench_design(
        c,
        unishrink_baselines::unified::Unified::new(cfg).expect("unified"),
    );
}

criterion_group!(benches, traversal);
criterion_main!(benches);
