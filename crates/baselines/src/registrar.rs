//! Writer-side bookkeeping the three baselines share, held under each
//! design's own writer lock: shrinker ids (lowest free, like `idr_alloc`),
//! `map_nr_max`, and the memcgs whose flat shrinker_info grows with it.

use crate::ids::IdAllocator;
use crate::memcg::{nr_max_for, Memcg};
use crate::table::MAX_IDS;
use crate::Error;

/// See the module docs. Not synchronized: callers hold their writer lock.
#[derive(Default)]
pub(crate) struct Registrar {
    pub(crate) ids: IdAllocator,
    /// Capacity of every memcg's info, a multiple of 64.
    pub(crate) nr_max: usize,
    /// Every memcg (the root first); never shrinks, as no workload offlines.
    pub(crate) memcgs: Vec<Memcg>,
    next_memcg_id: usize,
}

impl Registrar {
    /// Bookkeeping for a design whose root memcg is `root` (id 0).
    pub(crate) fn new(root: Memcg) -> Self {
        Self {
            memcgs: vec![root],
            next_memcg_id: 1,
            ..Self::default()
        }
    }

    /// A new child memcg sized at the current capacity.
    pub(crate) fn create_memcg(&mut self, owner: usize, nr_nodes: usize) -> Memcg {
        let id = self.next_memcg_id;
        self.next_memcg_id += 1;
        let m = Memcg::new(id, false, owner, nr_nodes, self.nr_max);
        self.memcgs.push(m.clone());
        m
    }

    /// An id for a memcg-aware shrinker (growing every memcg's info first
    /// when it is beyond capacity); `None` for a global shrinker, which the
    /// kernel's split designs keep on a list instead.
    pub(crate) fn alloc_id(&mut self, memcg_aware: bool) -> Result<Option<usize>, Error> {
        if !memcg_aware {
            return Ok(None);
        }
        let id = self.ids.alloc();
        if id >= MAX_IDS {
            self.ids.release(id);
            return Err(Error::IdSpaceFull);
        }
        if id >= self.nr_max {
            let n = nr_max_for(id);
            for m in &self.memcgs {
                m.grow(n);
            }
            self.nr_max = n;
        }
        Ok(Some(id))
    }
}
