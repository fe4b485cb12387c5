//! Criterion micro-benchmarks of the unified `shrink_slab` through the
//! facade: one walk over `set_bits` shrinkers out of an id space of
//! `map_nr_max`, for a child memcg and for the root. The side-by-side
//! comparison with the other designs is `cargo xtask bench`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use unishrink::shrinker::*;

/// A registry whose ids reach `map_nr_max`, with `set_bits` live shrinkers
/// spread over the id space (the rest freed), bits set in `child`.
fn setup(map_nr_max: usize, set_bits: usize) -> (Registry, Memcg, Memcg, Vec<RegisteredShrinker>) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let child = reg.create_memcg(&root).unwrap();
    let stride = map_nr_max / set_bits;
    let mut keep = Vec::new();
    let mut drop_later = Vec::new();
    for i in 0..map_nr_max {
        let s = reg
            .alloc(
                ShrinkerConfig::new("bench").flags(ShrinkerFlags::MEMCG_AWARE),
                from_fns(|_| Count::Objects(100), |_| Scan::Freed(0)),
            )
            .unwrap();
        if i % stride == 0 && keep.len() < set_bits {
            let s = s.register();
            s.set_bit(&child, 0).unwrap();
            s.set_bit(&root, 0).unwrap();
            keep.push(s);
        } else {
            drop_later.push(s);
        }
    }
    drop(drop_later);
    (reg, root, child, keep)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("shrink_slab");
    for &(map_nr_max, set_bits) in &[(64, 16), (4096, 16), (65_536, 16)] {
        let (reg, root, child, _keep) = setup(map_nr_max, set_bits);
        g.bench_with_input(BenchmarkId::new("memcg", map_nr_max), &child, |b, m| {
            b.iter(|| black_box(reg.shrink_slab(m, 0, 0).unwrap().visited))
        });
        g.bench_with_input(BenchmarkId::new("root", map_nr_max), &root, |b, m| {
            b.iter(|| black_box(reg.shrink_slab(m, 0, 0).unwrap().visited))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
