#![doc = include_str!("../README.md")]
//!
//! # Crates
//!
//! This facade re-exports the workspace crates under short names; most users
//! need only [`shrinker`] (which re-exports the memcg types as well).

pub use unishrink_list_lru as list_lru;
pub use unishrink_memcg as memcg;
pub use unishrink_reclaim as reclaim;
pub use unishrink_shrinker as shrinker;
pub use unishrink_shrinker_info as shrinker_info;
pub use unishrink_xarray as xarray;
