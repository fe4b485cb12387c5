//! The eager, flat shrinker_info of the baselines: `map_nr_max` bits and
//! `map_nr_max` deferred counters per memcg per node, replaced by a bigger
//! copy when an id beyond `map_nr_max` is allocated.
//!
//! A copy loses bits and counts written to the old array after it was copied
//! (Linux ≤ 6.6 had the same window for `set_shrinker_bit`); the benchmarks
//! never grow while measuring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Flat shrinker_info of one memcg on one node.
#[derive(Debug)]
pub struct FlatInfo {
    map: Box<[AtomicU64]>,
    deferred: Box<[AtomicU64]>,
}

impl FlatInfo {
    /// Empty info with room for `map_nr_max` ids (rounded up to 64).
    pub fn new(map_nr_max: usize) -> Self {
        let words = map_nr_max.div_ceil(64);
        Self {
            map: (0..words).map(|_| AtomicU64::new(0)).collect(),
            deferred: (0..words * 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A copy of `old` with room for `map_nr_max` ids.
    pub fn grown_from(old: &FlatInfo, map_nr_max: usize) -> Self {
        let new = Self::new(map_nr_max.max(old.map_nr_max()));
        for (d, s) in new.map.iter().zip(old.map.iter()) {
            d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (d, s) in new.deferred.iter().zip(old.deferred.iter()) {
            d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        new
    }

    /// Capacity in ids.
    pub fn map_nr_max(&self) -> usize {
        self.map.len() * 64
    }

    /// Bytes this layout takes for `map_nr_max` ids (struct + bitmap + counters).
    pub fn bytes_for(map_nr_max: usize) -> usize {
        let words = map_nr_max.div_ceil(64);
        std::mem::size_of::<Self>() + words * 8 + words * 64 * 8
    }

    /// Bytes allocated by this instance.
    pub fn bytes(&self) -> usize {
        Self::bytes_for(self.map_nr_max())
    }

    /// Set bit `id` after a full barrier (pairs with the walker's clear + barrier).
    /// Returns false if `id` is out of range.
    pub fn set_bit(&self, id: usize) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        match self.map.get(id / 64) {
            Some(w) => {
                w.fetch_or(1 << (id % 64), Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Clear bit `id`.
    pub fn clear_bit(&self, id: usize) {
        if let Some(w) = self.map.get(id / 64) {
            w.fetch_and(!(1 << (id % 64)), Ordering::SeqCst);
        }
    }

    /// Whether bit `id` is set.
    pub fn test_bit(&self, id: usize) -> bool {
        self.map
            .get(id / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (id % 64)) != 0)
    }

    pub(crate) fn words(&self) -> &[AtomicU64] {
        &self.map
    }

    pub(crate) fn deferred(&self, id: usize) -> &AtomicU64 {
        &self.deferred[id]
    }
}
