//! A `GlobalAlloc` wrapper that charges every allocation to the current
//! thread's memcg and, over the limit, reclaims from registered caches
//! before failing.
//!
//! * The current memcg is thread-local ([`enter`]); allocations of threads
//!   without one are not charged.
//! * Each charged block carries a small header recording the memcg id and
//!   the charged size, so `dealloc` — on any thread — uncharges exactly what
//!   was charged.
//! * A reentrancy guard: the charge path (and reclaim, which runs cache
//!   shrinkers) allocates too; those nested allocations go straight to the
//!   system allocator, uncharged.
//! * Over the limit after reclaim, `alloc` returns null. The demo uses the
//!   fallible `Vec::try_reserve_exact`, so the program sees the failure as an
//!   `Err` instead of aborting.
//!
//! `cargo run --example alloc_hook`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use unishrink_list_lru::{ListLru, LruShrinker, LruWalk};
use unishrink_reclaim::{ChargeConfig, ChargeCounters, ChargeError};
use unishrink_shrinker::{Memcg, MemcgConfig, MemcgId, Registry, ShrinkerConfig};

/// The accounting state the allocator consults (set once by the program).
struct Accounting {
    registry: Registry,
    counters: ChargeCounters,
}

static ACCOUNTING: OnceLock<Accounting> = OnceLock::new();
static CHARGED_BLOCKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURRENT: RefCell<Option<Memcg>> = const { RefCell::new(None) };
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    static LAST_ERROR: Cell<Option<ChargeError>> = const { Cell::new(None) };
}

/// Header before each charged block: memcg id and charged bytes.
const HEADER: usize = 16;
const MAGIC: u32 = 0x5348_524b;

struct ChargingAlloc;

fn header_size(layout: &Layout) -> usize {
    HEADER.max(layout.align())
}

/// Runs `f` with the reentrancy guard set; `None` if it already was.
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    let entered = IN_HOOK.try_with(|g| !g.replace(true)).unwrap_or(false);
    if !entered {
        return None;
    }
    let r = f();
    let _ = IN_HOOK.try_with(|g| g.set(false));
    Some(r)
}

// SAFETY: every block comes from the system allocator with a layout grown by
// a header that `dealloc` finds again from the caller's layout; the
// accounting never allocates through this allocator (the thread-local
// reentrancy guard sends nested allocations straight to `System`).
unsafe impl GlobalAlloc for ChargingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let charged = guarded(|| {
            let acct = ACCOUNTING.get()?;
            let memcg = CURRENT.try_with(|c| c.borrow().clone()).ok()??;
            Some(
                acct.counters
                    .charge(&memcg, layout.size() as u64)
                    .map(|_| memcg.id()),
            )
        })
        .flatten();
        match charged {
            None => {
                // Not charged: plain block, header-sized prefix anyway so
                // dealloc can tell (magic absent).
                let h = header_size(&layout);
                let Ok(full) = Layout::from_size_align(layout.size() + h, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: `full` has non-zero size (h ≥ 16); checked by the
                // example's test, which runs every path of this allocator.
                let base = unsafe { System.alloc(full) };
                if base.is_null() {
                    return base;
                }
                // SAFETY: base..base+h is ours; the header ends at base+h.
                unsafe {
                    let p = base.add(h);
                    (p.sub(HEADER) as *mut u32).write_unaligned(0);
                    p
                }
            }
            Some(Err(e)) => {
                let _ = LAST_ERROR.try_with(|l| l.set(Some(e)));
                std::ptr::null_mut()
            }
            Some(Ok(id)) => {
                let h = header_size(&layout);
                let Ok(full) = Layout::from_size_align(layout.size() + h, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: as above.
                let base = unsafe { System.alloc(full) };
                if base.is_null() {
                    uncharge(id, layout.size() as u64);
                    return base;
                }
                CHARGED_BLOCKS.fetch_add(1, Ordering::Relaxed);
                // SAFETY: the header lies inside our block, before `p`.
                unsafe {
                    let p = base.add(h);
                    let hdr = p.sub(HEADER);
                    (hdr as *mut u32).write_unaligned(MAGIC);
                    (hdr.add(4) as *mut u32).write_unaligned(id.0);
                    (hdr.add(8) as *mut u64).write_unaligned(layout.size() as u64);
                    p
                }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let h = header_size(&layout);
        // SAFETY: `ptr` came from `alloc` with this layout, which put a
        // header of HEADER bytes right before it, inside the block.
        let (magic, id, size) = unsafe {
            let hdr = ptr.sub(HEADER);
            (
                (hdr as *const u32).read_unaligned(),
                (hdr.add(4) as *const u32).read_unaligned(),
                (hdr.add(8) as *const u64).read_unaligned(),
            )
        };
        if magic == MAGIC {
            CHARGED_BLOCKS.fetch_sub(1, Ordering::Relaxed);
            uncharge(MemcgId(id), size);
        }
        // SAFETY: the block started h bytes before `ptr`, with this layout.
        unsafe {
            System.dealloc(
                ptr.sub(h),
                Layout::from_size_align_unchecked(layout.size() + h, layout.align()),
            )
        }
    }
}

/// Uncharges by id. Uncharging neither allocates nor reclaims, so it is
/// safe inside the guard too (disposals during reclaim land here).
fn uncharge(id: MemcgId, size: u64) {
    if let Some(acct) = ACCOUNTING.get() {
        // An offline memcg is not found by id: its charge then stays with
        // its ancestors, as the kernel leaves it to the parent.
        if let Some(m) = acct.registry.memcgs().lookup(id) {
            let _ = acct.counters.uncharge(&m, size);
        }
    }
}

#[global_allocator]
static GLOBAL: ChargingAlloc = ChargingAlloc;

/// Makes `memcg` the current thread's memcg until the guard drops.
fn enter(memcg: &Memcg) -> impl Drop {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let old = CURRENT.with(|c| c.borrow_mut().take());
            drop(old);
        }
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(memcg.clone()));
    Leave
}

