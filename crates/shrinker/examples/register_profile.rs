//! A tight alloc+register+free loop, for profilers.
//!
//! `register_profile [iters] [idle|reclaiming|elsewhere]` (env `OTHERS`: shrinkers
//! registered besides the cycling one, default 100; env `WALK_EMPTY`: the
//! walker walks a memcg without set bits instead; env `BITS=lo..hi`: only
//! the others numbered `lo..hi` have their bits set). As in `cargo xtask bench`:
//! every shrinker is memcg-aware, the others have their bits set in a child
//! memcg and in the root, and the walker walks both.
use unishrink_shrinker::*;

/// A registry with an online root, a child memcg and `n` registered shrinkers
/// whose bits are set in both (only those with an index in `bits`).
fn populated(
    n: u32,
    bits: std::ops::Range<u32>,
) -> (Registry, Memcg, Memcg, Vec<RegisteredShrinker>) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let child = reg.create_memcg(&root).unwrap();
    let hs = (0..n)
        .map(|i| {
            let h = reg
                .alloc(
                    ShrinkerConfig::new(format!("o{i}")).flags(ShrinkerFlags::MEMCG_AWARE),
                    from_fns(|_| Count::Objects(1), |_| Scan::Freed(0)),
                )
                .unwrap()
                .register();
            if bits.contains(&i) {
                h.set_bit(&child, 0).unwrap();
                h.set_bit(&root, 0).unwrap();
            }
            h
        })
        .collect();
    (reg, root, child, hs)
}

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // Second argument `reclaiming`: another thread walks this registry meanwhile;
    // `elsewhere`: it walks another registry (shares no data, only the process:
    // the epoch collector and the allocator).
    let mode = std::env::args().nth(2).unwrap_or_default();
    let reclaiming = mode == "reclaiming" || mode == "elsewhere";
    let n_others: u32 = std::env::var("OTHERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    // `BITS=lo..hi`: only the others numbered lo..hi have their bits set
    // (to tell which part of the walk's data the cost comes from).
    let bits = std::env::var("BITS")
        .ok()
        .and_then(|s| {
            let (lo, hi) = s.split_once("..")?;
            Some(lo.parse().ok()?..hi.parse().ok()?)
        })
        .unwrap_or(0..n_others);
    let (reg, root, child, others) = populated(n_others, bits.clone());
    let (other_reg, other_root, other_child, other_hs) = populated(100, bits);
    // The walker owns clones and the stop flag is on the heap, padded: a
    // walker reading the registering thread's stack (references to `main`'s
    // locals) or a flag beside its hot data would share cache lines with
    // every registration, as `cargo xtask bench`'s walker does not.
    let (walk_reg, walk_root, walk_child) = if mode == "elsewhere" {
        (other_reg.clone(), other_root.clone(), other_child.clone())
    } else {
        (reg.clone(), root.clone(), child.clone())
    };
    // `WALK_EMPTY`: the walker walks a memcg with no bits set (the common
    // case of a reclaim pass over many memcgs): a tight loop of empty walks.
    let (walk_root, walk_child) = if std::env::var_os("WALK_EMPTY").is_some() {
        let empty = walk_reg.create_memcg(&walk_root).unwrap();
        (empty.clone(), empty)
    } else {
        (walk_root, walk_child)
    };
    let stop = std::sync::Arc::new(crossbeam_utils::CachePadded::new(
        std::sync::atomic::AtomicBool::new(false),
    ));
    std::thread::scope(|scope| {
        if reclaiming {
            let stop = stop.clone();
            scope.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(walk_reg.shrink_slab(&walk_child, 0, 12).unwrap());
                    std::hint::black_box(walk_reg.shrink_slab(&walk_root, 0, 12).unwrap());
                }
            });
        }
        let start = std::time::Instant::now();
        for _ in 0..iters {
            let s = reg
                .alloc(
                    ShrinkerConfig::new("cycle").flags(ShrinkerFlags::MEMCG_AWARE),
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
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    drop((others, other_hs));
}
