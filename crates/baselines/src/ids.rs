//! Lowest-free id allocation (what `idr_alloc` gives), for the writer side.

use std::collections::BTreeSet;

/// Hands out the lowest free id. Not synchronized: callers hold their writer lock.
#[derive(Default, Debug)]
pub(crate) struct IdAllocator {
    next: usize,
    free: BTreeSet<usize>,
}

impl IdAllocator {
    pub(crate) fn alloc(&mut self) -> usize {
        match self.free.pop_first() {
            Some(id) => id,
            None => {
                self.next += 1;
                self.next - 1
            }
        }
    }

    pub(crate) fn release(&mut self, id: usize) {
        if id + 1 == self.next {
            self.next -= 1;
            // Keep `next` minimal so `free` never holds ids at the end.
            while self.next > 0 && self.free.remove(&(self.next - 1)) {
                self.next -= 1;
            }
        } else {
            self.free.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_first() {
        let mut a = IdAllocator::default();
        assert_eq!((a.alloc(), a.alloc(), a.alloc()), (0, 1, 2));
        a.release(1);
        a.release(0);
        assert_eq!(a.alloc(), 0);
        a.release(2);
        assert_eq!(a.alloc(), 1);
        assert_eq!(a.alloc(), 2);
    }
}