/// What the demo observed.
#[derive(Debug)]
pub struct Outcome {
    cached_before: u64,
    cached_after: u64,
    disposed: u64,
    refused: Option<ChargeError>,
    usage_at_end: u64,
}

fn demo() -> Outcome {
    const LIMIT: u64 = 1 << 20;
    const BUF: usize = 16 << 10;
    let acct = ACCOUNTING.get_or_init(|| {
        let registry = Registry::new(MemcgConfig {
            nr_nodes: 1,
            ..MemcgConfig::default()
        });
        registry.online_root().expect("root");
        // Charges are bytes; reclaim frees whole 16 KiB buffers.
        let counters = ChargeCounters::with_config(
            &registry,
            ChargeConfig {
                min_reclaim: 1,
                unit: BUF as u64,
                ..ChargeConfig::default()
            },
        );
        Accounting { registry, counters }
    });
    let reg = &acct.registry;
    let root = reg.root().expect("root");
    let tenant = reg.create_memcg(&root).unwrap_or(root);
    acct.counters.set_limit(&tenant, LIMIT).expect("limit");
    let disposed = Arc::new(AtomicU64::new(0));
    let d = disposed.clone();
    // A buffer cache: dropping a buffer frees (and uncharges) its memory.
    let cache = LruShrinker::new(
        ListLru::<Vec<u8>>::new(reg),
        // Batch 1: free buffers one by one, only as many as the charge needs.
        ShrinkerConfig::new("buffers").batch(1),
        |_| LruWalk::Removed,
        move |buf| {
            drop(buf);
            d.fetch_add(1, Ordering::Relaxed);
        },
    )
    .expect("shrinker");

    let outcome = {
        let _in = enter(&tenant);
        // Fill the cache to twice the limit: the allocator reclaims older
        // buffers to make room for new ones.
        for _ in 0..(2 * LIMIT as usize / BUF) {
            let mut buf = Vec::new();
            if buf.try_reserve_exact(BUF).is_ok() {
                buf.resize(BUF, 1);
                cache.lru().add(&tenant, 0, buf).expect("add");
            }
        }
        let cached_before = cache.lru().total();
        // Now pin memory outside any cache until the limit refuses.
        let mut pinned: Vec<Vec<u8>> = Vec::new();
        pinned.try_reserve_exact(256).expect("small vec");
        let mut refused = None;
        for _ in 0..256 {
            let mut buf = Vec::new();
            match buf.try_reserve_exact(BUF) {
                Ok(()) => pinned.push(buf),
                Err(_) => {
                    refused = LAST_ERROR.with(|l| l.take());
                    break;
                }
            }
        }
        let cached_after = cache.lru().total();
        drop(pinned);
        Outcome {
            cached_before,
            cached_after,
            disposed: disposed.load(Ordering::Relaxed),
            refused,
            usage_at_end: 0,
        }
    };
    // The lru's own bookkeeping was allocated (and charged) in the tenant.
    let lru = cache.into_lru();
    drop(lru.drain());
    drop(lru);
    // Blocks retired to the epoch collector (charged when they were
    // allocated) are freed once the epoch advances.
    for _ in 0..4 {
        unishrink::xarray::pin().flush();
    }
    // What stays charged is the tenant's own shrinker_info (the bitmap unit
    // allocated when its first buffer set the shrinker bit): it lives as long
    // as the memcg does.
    let usage = acct.counters.usage(&tenant).expect("usage");
    Outcome {
        usage_at_end: usage.saturating_sub(tenant.shrinker_info_bytes() as u64),
        ..outcome
    }
}

fn main() {
    let o = demo();
    println!(
        "cache holds {} buffers of 16 KiB under a 1 MiB limit ({} reclaimed by the allocator in all)",
        o.cached_before, o.disposed
    );
    match o.refused {
        Some(e) => println!("pinned allocation refused: {e}"),
        None => println!("no allocation was refused"),
    }
    println!(
        "cache after pinning: {} buffers; usage after teardown: {} bytes",
        o.cached_after, o.usage_at_end
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn charges_reclaims_and_refuses() {
        let o = super::demo();
        assert!(o.disposed > 0, "reclaim ran: {o:?}");
        assert!(o.cached_before * (16 << 10) <= 1 << 20, "{o:?}");
        assert!(
            o.cached_before >= 32,
            "reclaim freed only what was needed: {o:?}"
        );
        assert!(
            matches!(o.refused, Some(super::ChargeError::OverLimit { limit, .. }) if limit == 1 << 20),
            "{o:?}"
        );
        assert!(
            o.cached_after < o.cached_before,
            "pinning evicted cache: {o:?}"
        );
        assert_eq!(o.usage_at_end, 0, "everything uncharged: {o:?}");
    }
}
