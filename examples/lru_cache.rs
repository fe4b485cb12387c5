//! A real cache crate (`lru` from crates.io) made shrinkable per memcg —
//! without forking it. Each tenant (memcg) gets its own `lru::LruCache`; one
//! memcg-aware shrinker counts and evicts the least recently used entries of
//! the tenant that reclaim asks about, and a reparent hook folds a dead
//! tenant's entries into its parent's cache.
//!
//! `cargo run --example lru_cache`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use unishrink_reclaim::reclaim_memcg;
use unishrink_shrinker::{
    Count, Memcg, MemcgConfig, MemcgId, RegisteredShrinker, Registry, Scan, Shrink, ShrinkControl,
    ShrinkerConfig, ShrinkerFlags,
};

type Caches = Mutex<HashMap<MemcgId, LruCache<String, Vec<u8>>>>;

/// Per-tenant `lru::LruCache`s behind one memcg-aware shrinker.
pub struct TenantCache {
    caches: Arc<Caches>,
    shrinker: RegisteredShrinker,
}

struct CacheShrink {
    caches: Arc<Caches>,
}

impl Shrink for CacheShrink {
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> Count {
        match self.caches.lock().unwrap().get(&sc.memcg.id()) {
            Some(c) if !c.is_empty() => Count::Objects(c.len() as u64),
            _ => Count::Empty,
        }
    }

    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        let mut caches = self.caches.lock().unwrap();
        let Some(c) = caches.get_mut(&sc.memcg.id()) else {
            return Scan::Freed(0);
        };
        let mut freed = 0;
        while freed < sc.nr_to_scan && c.pop_lru().is_some() {
            freed += 1;
        }
        sc.nr_scanned = freed;
        Scan::Freed(freed)
    }
}

impl TenantCache {
    /// A cache registered with `reg` (memcg-aware, node 0).
    pub fn new(reg: &Registry) -> Self {
        let caches: Arc<Caches> = Arc::default();
        let shrinker = reg
            .alloc(
                ShrinkerConfig::new("tenant-lru").flags(ShrinkerFlags::MEMCG_AWARE),
                CacheShrink {
                    caches: caches.clone(),
                },
            )
            .expect("alloc")
            .register();
        let c = Arc::downgrade(&caches);
        let r = reg.clone();
        let id = shrinker.id();
        reg.memcgs()
            .register_reparent_hook(Arc::new(move |child: &Memcg, parent: &Memcg| {
                let Some(caches) = c.upgrade() else { return };
                let mut caches = caches.lock().unwrap();
                let Some(mut dead) = caches.remove(&child.id()) else {
                    return;
                };
                let dst = caches
                    .entry(parent.id())
                    .or_insert_with(LruCache::unbounded);
                // Oldest first, so the dead tenant's entries stay the coldest.
                while let Some((k, v)) = dead.pop_lru() {
                    dst.push(k, v);
                }
                if !dst.is_empty() {
                    let _ = r.set_shrinker_bit(parent, 0, id);
                }
            }));
        Self { caches, shrinker }
    }

    /// Inserts for `memcg`; sets the shrinker bit when its cache fills up
    /// from empty (after the entry is visible).
    pub fn put(&self, memcg: &Memcg, key: &str, value: Vec<u8>) {
        let was_empty = {
            let mut caches = self.caches.lock().unwrap();
            let c = caches.entry(memcg.id()).or_insert_with(LruCache::unbounded);
            let was_empty = c.is_empty();
            c.put(key.to_string(), value);
            was_empty
        };
        if was_empty {
            let _ = self.shrinker.set_bit(memcg, 0);
        }
    }

    /// Looks up (and marks recently used).
    pub fn get(&self, memcg: &Memcg, key: &str) -> Option<Vec<u8>> {
        self.caches
            .lock()
            .unwrap()
            .get_mut(&memcg.id())?
            .get(key)
            .cloned()
    }

    /// Entries cached for `memcg`.
    pub fn len(&self, memcg: &Memcg) -> usize {
        self.caches
            .lock()
            .unwrap()
            .get(&memcg.id())
            .map_or(0, |c| c.len())
    }
}

fn demo() -> (usize, usize, bool, usize) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().expect("root");
    let a = reg.create_memcg(&root).expect("memcg a");
    let b = reg.create_memcg(&root).expect("memcg b");
    let cache = TenantCache::new(&reg);
    for i in 0..1_000 {
        cache.put(&a, &format!("a{i}"), vec![0; 128]);
        cache.put(&b, &format!("b{i}"), vec![0; 128]);
    }
    // Touch a0 so it is the most recently used entry of tenant a.
    assert!(cache.get(&a, "a0").is_some());
    let r = reclaim_memcg(&reg, &a, 600).expect("reclaim");
    println!(
        "reclaimed {} entries of tenant {} at priority {} in {} passes",
        r.freed,
        a.id(),
        r.priority,
        r.passes
    );
    let (left_a, left_b) = (cache.len(&a), cache.len(&b));
    let hot_kept = cache.get(&a, "a0").is_some();
    println!("tenant a: {left_a} left (a0 kept: {hot_kept}), tenant b: {left_b} left");
    reg.offline_memcg(&a).expect("offline");
    let at_root = cache.len(&root);
    println!(
        "tenant a went offline: {at_root} entries moved to {}",
        root.id()
    );
    (left_a, left_b, hot_kept, at_root)
}

fn main() {
    demo();
}

#[cfg(test)]
mod tests {
    #[test]
    fn reclaim_evicts_only_the_target_tenants_coldest_entries() {
        let (left_a, left_b, hot_kept, at_root) = super::demo();
        assert!(left_a <= 400, "{left_a}");
        assert_eq!(left_b, 1_000, "other tenant untouched");
        assert!(hot_kept, "the recently used entry survives");
        assert_eq!(at_root, left_a, "reparenting keeps every entry");
    }
}
