//! Bounded stress test: setters/clearers and deferred-count writers race a
//! thread that expands repeatedly and walkers that iterate (and so clean the
//! summary). Checks at the end that no bit and no deferred count was lost, and
//! during the run that a bit set before a walk started (and never cleared) is
//! always found by the walk. Also run under AddressSanitizer:
//! `RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" cargo test -p
//! unishrink-shrinker-info --target x86_64-unknown-linux-gnu --test stress`.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use unishrink_shrinker_info::{InfoError, ShrinkerInfo};

const WRITERS: usize = 3;
const OPS: usize = 40_000;
const START: usize = 64;
const END: usize = 64 * 600;
/// Number of 64-id growths from START to END.
const GROWTHS: usize = (END - START) / 64;
/// Ids a writer uses: `w + WRITERS * k` for `k < PER_WRITER`.
const PER_WRITER: usize = END / WRITERS;
/// Per writer, ids with `k % STICKY_EVERY == 0` are set once and never cleared.
const STICKY_EVERY: usize = 97;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct WriterResult {
    bits: Vec<(usize, bool)>,
    added: u64,
    taken: u64,
}

#[test]
fn concurrent_set_clear_add_expand_walk() {
    let info = Arc::new(ShrinkerInfo::new(START).unwrap());
    // sticky[id] = the sticky bit of `id` is set (published after set_bit).
    let sticky: Arc<Vec<AtomicBool>> = Arc::new((0..END).map(|_| AtomicBool::new(false)).collect());
    let writers_done = Arc::new(AtomicUsize::new(0));
    // Pacing: per-writer ops done, and growths done.
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
    let grown = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(WRITERS + 3));
    let mut handles = Vec::new();

    for w in 0..WRITERS {
        let (info, sticky, done, start) = (
            info.clone(),
            sticky.clone(),
            writers_done.clone(),
            start.clone(),
        );
        let (progress, grown) = (progress.clone(), grown.clone());
        handles.push(thread::spawn(move || {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
            let mut state = vec![false; PER_WRITER];
            let (mut added, mut taken) = (0u64, 0u64);
            start.wait();
            for op in 0..OPS {
                // Lock-step with the expander (slack 2 growths each way) so
                // the growths are spread over the whole run on any scheduler.
                let need = (op * GROWTHS / OPS).saturating_sub(2);
                while grown.load(Ordering::SeqCst) < need {
                    thread::yield_now();
                }
                progress[w].store(op, Ordering::SeqCst);
                let k = rng.below(PER_WRITER);
                let id = w + WRITERS * k;
                let sticky_id = k % STICKY_EVERY == 0;
                match rng.below(4) {
                    0 | 1 => match info.set_bit(id) {
                        Ok(()) => {
                            state[k] = true;
                            if sticky_id {
                                sticky[id].store(true, Ordering::SeqCst);
                            }
                        }
                        Err(InfoError::IdOutOfRange { .. }) => {}
                        Err(e) => panic!("set_bit: {e}"),
                    },
                    2 => {
                        if !sticky_id {
                            info.clear_bit(id);
                            state[k] = false;
                        }
                    }
                    _ => {
                        if rng.below(3) == 0 {
                            taken += info.xchg_nr_deferred(id);
                        } else {
                            let d = rng.below(100) as u64 + 1;
                            match info.add_nr_deferred(id, d) {
                                Ok(_) => added += d,
                                Err(InfoError::IdOutOfRange { .. }) => {}
                                Err(e) => panic!("add: {e}"),
                            }
                        }
                    }
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            let bits = (0..PER_WRITER)
                .map(|k| (w + WRITERS * k, state[k]))
                .collect();
            WriterResult { bits, added, taken }
        }));
    }

    let expander = {
        let (info, done, start) = (info.clone(), writers_done.clone(), start.clone());
        let (progress, grown) = (progress.clone(), grown.clone());
        thread::spawn(move || {
            start.wait();
            for g in 1..=GROWTHS {
                let need = g.saturating_sub(2) * OPS / GROWTHS;
                while done.load(Ordering::SeqCst) < WRITERS
                    && progress.iter().any(|p| p.load(Ordering::SeqCst) < need)
                {
                    thread::yield_now();
                }
                info.expand(START + 64 * g).unwrap();
                grown.store(g, Ordering::SeqCst);
            }
            GROWTHS
        })
    };

    let walkers: Vec<_> = (0..2)
        .map(|_| {
            let (info, sticky, done, start) = (
                info.clone(),
                sticky.clone(),
                writers_done.clone(),
                start.clone(),
            );
            thread::spawn(move || {
                start.wait();
                let mut walks = 0usize;
                while done.load(Ordering::SeqCst) < WRITERS {
                    let must: Vec<usize> = (0..END)
                        .filter(|&i| sticky[i].load(Ordering::SeqCst))
                        .collect();
                    let seen: Vec<usize> = info.iter_set_bits().collect();
                    assert!(seen.windows(2).all(|p| p[0] < p[1]), "not ascending");
                    for id in must {
                        assert!(
                            seen.binary_search(&id).is_ok(),
                            "sticky bit {id} lost by walk"
                        );
                    }
                    walks += 1;
                }
                walks
            })
        })
        .collect();

    let results: Vec<WriterResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let growths = expander.join().unwrap();
    let walks: usize = walkers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(growths > 10 && walks > 0, "growths {growths} walks {walks}");
    eprintln!("growths {growths}, walks {walks}");

    assert_eq!(info.map_nr_max(), END);
    let mut want = vec![false; END];
    let (mut added, mut taken) = (0u64, 0u64);
    for r in &results {
        for &(id, b) in &r.bits {
            want[id] = b;
            assert_eq!(info.test_bit(id), b, "bit {id}");
        }
        added += r.added;
        taken += r.taken;
    }
    let got: Vec<usize> = info.iter_set_bits().collect();
    let want_ids: Vec<usize> = (0..END).filter(|&i| want[i]).collect();
    assert_eq!(got, want_ids);
    let remaining: u64 = (0..END).map(|i| info.nr_deferred(i)).sum();
    assert_eq!(remaining + taken, added, "deferred counts lost");

    // Reparent everything into a smaller parent, conserving the sum.
    let parent = ShrinkerInfo::new(64).unwrap();
    info.reparent_into(&parent).unwrap();
    let moved: u64 = (0..END).map(|i| parent.nr_deferred(i)).sum();
    assert_eq!(moved, remaining);
    assert_eq!((0..END).map(|i| info.nr_deferred(i)).sum::<u64>(), 0);
}
