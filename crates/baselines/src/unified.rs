//! `unified`: an adapter from [`Design`](crate::Design) to the project's
//! `unishrink-shrinker` registry (not a copy: every call goes to the real crate).
//!
//! Not written yet: the shrinker crate is still a stub. Enabled by the cargo
//! feature `unified` once it lands.
