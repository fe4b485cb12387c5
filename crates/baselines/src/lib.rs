//! The designs the benchmarks compare: rwsem, srcu, split (kernel >= 6.7) and an adapter over the unified crates.
