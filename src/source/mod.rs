//! Where files come from, and where they go when done (SPEC §4).

pub mod folder;
pub mod identity;

pub use folder::{Claimed, Disposition, FolderSource};
