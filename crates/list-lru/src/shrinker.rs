//! A ready-made shrinker over a list_lru.

use std::fmt;

use unishrink_shrinker::{RegisteredShrinker, ShrinkerConfig, ShrinkerId};

use crate::{lru_shrinker_config, ListLru, LruError, LruShrink, LruWalk};

/// A [`ListLru`] with a registered `MEMCG_AWARE | NUMA_AWARE` shrinker:
/// `count_objects` is the length of the `(memcg, nid)` list
/// ([`Count::Empty`](unishrink_shrinker::Count::Empty) when it is empty, so
/// the walker clears the bit), and `scan_objects` walks that list with the
/// user's `isolate` and hands every removed item to `dispose` outside the
/// list lock. Dropping it frees the shrinker (waiting for running callbacks)
/// before the lru.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use unishrink_list_lru::{ListLru, LruShrinker, LruWalk};
/// use unishrink_shrinker::{MemcgConfig, Registry, ShrinkerConfig};
///
/// let reg = Registry::new(MemcgConfig { nr_nodes: 1, ..MemcgConfig::default() });
/// let root = reg.online_root().unwrap();
/// let freed = Arc::new(AtomicU64::new(0));
/// let f = freed.clone();
/// let cache = LruShrinker::new(
///     ListLru::<Vec<u8>>::new(&reg),
///     ShrinkerConfig::new("blobs"),
///     |_blob| LruWalk::Removed,
///     move |_blob| { f.fetch_add(1, Ordering::Relaxed); },
/// )
/// .unwrap();
/// for _ in 0..100 {
///     cache.lru().add(&root, 0, vec![0; 64]).unwrap();
/// }
/// // Priority 0 with the default seeks targets the whole list.
/// let report = reg.shrink_slab(&root, 0, 0).unwrap();
/// assert_eq!(report.freed, 100);
/// assert_eq!(freed.load(Ordering::Relaxed), 100);
/// assert_eq!(cache.lru().count(&root, 0).unwrap(), 0);
/// ```
pub struct LruShrinker<T: Send + 'static> {
    // Declared first: dropped (freed, waited for) before the lru.
    shrinker: Option<RegisteredShrinker>,
    lru: ListLru<T>,
}

impl<T: Send + 'static> fmt::Debug for LruShrinker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruShrinker")
            .field("shrinker", &self.shrinker)
            .field("lru", &self.lru)
            .finish()
    }
}

impl<T: Send + 'static> LruShrinker<T> {
    /// Allocates and registers a shrinker over `lru` (flags of `config` plus
    /// `MEMCG_AWARE | NUMA_AWARE`) and binds it to the lru.
    pub fn new<I, D>(
        lru: ListLru<T>,
        config: ShrinkerConfig,
        isolate: I,
        dispose: D,
    ) -> Result<Self, LruError>
    where
        I: Fn(&mut T) -> LruWalk + Send + Sync + 'static,
        D: Fn(T) + Send + Sync + 'static,
    {
        if let Some(id) = lru.shrinker() {
            return Err(LruError::AlreadyBound(id));
        }
        let shrink = LruShrink {
            lru: lru.downgrade(),
            isolate,
            dispose,
        };
        let allocated = lru
            .registry()
            .alloc(lru_shrinker_config(config), shrink)
            .map_err(LruError::from)?;
        lru.bind_shrinker(allocated.id())?;
        let shrinker = allocated.register();
        Ok(Self {
            shrinker: Some(shrinker),
            lru,
        })
    }

    /// The lru.
    pub fn lru(&self) -> &ListLru<T> {
        &self.lru
    }

    /// The shrinker's id.
    pub fn id(&self) -> ShrinkerId {
        self.shrinker
            .as_ref()
            .map_or(ShrinkerId(u32::MAX), |s| s.id())
    }

    /// The registered shrinker.
    pub fn shrinker(&self) -> &RegisteredShrinker {
        self.shrinker.as_ref().expect("present until dropped")
    }

    /// Frees the shrinker (waiting for its running callbacks) and returns the
    /// lru with whatever items it still holds. Called from inside this
    /// shrinker's own callback the free happens when that callback returns.
    pub fn into_lru(mut self) -> ListLru<T> {
        if let Some(s) = self.shrinker.take() {
            drop(s);
        }
        self.lru.clone()
    }
}

impl<T: Send + 'static> Drop for LruShrinker<T> {
    fn drop(&mut self) {
        if let Some(s) = self.shrinker.take() {
            drop(s);
        }
    }
}
