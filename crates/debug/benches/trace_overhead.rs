//! What the `shrink_slab` tracing events cost: one `shrink_slab` over 16
//! trivial global shrinkers (count 1000, nothing to scan at priority 12, so
//! each visit is count + start event + end event), with
//!
//! * `a_no_subscriber`: no subscriber at all;
//! * `b_not_interested`: a `tracing_subscriber::fmt` subscriber at INFO
//!   (writing to a sink), installed for the bench thread;
//! * `c_interested_discard`: a subscriber enabled for everything whose
//!   `event` drops the event (the dispatch and field plumbing, no output);
//! * `d_none_after_c`: no subscriber again, after `c`'s was dropped (tracing
//!   keeps the callsites' cached interest until something rebuilds it).
//!
//! Criterion reports time per `shrink_slab`; the throughput is 16 elements,
//! so "elem/s" is visited shrinkers per second. The order of the functions
//! matters (see `d`), so they run in this order in one group.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use unishrink_shrinker::{
    from_fns, Count, MemcgConfig, RegisteredShrinker, Registry, Scan, ShrinkerConfig, DEF_PRIORITY,
};

const SHRINKERS: usize = 16;

/// Interested in everything, keeps nothing.
struct Discard;

impl Subscriber for Discard {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        black_box(e);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn bench(c: &mut Criterion) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let shrinkers: Vec<RegisteredShrinker> = (0..SHRINKERS)
        .map(|i| {
            reg.alloc(
                ShrinkerConfig::new(format!("trivial-{i}")),
                from_fns(|_| Count::Objects(1000), |sc| Scan::Freed(sc.nr_to_scan)),
            )
            .unwrap()
            .register()
        })
        .collect();
    let pass = || {
        let r = reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap();
        assert_eq!(r.visited, SHRINKERS);
        black_box(r)
    };

    let mut g = c.benchmark_group("shrink_slab_16_trivial");
    g.throughput(Throughput::Elements(SHRINKERS as u64));
    g.bench_function("a_no_subscriber", |b| b.iter(pass));
    let info = tracing_subscriber::fmt()
        .with_max_level(Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(info, || {
        g.bench_function("b_not_interested", |b| b.iter(pass));
    });
    tracing::subscriber::with_default(Discard, || {
        g.bench_function("c_interested_discard", |b| b.iter(pass));
    });
    g.bench_function("d_none_after_c", |b| b.iter(pass));
    g.finish();
    drop(shrinkers);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
