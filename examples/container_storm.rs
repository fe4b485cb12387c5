//! Container storm: many memcgs start at once, each mounts a filesystem-like
//! cache (its own memcg-aware shrinker over a list_lru) and fills it, while
//! global reclaim runs and other containers unmount (free the shrinker) and
//! go offline (their items are reparented). Prints what each reclaim pass
//! freed, registration latency percentiles, and the conservation check:
//!
//! `storm: <memcgs> memcgs, <mounts> mounts, <freed> freed, 0 lost`
//!
//! Exits non-zero if any item was lost. Usage:
//! `cargo run --release --example container_storm [containers] [inodes]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use unishrink_list_lru::{ListLru, LruShrinker, LruWalk};
use unishrink_reclaim::reclaim_global;
use unishrink_shrinker::{MemcgConfig, Registry, ShrinkerConfig};

/// A cached inode of the pretend filesystem.
struct Inode {
    ino: u64,
    data: [u8; 64],
}

/// What a storm run measured.
#[derive(Debug, Default)]
pub struct StormReport {
    memcgs: usize,
    mounts: usize,
    added: u64,
    freed: u64,
    present: u64,
    passes: Vec<u64>,
    reg_latency: Vec<Duration>,
}

impl StormReport {
    fn lost(&self) -> i128 {
        self.added as i128 - self.freed as i128 - self.present as i128
    }
}

fn run(containers: usize, inodes: u64, nodes: usize) -> StormReport {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: nodes,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().expect("root");
    let freed = Arc::new(AtomicU64::new(0));
    let added = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // Mounts that outlive the storm (their items are "still present").
    let survivors: Arc<Mutex<Vec<LruShrinker<Inode>>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(containers + 1));

    // The reclaimer: global reclaim passes while containers come and go.
    let reclaimer = {
        let (reg, done, start) = (reg.clone(), done.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            let mut passes = Vec::new();
            while !done.load(Ordering::Acquire) {
                let r = reclaim_global(&reg, 4096).expect("reclaim");
                passes.push(r.freed);
                thread::yield_now();
            }
            passes
        })
    };

    let mut workers = Vec::new();
    for c in 0..containers {
        let (reg, root, freed, added, latencies, survivors, start) = (
            reg.clone(),
            root.clone(),
            freed.clone(),
            added.clone(),
            latencies.clone(),
            survivors.clone(),
            start.clone(),
        );
        workers.push(thread::spawn(move || {
            start.wait();
            let memcg = reg.create_memcg(&root).ok();
            let m = memcg.clone().unwrap_or_else(|| root.clone());
            let f = freed.clone();
            let t0 = Instant::now();
            let mount = LruShrinker::new(
                ListLru::<Inode>::new(&reg),
                ShrinkerConfig::new(format!("fs-{c}")),
                // Every 5th inode is "in use" once: rotate it.
                |ino| {
                    if ino.ino % 5 == 0 && ino.data[0] == 0 {
                        ino.data[0] = 1;
                        LruWalk::Rotate
                    } else {
                        LruWalk::Removed
                    }
                },
                move |_inode| {
                    f.fetch_add(1, Ordering::Relaxed);
                },
            )
            .expect("mount");
            latencies.lock().unwrap().push(t0.elapsed());
            for ino in 0..inodes {
                let nid = (ino as usize) % m.nr_nodes();
                mount
                    .lru()
                    .add(&m, nid, Inode { ino, data: [0; 64] })
                    .expect("add");
                added.fetch_add(1, Ordering::Relaxed);
            }
            match c % 3 {
                // Unmount: free the shrinker, drop what is cached, go offline.
                0 => {
                    let lru = mount.into_lru();
                    freed.fetch_add(lru.drain().len() as u64, Ordering::Relaxed);
                    if let Some(m) = memcg {
                        reg.offline_memcg(&m).expect("offline");
                    }
                }
                // The container dies but the mount lives on: its inodes move
                // to the root's list of that mount.
                1 => {
                    if let Some(m) = memcg {
                        reg.offline_memcg(&m).expect("offline");
                    }
                    survivors.lock().unwrap().push(mount);
                }
                _ => survivors.lock().unwrap().push(mount),
            }
        }));
    }
    for w in workers {
        w.join().expect("container thread");
    }
    done.store(true, Ordering::Release);
    let passes = reclaimer.join().expect("reclaimer");
    let survivors = std::mem::take(&mut *survivors.lock().unwrap());
    let present: u64 = survivors.iter().map(|m| m.lru().total()).sum();
    let mut reg_latency = std::mem::take(&mut *latencies.lock().unwrap());
    reg_latency.sort();
    drop(survivors);
    StormReport {
        memcgs: containers + 1,
        mounts: containers,
        added: added.load(Ordering::Relaxed),
        freed: freed.load(Ordering::Relaxed),
        present,
        passes,
        reg_latency,
    }
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let containers = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let inodes = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let t0 = Instant::now();
    let r = run(containers, inodes, 2);
    for (i, f) in r.passes.iter().enumerate().take(10) {
        println!("reclaim pass {i}: freed {f}");
    }
    if r.passes.len() > 10 {
        let rest: u64 = r.passes[10..].iter().sum();
        println!("… {} more passes freed {rest}", r.passes.len() - 10);
    }
    println!(
        "registration latency: p50 {:?} p90 {:?} p99 {:?} max {:?}",
        pct(&r.reg_latency, 0.5),
        pct(&r.reg_latency, 0.9),
        pct(&r.reg_latency, 0.99),
        pct(&r.reg_latency, 1.0)
    );
    println!(
        "added {} present {} in {:?}",
        r.added,
        r.present,
        t0.elapsed()
    );
    println!(
        "storm: {} memcgs, {} mounts, {} freed, {} lost",
        r.memcgs,
        r.mounts,
        r.freed,
        r.lost()
    );
    if r.lost() != 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_storm_loses_nothing() {
        let r = run(12, 300, 2);
        assert_eq!(r.added, 12 * 300);
        assert_eq!(r.lost(), 0, "{r:?}");
        // Unmounted containers (every third) dropped their inodes at least.
        assert!(r.freed >= 4 * 300);
        assert_eq!(r.reg_latency.len(), 12);
    }
}
