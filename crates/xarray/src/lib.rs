//! An RCU radix tree with IDR-style id allocation, lock-free lookups and marks.
//!
//! TEMPORARY STAND-IN: a mutex-protected map with the final API, so dependent
//! crates can build while the real radix tree is written.
#![allow(missing_docs)]
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

pub use crossbeam_epoch::{pin, Guard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Mark0,
    Mark1,
    Mark2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    Full,
    EmptyRange,
    OutOfMemory,
}
impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for AllocError {}

struct Inner<T> {
    map: BTreeMap<u64, (Arc<T>, u8)>,
    next: u64,
}

pub struct XArray<T: Send + Sync + 'static> {
    inner: Mutex<Inner<T>>,
}

impl<T: Send + Sync + 'static> Default for XArray<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn keep<'g, T: Send + Sync + 'static>(a: &Arc<T>, guard: &'g Guard) -> &'g T {
    let c = a.clone();
    let p = Arc::as_ptr(&c);
    guard.defer(move || drop(c));
    // SAFETY: stand-in; the clone lives until after the guard is released.
    unsafe { &*p }
}

impl<T: Send + Sync + 'static> XArray<T> {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: BTreeMap::new(),
                next: 0,
            }),
        }
    }
    pub fn load<'g>(&self, index: u64, guard: &'g Guard) -> Option<&'g T> {
        let g = self.inner.lock().unwrap();
        g.map.get(&index).map(|(a, _)| keep(a, guard))
    }
    pub fn get(&self, index: u64) -> Option<Arc<T>> {
        self.inner
            .lock()
            .unwrap()
            .map
            .get(&index)
            .map(|(a, _)| a.clone())
    }
    pub fn store(&self, index: u64, value: Arc<T>) -> Result<Option<Arc<T>>, AllocError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .map
            .insert(index, (value, 0))
            .map(|x| x.0))
    }
    pub fn erase(&self, index: u64) -> Option<Arc<T>> {
        self.inner.lock().unwrap().map.remove(&index).map(|x| x.0)
    }
    fn first_free(map: &BTreeMap<u64, (Arc<T>, u8)>, range: RangeInclusive<u64>) -> Option<u64> {
        let mut want = *range.start();
        for (&k, _) in map.range(range.clone()) {
            if k != want {
                return Some(want);
            }
            if k == *range.end() {
                return None;
            }
            want = k + 1;
        }
        Some(want)
    }
    pub fn alloc(&self, value: Arc<T>, range: RangeInclusive<u64>) -> Result<u64, AllocError> {
        if range.start() > range.end() {
            return Err(AllocError::EmptyRange);
        }
        let mut g = self.inner.lock().unwrap();
        let id = Self::first_free(&g.map, range).ok_or(AllocError::Full)?;
        g.map.insert(id, (value, 0));
        Ok(id)
    }
    pub fn alloc_cyclic(
        &self,
        value: Arc<T>,
        range: RangeInclusive<u64>,
    ) -> Result<u64, AllocError> {
        if range.start() > range.end() {
            return Err(AllocError::EmptyRange);
        }
        let mut g = self.inner.lock().unwrap();
        let from = g.next.clamp(*range.start(), *range.end());
        let id = Self::first_free(&g.map, from..=*range.end())
            .or_else(|| Self::first_free(&g.map, range.clone()))
            .ok_or(AllocError::Full)?;
        g.map.insert(id, (value, 0));
        g.next = id.wrapping_add(1);
        Ok(id)
    }
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn iter<'g>(&self, start: u64, guard: &'g Guard) -> std::vec::IntoIter<(u64, &'g T)> {
        let g = self.inner.lock().unwrap();
        g.map
            .range(start..)
            .map(|(k, (a, _))| (*k, keep(a, guard)))
            .collect::<Vec<_>>()
            .into_iter()
    }
    pub fn set_mark(&self, index: u64, mark: Mark) -> bool {
        let mut g = self.inner.lock().unwrap();
        match g.map.get_mut(&index) {
            Some(e) => {
                e.1 |= 1 << mark as u8;
                true
            }
            None => false,
        }
    }
    pub fn clear_mark(&self, index: u64, mark: Mark) -> bool {
        let mut g = self.inner.lock().unwrap();
        match g.map.get_mut(&index) {
            Some(e) => {
                e.1 &= !(1 << mark as u8);
                true
            }
            None => false,
        }
    }
    pub fn get_mark(&self, index: u64, mark: Mark) -> bool {
        let g = self.inner.lock().unwrap();
        g.map
            .get(&index)
            .is_some_and(|e| e.1 & (1 << mark as u8) != 0)
    }
    pub fn iter_marked<'g>(
        &self,
        start: u64,
        mark: Mark,
        guard: &'g Guard,
    ) -> std::vec::IntoIter<(u64, &'g T)> {
        let g = self.inner.lock().unwrap();
        g.map
            .range(start..)
            .filter(|(_, e)| e.1 & (1 << mark as u8) != 0)
            .map(|(k, (a, _))| (*k, keep(a, guard)))
            .collect::<Vec<_>>()
            .into_iter()
    }
    pub fn height(&self) -> usize {
        0
    }
}
