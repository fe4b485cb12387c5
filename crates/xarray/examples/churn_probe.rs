//! Probe: reader ns/load while a writer churns (a) the same index range,
//! (b) a disjoint subtree, (c) nothing. Not a benchmark of record.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use unishrink_xarray::{pin, XArray};

fn main() {
    for mode in ["quiet", "same", "disjoint", "disjoint-noerase"] {
        let xa = Arc::new(XArray::<u64>::new());
        for i in 0..4096u64 {
            xa.store(i, Arc::new(i)).unwrap();
        }
        for i in 0..4096u64 {
            xa.store(1 << 30 | i, Arc::new(i)).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (xa, stop) = (xa.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k = (k * 6364136223846793005 + 1442695040888963407) % 4096;
                    match mode {
                        "same" => {
                            if let Some(v) = xa.erase(k) {
                                let _ = xa.store(k, v);
                            }
                        }
                        "disjoint" => {
                            if let Some(v) = xa.erase(1 << 30 | k) {
                                let _ = xa.store(1 << 30 | k, v);
                            }
                        }
                        "disjoint-noerase" => {
                            let _ = xa.store(1 << 30 | k, Arc::new(k));
                        }
                        _ => std::hint::spin_loop(),
                    }
                }
            })
        };
        let n = 20_000_000u64;
        let t = Instant::now();
        let mut hits = 0;
        let mut k = 1u64;
        for _ in 0..n {
            k = (k * 6364136223846793005 + 1442695040888963407) % 4096;
            let g = pin();
            hits += xa.load(k, &g).is_some() as u64;
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap();
        println!("{mode:>18}: {ns:.1} ns/load ({hits} hits)");
    }
}
