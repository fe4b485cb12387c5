//! `rwsem`: the Linux ≤ 6.6 design, one reader-writer lock (`shrinker_rwsem`)
//! over the shrinker list and the IDR of memcg-aware shrinkers.
//!
//! * Reclaim takes the lock with `try_read` (parking_lot's fails while a
//!   writer holds the lock *or waits* for it, like `down_read_trylock` on a
//!   contended rwsem) and returns 0 freed when it cannot. During the walk it
//!   checks `rwsem_is_contended` (here: a writer holds or waits,
//!   `is_locked_exclusive`) after each shrinker and stops early, reporting at
//!   least 1 freed so callers do not conclude there is nothing left.
//! * Callbacks run with the read lock held: a blocked callback blocks every
//!   registration and unregistration.
//! * `register` is `prealloc_shrinker` (write lock: id + shrinker_info growth)
//!   then `register_shrinker_prepared` (write lock: list add), as in the kernel.
//! * The root walks the whole list (memcg-aware shrinkers included, with
//!   their `nr_deferred` in the root's shrinker_info); a child memcg walks the
//!   set bits of its flat bitmap and looks ids up in the IDR.
//! * [`Rwsem::nobitmap`] is the kernel before per-memcg bitmaps (≤ 4.18):
//!   every memcg walks every memcg-aware shrinker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::memcg::Memcg;
use crate::registrar::Registrar;
use crate::scan::{Core, Outcome};
use crate::{check_args, Design, DesignConfig, Error, IntoDynCallbacks, ShrinkerSpec};

struct RwShrinker {
    core: Core,
    /// Index in `State::list` (changed only under the write lock).
    pos: AtomicUsize,
}

#[derive(Default)]
struct State {
    list: Vec<Arc<RwShrinker>>,
    idr: Vec<Option<Arc<RwShrinker>>>,
    reg: Registrar,
}

/// The rwsem design (see the module docs).
pub struct Rwsem {
    nr_nodes: usize,
    bitmap: bool,
    lock: RwLock<State>,
    root: Memcg,
    /// Instance identity for handle checks.
    token: Arc<()>,
}

/// A registered `rwsem` shrinker.
pub struct RwHandle {
    s: Arc<RwShrinker>,
    owner: usize,
}

impl Rwsem {
    fn build(cfg: DesignConfig, bitmap: bool) -> Result<Self, Error> {
        if cfg.nr_nodes == 0 {
            return Err(Error::NoNodes);
        }
        let token = Arc::new(());
        let owner = Arc::as_ptr(&token) as usize;
        let nr_nodes = cfg.nr_nodes;
        let root = Memcg::new(0, true, owner, nr_nodes, 0);
        let state = State {
            reg: Registrar::new(root.clone()),
            ..State::default()
        };
        Ok(Self {
            nr_nodes,
            bitmap,
            lock: RwLock::new(state),
            root,
            token,
        })
    }

    /// The pre-bitmap kernel: every memcg walk visits every memcg-aware shrinker.
    pub fn nobitmap(cfg: DesignConfig) -> Result<Self, Error> {
        Self::build(cfg, false)
    }

    fn owner(&self) -> usize {
        Arc::as_ptr(&self.token) as usize
    }

    /// Whether a writer holds the lock or waits for it (`rwsem_is_contended`).
    pub fn writer_waiting(&self) -> bool {
        self.lock.is_locked_exclusive()
    }

    fn contended(&self) -> bool {
        self.lock.is_locked_exclusive()
    }

    fn walk_list(&self, st: &State, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let mut freed = 0u64;
        let info = if memcg.is_root() && self.bitmap {
            Some(memcg.0.info[nid].load())
        } else {
            None
        };
        for s in &st.list {
            if !memcg.is_root() && !s.core.spec.memcg_aware {
                continue;
            }
            let out = match (&info, s.core.id) {
                (Some(info), Some(id)) if s.core.spec.memcg_aware => {
                    s.core.run(memcg.id(), nid, priority, info.deferred(id))
                }
                _ => s.core.run_own(memcg.id(), nid, priority),
            };
            freed += out.freed();
            if self.contended() {
                return freed.max(1);
            }
        }
        freed
    }

