//! `split`: the Linux ≥ 6.7 design.
//!
//! * Every shrinker is on a global list with RCU readers (module `rculist`
//!   under crossbeam-epoch); memcg-aware shrinkers also get an id in the IDR
//!   (module `table`) and bits in per-memcg flat bitmaps.
//! * Each shrinker has a refcount: a walker finds it inside an epoch pin,
//!   `try_get`s it, unpins while the callbacks run, re-pins and `put`s.
//! * `free` drops the initial reference, waits until the count is zero (only
//!   *its own* in-flight callbacks), unlinks under the mutex and defers the
//!   memory to the end of the epoch grace period.
//! * shrinker_info is flat and eager (`map_nr_max` bits + counters per memcg
//!   per node), replaced by a grown copy under the mutex when a new id does
//!   not fit; readers hold the old copy through `arc-swap`.
//! * The root walks the whole list (memcg-aware shrinkers too, with their
//!   `nr_deferred` in the root's info); a child memcg walks its bitmap.
//!
//! Registration is `shrinker_alloc` (mutex: id, growth, IDR insert) then
//! `shrinker_register` (mutex: list add, then refcount = 1), as in the kernel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_epoch as epoch;
use parking_lot::Mutex;

use crate::memcg::Memcg;
use crate::rculist::{free_node, Node, RcuList};
use crate::refs::Refs;
use crate::registrar::Registrar;
use crate::scan::{Core, Outcome};
use crate::table::IdTable;
use crate::{check_args, Design, DesignConfig, Error, IntoDynCallbacks, ShrinkerSpec};

pub(crate) struct SplitShrinker {
    core: Core,
    refs: Refs,
    registered: AtomicBool,
}

type SNode = Node<SplitShrinker>;

struct Writer {
    reg: Registrar,
}

/// The split design (see the module docs).
pub struct Split {
    nr_nodes: usize,
    mutex: Mutex<Writer>,
    list: RcuList<SplitShrinker>,
    idr: IdTable<SNode>,
    root: Memcg,
    token: Arc<()>,
    #[cfg(test)]
    waiting_frees: std::sync::atomic::AtomicUsize,
}

/// A registered `split` shrinker.
pub struct SplitHandle {
    node: *mut SNode,
    /// Keeps the instance token alive so its address is never reused.
    owner: Arc<()>,
}

// SAFETY: the node is shared, immutable apart from atomics, and freed only by
// `Split::free` (which consumes the handle) or `Split`'s drop.
unsafe impl Send for SplitHandle {}
// SAFETY: as above.
unsafe impl Sync for SplitHandle {}

impl Split {
    fn owner(&self) -> usize {
        Arc::as_ptr(&self.token) as usize
    }

    fn node<'a>(&'a self, h: &SplitHandle) -> Result<&'a SNode, Error> {
        if !Arc::ptr_eq(&h.owner, &self.token) {
            return Err(Error::ForeignHandle);
        }
        // SAFETY: a handle of this instance points to a node that is freed
        // only by `free(handle)` or by dropping `self`, both impossible while
        // the handle is borrowed and `self` is borrowed for 'a.
        Ok(unsafe { &*h.node })
    }

    /// Number of `free` calls that reached the refcount wait.
    #[cfg(test)]
    pub(crate) fn waiting_frees_for_test(&self) -> usize {
        self.waiting_frees.load(Ordering::SeqCst)
    }

    fn walk_root(&self, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let info = memcg.0.info[nid].load();
        let mut freed = 0;
        let mut guard = epoch::pin();
        let mut p = self.list.first();
        while !p.is_null() {
            // SAFETY: `p` was read from the list while pinned; it is freed only
            // after being unlinked and a grace period that includes our pin.
            // Across `repin_after` our reference keeps it linked (free waits
            // for the count to reach zero before unlinking). Tested by
            // `tests::split_free_waits_for_running_callback` and the stress test.
            let node = unsafe { &*p };
            let s = &node.val;
            if s.refs.try_get() {
                let out = guard.repin_after(|| match s.core.id {
                    Some(id) if s.core.spec.memcg_aware => {
                        s.core.run(memcg.id(), nid, priority, info.deferred(id))
                    }
                    _ => s.core.run_own(memcg.id(), nid, priority),
                });
                freed += out.freed();
                s.refs.put();
            }
            p = node.next();
        }
        freed
    }

    fn walk_memcg(&self, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let info = memcg.0.info[nid].load();
        let mut freed = 0;
        let mut guard = epoch::pin();
        for (w, word) in info.words().iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let id = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let p = self.idr.get(id);
                // SAFETY: found in the IDR while pinned: freed only after its
                // removal plus a grace period covering this pin; while we hold
                // a reference it is not removed (see `walk_root`).
                let s = if p.is_null() {
                    None
                } else {
                    Some(unsafe { &(*p).val })
                };
                let Some(s) = s.filter(|s| s.refs.try_get()) else {
                    info.clear_bit(id);
                    continue;
                };
                let out = guard.repin_after(|| {
                    let mut out = s.core.run(memcg.id(), nid, priority, info.deferred(id));
                    if out == Outcome::Empty {
                        info.clear_bit(id);
                        std::sync::atomic::fence(Ordering::SeqCst);
                        out = s.core.run(memcg.id(), nid, priority, info.deferred(id));
                        if out != Outcome::Empty {
                            info.set_bit(id);
                        }
                    }
                    out
                });
                freed += out.freed();
                s.refs.put();
            }
        }
        freed
    }
}

