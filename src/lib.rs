//! unishrink: the Linux shrinker infrastructure in user space, unified.
pub use unishrink_memcg as memcg;
pub use unishrink_shrinker as shrinker;
pub use unishrink_shrinker_info as shrinker_info;
pub use unishrink_xarray as xarray;
