//! `srcu`: the reverted 2023 attempt at lockless shrinkers with SRCU.
//!
//! * Readers enter an SRCU read section (module `srcu_lock`) for the whole
//!   walk — callbacks included — and need no refcount.
//! * `register` takes the mutex twice (alloc: id, growth, IDR insert; then
//!   list add), like the rwsem version it replaced.
//! * `free` unlinks under the mutex, then `synchronize_srcu`: it waits for
//!   **every** read section in flight, even walks busy in other shrinkers'
//!   callbacks, and only then frees the node. This wait is the cost the
//!   design was reverted for (−88.8% in stress-ng ramfs).
//! * Memcg handling is the same as `split`: flat eager bitmaps, root walks
//!   the whole list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::memcg::Memcg;
use crate::rculist::{free_node, Node, RcuList};
use crate::registrar::Registrar;
use crate::scan::{Core, Outcome};
use crate::srcu_lock::Srcu as SrcuLock;
use crate::table::IdTable;
use crate::{check_args, Design, DesignConfig, Error, IntoDynCallbacks, ShrinkerSpec};

pub(crate) struct SrcuShrinker {
    core: Core,
    registered: AtomicBool,
}

type SNode = Node<SrcuShrinker>;

struct Writer {
    reg: Registrar,
}

/// The SRCU design (see the module docs).
pub struct Srcu {
    nr_nodes: usize,
    mutex: Mutex<Writer>,
    srcu: SrcuLock,
    list: RcuList<SrcuShrinker>,
    idr: IdTable<SNode>,
    root: Memcg,
    token: Arc<()>,
}

/// A registered `srcu` shrinker.
pub struct SrcuHandle {
    node: *mut SNode,
    owner: Arc<()>,
}

// SAFETY: the node is shared, immutable apart from atomics, and freed only by
// `Srcu::free` (which consumes the handle) or `Srcu`'s drop.
unsafe impl Send for SrcuHandle {}
// SAFETY: as above.
unsafe impl Sync for SrcuHandle {}

impl Srcu {
    fn owner(&self) -> usize {
        Arc::as_ptr(&self.token) as usize
    }

    fn node<'a>(&'a self, h: &SrcuHandle) -> Result<&'a SNode, Error> {
        if !Arc::ptr_eq(&h.owner, &self.token) {
            return Err(Error::ForeignHandle);
        }
        // SAFETY: a handle of this instance points to a node freed only by
        // `free(handle)` or by dropping `self`.
        Ok(unsafe { &*h.node })
    }

    #[cfg(test)]
    pub(crate) fn srcu_idx_for_test(&self) -> usize {
        self.srcu.idx_for_test()
    }

    fn walk_root(&self, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let info = memcg.0.info[nid].load();
        let mut freed = 0;
        let _rd = self.srcu.read_lock();
        let mut p = self.list.first();
        while !p.is_null() {
            // SAFETY: reached from the list inside our SRCU section; `free`
            // frees only after unlinking and `synchronize`, which waits for
            // this section. Tested by `tests::srcu_free_waits_for_every_reader`.
            let node = unsafe { &*p };
            let s = &node.val;
            let out = match s.core.id {
                Some(id) if s.core.spec.memcg_aware => {
                    s.core.run(memcg.id(), nid, priority, info.deferred(id))
                }
                _ => s.core.run_own(memcg.id(), nid, priority),
            };
            freed += out.freed();
            p = node.next();
        }
        freed
    }

    fn walk_memcg(&self, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let info = memcg.0.info[nid].load();
        let mut freed = 0;
        let _rd = self.srcu.read_lock();
        for (w, word) in info.words().iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let id = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let p = self.idr.get(id);
                if p.is_null() {
                    info.clear_bit(id);
                    continue;
                }
                // SAFETY: found in the IDR inside our SRCU section (see walk_root).
                let s = unsafe { &(*p).val };
                if !s.registered.load(Ordering::Acquire) {
                    continue;
                }
                let mut out = s.core.run(memcg.id(), nid, priority, info.deferred(id));
                if out == Outcome::Empty {
                    info.clear_bit(id);
                    std::sync::atomic::fence(Ordering::SeqCst);
                    out = s.core.run(memcg.id(), nid, priority, info.deferred(id));
                    if out != Outcome::Empty {
                        info.set_bit(id);
                    }
                }
                freed += out.freed();
            }
        }
        freed
    }
}

