//! The per-thread operation schedule: a pure function of `(seed, thread)`.
//!
//! Every step draws the same number of random words (one [`Step`]) whatever
//! the shared state is, so the *sequence of operations* a thread attempts is
//! reproducible from the seed even though their outcomes (which memcg exists,
//! which shrinker is live) depend on the interleaving.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of operation a worker thread performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Add objects to a simulated cache in some (memcg, node).
    AddItems,
    /// `shrink_slab` on one memcg, one node, some priority.
    Walk,
    /// `shrink_slab` on every memcg of a subtree.
    SubtreeWalk,
    /// `set_shrinker_bit` without adding objects (a spurious bit: allowed,
    /// and it races with the walkers' SHRINK_EMPTY clears).
    SpuriousBit,
    /// Allocate a shrinker (and usually register it).
    AllocShrinker,
    /// Free a registered shrinker (from a thread that did not allocate it).
    FreeShrinker,
    /// Create a child memcg.
    CreateMemcg,
    /// Take a leaf memcg offline (reparenting objects and deferred work).
    OfflineMemcg,
}

/// Relative weights of the operations.
const WEIGHTS: [(Op, u64); 8] = [
    (Op::AddItems, 30),
    (Op::Walk, 28),
    (Op::SubtreeWalk, 4),
    (Op::SpuriousBit, 5),
    (Op::AllocShrinker, 9),
    (Op::FreeShrinker, 8),
    (Op::CreateMemcg, 9),
    (Op::OfflineMemcg, 7),
];

/// One step: the operation and the random words that parameterize it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// Parameters (interpreted by the operation; e.g. "which memcg" is
    /// `words[0] % number_of_memcgs`).
    pub words: [u64; 4],
}

/// The random source of one worker thread.
pub struct Schedule {
    rng: StdRng,
}

impl Schedule {
    /// Thread `thread`'s schedule for `seed` (its RNG is seeded with
    /// `seed + thread`).
    pub fn new(seed: u64, thread: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed.wrapping_add(thread as u64)),
        }
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut op = WEIGHTS[0].0;
        for (o, w) in WEIGHTS {
            if pick < w {
                op = o;
                break;
            }
            pick -= w;
        }
        Step {
            op,
            words: self.rng.gen(),
        }
    }
}

/// The first `n` steps of thread `thread` for `seed`.
pub fn schedule(seed: u64, thread: usize, n: usize) -> Vec<Step> {
    let mut s = Schedule::new(seed, thread);
    (0..n).map(|_| s.next_step()).collect()
}
