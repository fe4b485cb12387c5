//! Walk cost vs `map_nr_max`, and memory for many sparse infos.
//!
//! * `walk/16_same/{64,262144}`: iterate 16 set bits (ids 0, 4, .., 60) at
//!   capacity 64 and 262,144 (goal: ratio ≤ 1.5).
//! * `walk/16_spread/262144`: the same 16 bits spread over 16 units (one per
//!   16,384 ids), to show the per-unit cost.
//! * Printed: `bytes()` summed over 10,000 infos × 10,000 ids with 2 bits set
//!   (goal ≤ 16 MB), plus the RSS growth for comparison.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use unishrink_shrinker_info::ShrinkerInfo;

fn info_with(map: usize, ids: impl IntoIterator<Item = usize>) -> ShrinkerInfo {
    let info = ShrinkerInfo::new(map).unwrap();
    for id in ids {
        info.set_bit(id).unwrap();
    }
    info
}

fn walk(c: &mut Criterion) {
    let mut g = c.benchmark_group("walk");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for map in [64usize, 262_144] {
        let info = info_with(map, (0..16).map(|i| i * 4));
        assert_eq!(info.iter_set_bits().count(), 16);
        g.bench_function(format!("16_same/{map}"), |b| {
            b.iter(|| black_box(&info).iter_set_bits().fold(0usize, |a, x| a ^ x))
        });
    }
    let info = info_with(262_144, (0..16).map(|i| i * 16_384 + 7));
    g.bench_function("16_spread/262144", |b| {
        b.iter(|| black_box(&info).iter_set_bits().fold(0usize, |a, x| a ^ x))
    });
    g.finish();
}

fn rss_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory(_c: &mut Criterion) {
    let rss0 = rss_bytes();
    let infos: Vec<ShrinkerInfo> = (0..10_000)
        .map(|i| info_with(10_000, [i % 10_000, (i * 7 + 5_000) % 10_000]))
        .collect();
    let total: usize = infos.iter().map(ShrinkerInfo::bytes).sum();
    let rss1 = rss_bytes();
    println!(
        "memory: 10,000 infos x 10,000 ids, 2 bits set: bytes() sum = {total} B ({:.2} MB, goal <= 16 MB); kernel eager layout ~{:.0} MB",
        total as f64 / 1e6,
        10_000.0 * 10_000.0 * 8.0 / 1e6
    );
    if let (Some(a), Some(b)) = (rss0, rss1) {
        println!(
            "memory: RSS growth while building them = {:.2} MB",
            (b.saturating_sub(a)) as f64 / 1e6
        );
    }
    black_box(infos);
}

criterion_group!(benches, walk, memory);
criterion_main!(benches);
