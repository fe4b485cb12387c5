//! The view's error type.

use std::fmt;

use crate::parse::ParseScanError;

/// Why a debug-view operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DebugError {
    /// No registered shrinker has this id (never allocated, only allocated,
    /// or freed).
    NoSuchShrinker(u32),
    /// No online memcg has this id.
    NoSuchMemcg(u32),
    /// A scan of a shrinker that is not memcg-aware named a memcg other than
    /// `0` or the root.
    NotMemcgAware {
        /// The shrinker.
        shrinker: u32,
        /// The memcg asked for.
        memcg: u32,
    },
    /// A node id beyond the tree's node count.
    NodeOutOfRange {
        /// The node asked for.
        nid: usize,
        /// The tree's node count.
        nr_nodes: usize,
    },
    /// The root memcg is not online yet, so there is nothing to count or scan.
    NoRoot,
    /// The `scan` input could not be parsed.
    Parse(ParseScanError),
    /// Any other refusal by the registry.
    Registry(unishrink_shrinker::Error),
}

impl fmt::Display for DebugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchShrinker(id) => write!(f, "no registered shrinker with id {id}"),
            Self::NoSuchMemcg(id) => write!(f, "no online memcg with id {id}"),
            Self::NotMemcgAware { shrinker, memcg } => write!(
                f,
                "shrinker {shrinker} is not memcg-aware: memcg must be 0 or the root, not {memcg}"
            ),
            Self::NodeOutOfRange { nid, nr_nodes } => {
                write!(f, "node {nid} out of range (tree has {nr_nodes} nodes)")
            }
            Self::NoRoot => f.write_str("the root memcg is not online yet"),
            Self::Parse(e) => e.fmt(f),
            Self::Registry(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DebugError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Parse(e) => Some(e),
            Self::Registry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParseScanError> for DebugError {
    fn from(e: ParseScanError) -> Self {
        Self::Parse(e)
    }
}

impl From<unishrink_shrinker::Error> for DebugError {
    fn from(e: unishrink_shrinker::Error) -> Self {
        use unishrink_shrinker::{Error, MemcgError};
        match e {
            Error::NoSuchShrinker(id) => Self::NoSuchShrinker(id.0),
            Error::Memcg(MemcgError::NodeOutOfRange { nid, nr_nodes }) => {
                Self::NodeOutOfRange { nid, nr_nodes }
            }
            Error::Memcg(MemcgError::Offline(id)) => Self::NoSuchMemcg(id.0),
            Error::Memcg(MemcgError::NoRoot) => Self::NoRoot,
            e => Self::Registry(e),
        }
    }
}