    fn walk_bitmap(&self, st: &State, memcg: &Memcg, nid: usize, priority: u32) -> u64 {
        let info = memcg.0.info[nid].load();
        let mut freed = 0u64;
        for (w, word) in info.words().iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let id = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(Some(s)) = st.idr.get(id) else {
                    info.clear_bit(id);
                    continue;
                };
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
                if self.contended() {
                    return freed.max(1);
                }
            }
        }
        freed
    }
}

impl Design for Rwsem {
    type Memcg = Memcg;
    type Shrinker = RwHandle;

    fn new(cfg: DesignConfig) -> Result<Self, Error> {
        Self::build(cfg, true)
    }

    fn name(&self) -> &'static str {
        if self.bitmap {
            "rwsem"
        } else {
            "nobitmap"
        }
    }

    fn root(&self) -> Memcg {
        self.root.clone()
    }

    fn create_memcg(&self, parent: &Memcg) -> Result<Memcg, Error> {
        if parent.0.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let mut st = self.lock.write();
        Ok(st.reg.create_memcg(self.owner(), self.nr_nodes))
    }

    fn memcg_id(&self, memcg: &Memcg) -> usize {
        memcg.id()
    }

    fn register<C: IntoDynCallbacks + ?Sized>(
        &self,
        spec: &ShrinkerSpec,
        cb: Arc<C>,
    ) -> Result<RwHandle, Error> {
        // prealloc_shrinker: id and shrinker_info growth under the write lock.
        let s = {
            let mut st = self.lock.write();
            let id = st.reg.alloc_id(spec.memcg_aware)?;
            let s = Arc::new(RwShrinker {
                core: Core::new(spec, cb.into_dyn(), id, self.nr_nodes),
                pos: AtomicUsize::new(0),
            });
            if let Some(id) = id {
                if st.idr.len() <= id {
                    st.idr.resize(id + 1, None);
                }
                st.idr[id] = Some(s.clone());
            }
            s
        };
        // register_shrinker_prepared: list add under the write lock.
        let mut st = self.lock.write();
        s.pos.store(st.list.len(), Ordering::Relaxed);
        st.list.push(s.clone());
        Ok(RwHandle {
            s,
            owner: self.owner(),
        })
    }

    fn shrinker_id(&self, s: &RwHandle) -> Option<usize> {
        s.s.core.id
    }

    fn set_shrinker_bit(&self, memcg: &Memcg, nid: usize, s: &RwHandle) -> Result<(), Error> {
        if memcg.0.owner != self.owner() || s.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let id = s.s.core.id.ok_or(Error::NotMemcgAware)?;
        let slot = memcg.0.info.get(nid).ok_or(Error::BadNode(nid))?;
        if !memcg.is_root() {
            slot.load().set_bit(id);
        }
        Ok(())
    }

    fn free(&self, s: RwHandle) -> Result<(), Error> {
        if s.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let mut st = self.lock.write();
        let pos = s.s.pos.load(Ordering::Relaxed);
        st.list.swap_remove(pos);
        if let Some(moved) = st.list.get(pos) {
            moved.pos.store(pos, Ordering::Relaxed);
        }
        if let Some(id) = s.s.core.id {
            st.idr[id] = None;
            st.reg.ids.release(id);
        }
        Ok(())
    }

    fn shrink_slab(&self, memcg: &Memcg, nid: usize, priority: u32) -> Result<u64, Error> {
        check_args(self.nr_nodes, nid, priority)?;
        if memcg.0.owner != self.owner() {
            return Err(Error::ForeignHandle);
        }
        let Some(st) = self.lock.try_read() else {
            return Ok(0);
        };
        Ok(if memcg.is_root() || !self.bitmap {
            self.walk_list(&st, memcg, nid, priority)
        } else {
            self.walk_bitmap(&st, memcg, nid, priority)
        })
    }

    fn info_bytes(&self) -> usize {
        self.lock.read().reg.memcgs.iter().map(Memcg::bytes).sum()
    }
}
