//! Where files come from, and where they go when done (SPEC §4).

pub mod folder;
pub mod identity;
pub mod names;
pub mod s3;

pub use folder::{Claimed, Disposition, Filed, FolderSource};
