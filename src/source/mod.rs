//! Where files come from, and where they go when done (SPEC §4).

pub mod claims;
pub mod folder;
pub mod identity;
pub mod names;
pub mod owner;
pub mod s3;

pub use folder::{Claimed, Disposition, Filed, FolderSource};
