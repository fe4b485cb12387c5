//! One node's list: a doubly linked list threaded through a slot arena, so
//! that a handle can name an item by slot index and remove it in O(1).

use std::sync::Arc;

use crate::Tracker;

const NIL: u32 = u32::MAX;

struct Slot<T> {
    entry: Option<(T, Arc<Tracker>)>,
    prev: u32,
    next: u32,
}

pub(crate) struct NodeList<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
    /// Set by the reparent hook: the memcg is gone, adds go to the parent.
    pub(crate) dead: bool,
}

impl<T> NodeList<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            dead: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn head(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    pub(crate) fn next(&self, slot: u32) -> Option<u32> {
        let n = self.slots[slot as usize].next;
        (n != NIL).then_some(n)
    }

    pub(crate) fn item_mut(&mut self, slot: u32) -> &mut T {
        &mut self.slots[slot as usize]
            .entry
            .as_mut()
            .expect("walked slots are occupied")
            .0
    }

    fn alloc(&mut self, item: T, tracker: Arc<Tracker>) -> u32 {
        let slot = Slot {
            entry: Some((item, tracker)),
            prev: NIL,
            next: NIL,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn link_back(&mut self, i: u32) {
        self.slots[i as usize].prev = self.tail;
        self.slots[i as usize].next = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            self.slots[self.tail as usize].next = i;
        }
        self.tail = i;
    }

    fn link_front(&mut self, i: u32) {
        self.slots[i as usize].next = self.head;
        self.slots[i as usize].prev = NIL;
        if self.head == NIL {
            self.tail = i;
        } else {
            self.slots[self.head as usize].prev = i;
        }
        self.head = i;
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if p == NIL {
            self.head = n;
        } else {
            self.slots[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.slots[n as usize].prev = p;
        }
    }

    /// Appends at the tail and points `tracker` at the new slot.
    pub(crate) fn push_back(&mut self, item: T, tracker: Arc<Tracker>, key: u64) {
        let t = tracker.clone();
        let i = self.alloc(item, tracker);
        self.link_back(i);
        self.len += 1;
        t.set(key, i);
    }

    /// Removes the item in `slot` (which must be occupied) and marks its
    /// tracker removed.
    pub(crate) fn remove(&mut self, slot: u32) -> T {
        self.unlink(slot);
        let (item, tracker) = self.slots[slot as usize]
            .entry
            .take()
            .expect("linked slots are occupied");
        tracker.set_removed();
        self.len -= 1;
        if self.len == 0 {
            // Give the arena's memory back once the list is empty.
            self.slots = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(slot);
        }
        item
    }

    /// Removes the item in `slot` only if it is the one `tracker` names.
    pub(crate) fn remove_if(&mut self, slot: u32, tracker: &Tracker) -> Option<T> {
        let s = self.slots.get(slot as usize)?;
        let (_, t) = s.entry.as_ref()?;
        if !std::ptr::eq(Arc::as_ptr(t), tracker) {
            return None;
        }
        Some(self.remove(slot))
    }

    pub(crate) fn move_to_tail(&mut self, slot: u32) {
        if self.tail != slot {
            self.unlink(slot);
            self.link_back(slot);
        }
    }

    /// Moves every item of `src` to the front of `self`, keeping their order,
    /// and points their trackers at `key` and their new slots.
    pub(crate) fn splice_front(&mut self, src: &mut NodeList<T>, key: u64) {
        let mut cur = src.tail;
        while cur != NIL {
            let prev = src.slots[cur as usize].prev;
            let (item, tracker) = src.slots[cur as usize]
                .entry
                .take()
                .expect("linked slots are occupied");
            let t = tracker.clone();
            let i = self.alloc(item, tracker);
            self.link_front(i);
            self.len += 1;
            t.set(key, i);
            cur = prev;
        }
        let dead = src.dead;
        *src = NodeList::new();
        src.dead = dead;
    }
}

impl<T> Drop for NodeList<T> {
    fn drop(&mut self) {
        // Items dropped with the lru: their handles must say "removed".
        for s in &self.slots {
            if let Some((_, t)) = &s.entry {
                t.set_removed();
            }
        }
    }
}