impl Design for Srcu {
    type Memcg = Memcg;
    type Shrinker = SrcuHandle;

    fn new(cfg: DesignConfig) -> Result<Self, Error> {
        if cfg.nr_nodes == 0 {
            return Err(Error::NoNodes);
        }
        let token = Arc::new(());
        let owner = Arc::as_ptr(&token) as usize;
        let nr_nodes = cfg.nr_nodes;
        let root = Memcg::new(0, true, owner, nr_nodes, 0);
        let w = Writer {
            reg: Registrar::new(root.clone()),
        };
        Ok(Self {
            nr_nodes,
            mutex: Mutex::new(w),
            srcu: SrcuLock::new(),
            list: RcuList::new(),
            idr: IdTable::new(),
            root,
            token,
        })
    }

    fn name(&self) -> &'static str {
        "srcu"
    }

    fn root(&self) -> Memcg {
        self.root.clone()
    }

    fn create_memcg(&self, parent: &Memcg) -> Result<Memcg, Error> {
        if parent.0.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let mut w = self.mutex.lock();
        Ok(w.reg.create_memcg(self.owner(), self.nr_nodes))
    }

    fn memcg_id(&self, memcg: &Memcg) -> usize {
        memcg.id()
    }

    fn register<C: IntoDynCallbacks + ?Sized>(
        &self,
        spec: &ShrinkerSpec,
        cb: Arc<C>,
    ) -> Result<SrcuHandle, Error> {
        let node = {
            let mut w = self.mutex.lock();
            let id = w.reg.alloc_id(spec.memcg_aware)?;
            let core = Core::new(spec, cb.into_dyn(), id, self.nr_nodes);
            let node = Node::alloc(SrcuShrinker {
                core,
                registered: AtomicBool::new(false),
            });
            if let Some(id) = id {
                self.idr.set(id, node)?;
            }
            node
        };
        {
            let _w = self.mutex.lock();
            // SAFETY: fresh node from Node::alloc, in no list.
            unsafe { self.list.push_back(node) };
            // SAFETY: just allocated, freed only through `free`.
            unsafe { (*node).val.registered.store(true, Ordering::Release) };
        }
        Ok(SrcuHandle {
            node,
            owner: self.token.clone(),
        })
    }

    fn shrinker_id(&self, s: &SrcuHandle) -> Option<usize> {
        self.node(s).ok().and_then(|n| n.val.core.id)
    }

    fn set_shrinker_bit(&self, memcg: &Memcg, nid: usize, s: &SrcuHandle) -> Result<(), Error> {
        if memcg.0.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let id = self.node(s)?.val.core.id.ok_or(Error::NotMemcgAware)?;
        let slot = memcg.0.info.get(nid).ok_or(Error::BadNode(nid))?;
        if !memcg.is_root() {
            slot.load().set_bit(id);
        }
        Ok(())
    }

    fn free(&self, s: SrcuHandle) -> Result<(), Error> {
        let node = self.node(&s)?;
        {
            let mut w = self.mutex.lock();
            if node.val.registered.swap(false, Ordering::AcqRel) {
                // SAFETY: registered nodes are linked until here; we own the handle.
                unsafe { self.list.unlink(s.node) };
            }
            if let Some(id) = node.val.core.id {
                self.idr.set(id, std::ptr::null_mut())?;
                w.reg.ids.release(id);
            }
        }
        self.srcu.synchronize();
        // SAFETY: unlinked from list and IDR, and every reader that could have
        // found it has left its section (synchronize). Freed once: the handle
        // is consumed. Tested by `tests::srcu_free_waits_for_every_reader`.
        unsafe { free_node(s.node) };
        Ok(())
    }

    fn shrink_slab(&self, memcg: &Memcg, nid: usize, priority: u32) -> Result<u64, Error> {
        check_args(self.nr_nodes, nid, priority)?;
        if memcg.0.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        Ok(if memcg.is_root() {
            self.walk_root(memcg, nid, priority)
        } else {
            self.walk_memcg(memcg, nid, priority)
        })
    }

    fn info_bytes(&self) -> usize {
        self.mutex.lock().reg.memcgs.iter().map(Memcg::bytes).sum()
    }
}
