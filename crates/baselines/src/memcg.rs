//! Memcgs of the baselines: an id and one flat shrinker_info per node.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::flat::FlatInfo;

pub(crate) struct MemcgNode {
    pub(crate) id: usize,
    pub(crate) is_root: bool,
    /// Identifies the design instance that created it.
    pub(crate) owner: usize,
    pub(crate) info: Box<[ArcSwap<FlatInfo>]>,
}

/// A memcg of a baseline design (cheap to clone).
#[derive(Clone)]
pub struct Memcg(pub(crate) Arc<MemcgNode>);

impl Memcg {
    pub(crate) fn new(
        id: usize,
        is_root: bool,
        owner: usize,
        nr_nodes: usize,
        map_nr_max: usize,
    ) -> Self {
        let info = (0..nr_nodes)
            .map(|_| ArcSwap::from_pointee(FlatInfo::new(map_nr_max)))
            .collect();
        Memcg(Arc::new(MemcgNode {
            id,
            is_root,
            owner,
            info,
        }))
    }

    /// The id callbacks see (root = 0).
    pub fn id(&self) -> usize {
        self.0.id
    }

    /// Whether this is the root memcg.
    pub fn is_root(&self) -> bool {
        self.0.is_root
    }

    /// Replace every node's info by a copy with room for `map_nr_max` ids.
    pub(crate) fn grow(&self, map_nr_max: usize) {
        for slot in self.0.info.iter() {
            let old = slot.load();
            if old.map_nr_max() < map_nr_max {
                slot.store(Arc::new(FlatInfo::grown_from(&old, map_nr_max)));
            }
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.0.info.iter().map(|i| i.load().bytes()).sum()
    }
}

impl std::fmt::Debug for Memcg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memcg").field("id", &self.0.id).finish()
    }
}

/// New `map_nr_max` after allocating `id` (the kernel rounds up to a word).
pub(crate) fn nr_max_for(id: usize) -> usize {
    (id + 1).div_ceil(64) * 64
}
