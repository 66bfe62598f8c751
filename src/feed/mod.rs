//! The feed: the change-feed contract, discovery of new files and their validation.

pub mod contract;
pub mod discover;
pub mod format;
pub mod read;
pub mod sources;
pub mod validate;

pub use contract::Entity;
pub use discover::{FeedFile, discover};
pub use read::validate_file;
pub use sources::Sources;
pub use validate::{Violation, ViolationCode};
