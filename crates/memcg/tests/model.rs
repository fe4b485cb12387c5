//! Model-based test: random sequences of tree operations against a plain
//! model (tree shape, `Vec<bool>` bits and `Vec<u64>` counters per memcg and
//! node, cyclic id cursor).
#![cfg(feature = "memcg")]

use proptest::prelude::*;
use unishrink_memcg::{Config, Memcg, MemcgError, MemcgId, MemcgTree};
use unishrink_shrinker_info::InfoError;

const MAX_ID: u32 = 24;

#[derive(Clone, Debug)]
enum Op {
    /// Grow every memcg's shrinker_info by this many ids (0: no-op growth).
    Expand(u16),
    /// Create a child of the n-th online memcg.
    Create(usize),
    /// Offline the n-th memcg ever created (any state: exercises the errors).
    Offline(usize),
    /// (memcg, node, id) selectors on an online memcg.
    SetBit(usize, usize, usize),
    ClearBit(usize, usize, usize),
    AddDeferred(usize, usize, usize, u64),
    XchgDeferred(usize, usize, usize),
    /// Create under the n-th offline memcg (must fail).
    CreateUnderOffline(usize),
    /// Ask an online memcg for a node past the end.
    BadNode(usize, usize),
    /// Hand the tree a memcg of another tree.
    Foreign(bool),
    /// Walk the subtree of the n-th online memcg.
    Subtree(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let sel = any::<usize>();
    let delta = prop_oneof![9 => 0u64..1000, 1 => Just(u64::MAX / 2 + 1)];
    prop_oneof![
        2 => (0u16..150).prop_map(Op::Expand),
        6 => sel.prop_map(Op::Create),
        4 => sel.prop_map(Op::Offline),
        4 => (sel, sel, sel).prop_map(|(a, b, c)| Op::SetBit(a, b, c)),
        2 => (sel, sel, sel).prop_map(|(a, b, c)| Op::ClearBit(a, b, c)),
        5 => (sel, sel, sel, delta).prop_map(|(a, b, c, d)| Op::AddDeferred(a, b, c, d)),
        2 => (sel, sel, sel).prop_map(|(a, b, c)| Op::XchgDeferred(a, b, c)),
        1 => sel.prop_map(Op::CreateUnderOffline),
        1 => (sel, 0usize..3).prop_map(|(a, b)| Op::BadNode(a, b)),
        1 => any::<bool>().prop_map(Op::Foreign),
        1 => sel.prop_map(Op::Subtree),
    ]
}

/// The model of one memcg.
struct MNode {
    real: Memcg,
    id: MemcgId,
    parent: Option<usize>,
    /// Online children, in creation order.
    children: Vec<usize>,
    online: bool,
    /// Per node: bits and counters, grown on demand (absent = false / 0).
    bits: Vec<Vec<bool>>,
    deferred: Vec<Vec<u64>>,
}

struct Model {
    tree: MemcgTree,
    nr_nodes: usize,
    nodes: Vec<MNode>,
    map_nr_max: usize,
    /// Cyclic id cursor: the next id tried (wraps to 1 past MAX_ID).
    next_id: u32,
    other: MemcgTree,
    other_root: Memcg,
    other_child: Memcg,
}

fn grow<T: Clone + Default>(v: &mut Vec<T>, id: usize) -> &mut T {
    if v.len() <= id {
        v.resize(id + 1, T::default());
    }
    &mut v[id]
}

impl Model {
    fn online(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].online)
            .collect()
    }

    fn offline_ones(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].online)
            .collect()
    }

    fn push(&mut self, real: Memcg, parent: Option<usize>) {
        let idx = self.nodes.len();
        self.nodes.push(MNode {
            id: real.id(),
            real,
            parent,
            children: Vec::new(),
            online: true,
            bits: vec![Vec::new(); self.nr_nodes],
            deferred: vec![Vec::new(); self.nr_nodes],
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(idx);
        }
    }

    /// The id cyclic allocation must hand out next, or `None` if all are used.
    fn predict_id(&self) -> Option<u32> {
        let used: Vec<u32> = self.online().iter().map(|&i| self.nodes[i].id.0).collect();
        // After handing out MAX_ID the cursor wraps to the start of the range.
        let start = if self.next_id > MAX_ID {
            1
        } else {
            self.next_id
        };
        (start..=MAX_ID)
            .chain(1..start)
            .find(|id| !used.contains(id))
    }

    fn preorder(&self, from: usize, out: &mut Vec<MemcgId>) {
        let n = &self.nodes[from];
        if n.online {
            out.push(n.id);
        }
        for &c in &n.children {
            self.preorder(c, out);
        }
    }

    fn pick_online(&self, sel: usize) -> usize {
        let online = self.online();
        online[sel % online.len()]
    }

    /// Id within the memcg's current real capacity on `nid`, or `None`.
    fn pick_id(&self, idx: usize, nid: usize, sel: usize) -> Option<usize> {
        let cap = self.nodes[idx]
            .real
            .shrinker_info(nid)
            .unwrap()
            .map_nr_max();
        (cap > 0).then(|| sel % cap)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Expand(by) => {
                let new = self.map_nr_max + by as usize;
                self.tree.expand_all(new).unwrap();
                self.map_nr_max = self.map_nr_max.max(new);
            }
            Op::Create(sel) => {
                let p = self.pick_online(sel);
                let expect = self.predict_id();
                match self.tree.create(&self.nodes[p].real) {
                    Ok(child) => {
                        prop_assert_eq!(Some(child.id().0), expect, "cyclic id");
                        prop_assert_eq!(child.parent(), Some(&self.nodes[p].real));
                        prop_assert!(child.is_online());
                        self.next_id = child.id().0 + 1;
                        self.push(child, Some(p));
                    }
                    Err(e) => {
                        prop_assert_eq!(e, MemcgError::IdSpaceExhausted);
                        prop_assert_eq!(expect, None);
                    }
                }
            }
            Op::Offline(sel) => {
                let idx = sel % self.nodes.len();
                let real = self.nodes[idx].real.clone();
                let res = self.tree.offline(&real);
                let n = &self.nodes[idx];
                match n.parent {
                    None => prop_assert_eq!(res, Err(MemcgError::IsRoot)),
                    Some(_) if !n.online => prop_assert_eq!(res, Err(MemcgError::Offline(n.id))),
                    Some(_) if !n.children.is_empty() => {
                        prop_assert_eq!(res, Err(MemcgError::HasChildren(n.id)))
                    }
                    Some(p) => {
                        prop_assert_eq!(res, Ok(()));
                        prop_assert!(!real.is_online());
                        self.offline_model(idx, p)?;
                    }
                }
            }
            Op::SetBit(m, nid, id) | Op::ClearBit(m, nid, id) => {
                let idx = self.pick_online(m);
                let nid = nid % self.nr_nodes;
                let real = self.nodes[idx].real.clone();
                let info = real.shrinker_info(nid).unwrap();
                let set = matches!(op, Op::SetBit(..));
                match self.pick_id(idx, nid, id) {
                    Some(id) if set => {
                        info.set_bit(id).unwrap();
                        *grow(&mut self.nodes[idx].bits[nid], id) = true;
                    }
                    Some(id) => {
                        info.clear_bit(id);
                        *grow(&mut self.nodes[idx].bits[nid], id) = false;
                    }
                    None if set => {
                        let r = info.set_bit(0);
                        prop_assert!(
                            matches!(r, Err(InfoError::IdOutOfRange { .. })),
                            "set_bit on empty info: {:?}",
                            r
                        );
                    }
                    None => info.clear_bit(0),
                }
            }
            Op::AddDeferred(m, nid, id, delta) => {
                let idx = self.pick_online(m);
                let nid = nid % self.nr_nodes;
                let real = self.nodes[idx].real.clone();
                let info = real.shrinker_info(nid).unwrap();
                if let Some(id) = self.pick_id(idx, nid, id) {
                    let slot = grow(&mut self.nodes[idx].deferred[nid], id);
                    *slot = slot.saturating_add(delta);
                    prop_assert_eq!(info.add_nr_deferred(id, delta), Ok(*slot));
                }
            }
            Op::XchgDeferred(m, nid, id) => {
                let idx = self.pick_online(m);
                let nid = nid % self.nr_nodes;
                let real = self.nodes[idx].real.clone();
                let info = real.shrinker_info(nid).unwrap();
                if let Some(id) = self.pick_id(idx, nid, id) {
                    let slot = grow(&mut self.nodes[idx].deferred[nid], id);
                    prop_assert_eq!(info.xchg_nr_deferred(id), std::mem::take(slot));
                }
            }
            Op::CreateUnderOffline(sel) => {
                let off = self.offline_ones();
                if !off.is_empty() {
                    let n = &self.nodes[off[sel % off.len()]];
                    prop_assert_eq!(
                        self.tree.create(&n.real).unwrap_err(),
                        MemcgError::Offline(n.id)
                    );
                }
            }
            Op::BadNode(m, extra) => {
                let idx = self.pick_online(m);
                let nid = self.nr_nodes + extra;
                prop_assert_eq!(
                    self.nodes[idx].real.shrinker_info(nid).err(),
                    Some(MemcgError::NodeOutOfRange {
                        nid,
                        nr_nodes: self.nr_nodes
                    })
                );
            }
            Op::Foreign(root) => {
                let m = if root {
                    &self.other_root
                } else {
                    &self.other_child
                };
                prop_assert_eq!(self.tree.create(m).unwrap_err(), MemcgError::ForeignMemcg);
                prop_assert_eq!(self.tree.offline(m), Err(MemcgError::ForeignMemcg));
                prop_assert!(
                    self.other_child.is_online(),
                    "foreign offline had an effect"
                );
                prop_assert_ne!(m.tree_token(), self.nodes[0].real.tree_token());
                prop_assert!(!self.tree.owns(m));
                prop_assert!(self.tree.owns(&self.nodes[0].real));
            }
            Op::Subtree(sel) => {
                let idx = self.pick_online(sel);
                let mut want = Vec::new();
                self.preorder(idx, &mut want);
                let got: Vec<MemcgId> = self
                    .tree
                    .iter_subtree(&self.nodes[idx].real)
                    .map(|m| m.id())
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
        Ok(())
    }

    /// Applies an offline to the model, checking conservation of counters.
    fn offline_model(&mut self, idx: usize, p: usize) -> Result<(), TestCaseError> {
        for nid in 0..self.nr_nodes {
            let child = std::mem::take(&mut self.nodes[idx].deferred[nid]);
            for (id, d) in child.into_iter().enumerate() {
                let slot = grow(&mut self.nodes[p].deferred[nid], id);
                *slot = slot.saturating_add(d);
            }
            // The offline memcg keeps no counter behind.
            let info = self.nodes[idx].real.shrinker_info(nid).unwrap();
            for id in 0..info.map_nr_max() {
                prop_assert_eq!(
                    info.nr_deferred(id),
                    0,
                    "left in child: node {} id {}",
                    nid,
                    id
                );
            }
        }
        self.nodes[idx].online = false;
        self.nodes[p].children.retain(|&c| c != idx);
        Ok(())
    }

    /// Compares the real tree with the model. `full` also reads every counter
    /// up to each info's capacity (slow); otherwise up to the model's extent.
    fn check(&self, full: bool) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.tree.map_nr_max(), self.map_nr_max);
        let online = self.online();
        prop_assert_eq!(self.tree.nr_online(), online.len());
        for &i in &online {
            let n = &self.nodes[i];
            prop_assert_eq!(n.real.nr_nodes(), self.nr_nodes);
            prop_assert!(n.real.is_online());
            for nid in 0..self.nr_nodes {
                let info = n.real.shrinker_info(nid).unwrap();
                let cap = info.map_nr_max();
                prop_assert!(cap >= self.map_nr_max, "{} node {} cap {}", n.id, nid, cap);
                prop_assert_eq!(cap % 64, 0);
                // Bits: exactly the model's, no more.
                let want: Vec<usize> = (0..n.bits[nid].len()).filter(|&b| n.bits[nid][b]).collect();
                let got: Vec<usize> = info.iter_set_bits().collect();
                prop_assert_eq!(got, want, "bits of {} node {}", n.id, nid);
                let extent = n.deferred[nid].len().max(n.bits[nid].len()) + 64;
                for id in 0..if full { cap } else { cap.min(extent) } {
                    let want = n.deferred[nid].get(id).copied().unwrap_or(0);
                    prop_assert_eq!(
                        info.nr_deferred(id),
                        want,
                        "{} node {} id {}",
                        n.id,
                        nid,
                        id
                    );
                    let want = n.bits[nid].get(id).copied().unwrap_or(false);
                    prop_assert_eq!(info.test_bit(id), want);
                }
            }
        }
        // Lookup finds exactly the online memcgs.
        for id in 0..=MAX_ID + 2 {
            let want = online.iter().find(|&&i| self.nodes[i].id.0 == id);
            let got = self.tree.lookup(MemcgId(id));
            match want {
                Some(&i) => prop_assert_eq!(got.as_ref(), Some(&self.nodes[i].real)),
                None => prop_assert!(got.is_none(), "lookup({}) found {:?}", id, got),
            }
        }
        // Whole-tree walk: pre-order of the online memcgs.
        let mut want = Vec::new();
        self.preorder(0, &mut want);
        let got: Vec<MemcgId> = self.tree.iter().map(|m| m.id()).collect();
        prop_assert_eq!(got, want);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tree_against_model(
        nr_nodes in 1usize..=3,
        boot in proptest::collection::vec(0u16..200, 0..3),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let tree = MemcgTree::new(Config { nr_nodes, max_id: MAX_ID, ..Config::default() });
        // Boot path: ids handed out before the root exists.
        prop_assert!(tree.iter().next().is_none());
        let mut map_nr_max = 0;
        for b in boot {
            map_nr_max = map_nr_max.max(b as usize);
            tree.expand_all(b as usize).unwrap();
        }
        let root = tree.online_root().unwrap();
        prop_assert_eq!(tree.online_root().unwrap_err(), MemcgError::RootAlreadyOnline);
        prop_assert!(root.is_root());
        prop_assert_eq!(root.id(), MemcgId(1), "the root has the first id");
        prop_assert_eq!(tree.root(), Some(&root));

        let other = MemcgTree::new(Config { nr_nodes, ..Config::default() });
        let other_root = other.online_root().unwrap();
        let other_child = other.create(&other_root).unwrap();
        let mut m = Model {
            tree,
            nr_nodes,
            nodes: Vec::new(),
            map_nr_max,
            next_id: root.id().0 + 1,
            other,
            other_root,
            other_child,
        };
        m.push(root, None);
        m.check(true)?;
        for op in &ops {
            m.apply(op)?;
            m.check(false)?;
        }
        m.check(true)?;
        prop_assert!(m.other.nr_online() == 2);
    }
}
