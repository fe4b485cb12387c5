//! Per-node shrinker_info: lazily allocated units of shrinker bits and
//! nr_deferred counters, grown by pointer swap.
//!
//! TEMPORARY STAND-IN with the final API (a mutex around flat vectors), so
//! dependent crates can build while the real lock-free version is written.
#![allow(missing_docs)]
use std::sync::Mutex;

pub const UNIT_BITS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    IdOutOfRange { id: usize, map_nr_max: usize },
    OutOfMemory,
}
impl std::fmt::Display for InfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for InfoError {}

struct Inner {
    bits: Vec<bool>,
    deferred: Vec<u64>,
}

pub struct ShrinkerInfo {
    inner: Mutex<Inner>,
}

fn round(n: usize) -> usize {
    n.div_ceil(UNIT_BITS) * UNIT_BITS
}

impl ShrinkerInfo {
    pub fn new(map_nr_max: usize) -> Result<Self, InfoError> {
        let n = round(map_nr_max);
        Ok(Self {
            inner: Mutex::new(Inner {
                bits: vec![false; n],
                deferred: vec![0; n],
            }),
        })
    }
    pub fn map_nr_max(&self) -> usize {
        self.inner.lock().unwrap().bits.len()
    }
    pub fn expand(&self, new_nr_max: usize) -> Result<(), InfoError> {
        let n = round(new_nr_max);
        let mut g = self.inner.lock().unwrap();
        if n > g.bits.len() {
            g.bits.resize(n, false);
            g.deferred.resize(n, 0);
        }
        Ok(())
    }
    pub fn set_bit(&self, id: usize) -> Result<(), InfoError> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let mut g = self.inner.lock().unwrap();
        let map_nr_max = g.bits.len();
        *g.bits
            .get_mut(id)
            .ok_or(InfoError::IdOutOfRange { id, map_nr_max })? = true;
        Ok(())
    }
    pub fn clear_bit(&self, id: usize) {
        if let Some(b) = self.inner.lock().unwrap().bits.get_mut(id) {
            *b = false;
        }
    }
    pub fn test_bit(&self, id: usize) -> bool {
        self.inner
            .lock()
            .unwrap()
            .bits
            .get(id)
            .copied()
            .unwrap_or(false)
    }
    pub fn iter_set_bits(&self) -> std::vec::IntoIter<usize> {
        let g = self.inner.lock().unwrap();
        g.bits
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
            .into_iter()
    }
    pub fn nr_deferred(&self, id: usize) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .deferred
            .get(id)
            .copied()
            .unwrap_or(0)
    }
    pub fn xchg_nr_deferred(&self, id: usize) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .deferred
            .get_mut(id)
            .map(std::mem::take)
            .unwrap_or(0)
    }
    pub fn add_nr_deferred(&self, id: usize, delta: u64) -> Result<u64, InfoError> {
        let mut g = self.inner.lock().unwrap();
        let map_nr_max = g.bits.len();
        let d = g
            .deferred
            .get_mut(id)
            .ok_or(InfoError::IdOutOfRange { id, map_nr_max })?;
        *d = d.saturating_add(delta);
        Ok(*d)
    }
    pub fn reparent_into(&self, parent: &ShrinkerInfo) -> Result<(), InfoError> {
        let moved: Vec<(usize, u64)> = {
            let mut g = self.inner.lock().unwrap();
            g.deferred
                .iter_mut()
                .enumerate()
                .filter(|(_, d)| **d != 0)
                .map(|(i, d)| (i, std::mem::take(d)))
                .collect()
        };
        parent.expand(self.map_nr_max())?;
        for (i, d) in moved {
            parent.add_nr_deferred(i, d)?;
        }
        Ok(())
    }
    pub fn bytes(&self) -> usize {
        let g = self.inner.lock().unwrap();
        g.bits.len() * 9
    }
}