impl Design for Split {
    type Memcg = Memcg;
    type Shrinker = SplitHandle;

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
            list: RcuList::new(),
            idr: IdTable::new(),
            root,
            token,
            #[cfg(test)]
            waiting_frees: Default::default(),
        })
    }

    fn name(&self) -> &'static str {
        "split"
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
    ) -> Result<SplitHandle, Error> {
        // shrinker_alloc: id, info growth and IDR insert under the mutex.
        let node = {
            let mut w = self.mutex.lock();
            let id = w.reg.alloc_id(spec.memcg_aware)?;
            let core = Core::new(spec, cb.into_dyn(), id, self.nr_nodes);
            let node = Node::alloc(SplitShrinker {
                core,
                refs: Refs::default(),
                registered: AtomicBool::new(false),
            });
            if let Some(id) = id {
                self.idr.set(id, node)?;
            }
            node
        };
        // shrinker_register: list add under the mutex, then the first reference.
        {
            let _w = self.mutex.lock();
            // SAFETY: fresh node from Node::alloc, in no list.
            unsafe { self.list.push_back(node) };
            // SAFETY: just allocated, freed only through `free`.
            unsafe { (*node).val.registered.store(true, Ordering::Relaxed) };
        }
        // SAFETY: as above.
        unsafe { (*node).val.refs.activate() };
        Ok(SplitHandle {
            node,
            owner: self.token.clone(),
        })
    }

    fn shrinker_id(&self, s: &SplitHandle) -> Option<usize> {
        self.node(s).ok().and_then(|n| n.val.core.id)
    }

    fn set_shrinker_bit(&self, memcg: &Memcg, nid: usize, s: &SplitHandle) -> Result<(), Error> {
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

    fn free(&self, s: SplitHandle) -> Result<(), Error> {
        let node = self.node(&s)?;
        let registered = node.val.registered.load(Ordering::Relaxed);
        if registered {
            #[cfg(test)]
            self.waiting_frees.fetch_add(1, Ordering::SeqCst);
            node.val.refs.put_and_wait();
        }
        {
            let mut w = self.mutex.lock();
            if registered {
                // SAFETY: registered nodes are linked until here; we own the handle.
                unsafe { self.list.unlink(s.node) };
            }
            if let Some(id) = node.val.core.id {
                self.idr.set(id, std::ptr::null_mut())?;
                w.reg.ids.release(id);
            }
        }
        let p = s.node as usize;
        let guard = epoch::pin();
        // SAFETY: the node is unlinked from the list and the IDR; readers that
        // found it are pinned, so the destructor runs after they unpin. `p` is
        // freed once (the handle is consumed). Tested by
        // `tests::split_free_waits_for_running_callback`.
        unsafe { guard.defer_unchecked(move || free_node(p as *mut SNode)) };
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
