//! Where the files a state applies come from: the ERP's feed, in its own format, and the
//! actions feed arstream writes itself (what collectors record: contacts, promises,
//! disputes), always in the contract. A file of the actions feed is known in the checkpoint
//! as `_actions/<its path>`: no ERP file can have that name (discovery skips folders starting
//! with `_`), so the two never collide and each is applied exactly once, like any other.

use object_store::path::Path;
use url::Url;

use super::format::FeedReader;
use crate::store::Location;

/// How the checkpoint names a file of the actions feed: this, then its path there.
pub const ACTIONS_PREFIX: &str = "_actions/";

/// The feeds a state applies, and how each is read.
#[derive(Debug, Clone)]
pub struct Sources {
    pub feed: Location,
    pub reader: FeedReader,
    /// The actions feed (the contract); none for a state that applies the ERP's feed only.
    pub actions: Option<Location>,
}

/// One applied file's place: its feed, its path there, and how it is read.
pub struct Placed<'a> {
    pub location: &'a Location,
    pub relative: &'a str,
    pub reader: &'a FeedReader,
}

impl Sources {
    /// Where the file the checkpoint names `relative` is.
    pub fn place<'a>(&'a self, relative: &'a str) -> Placed<'a> {
        static NATIVE: std::sync::LazyLock<FeedReader> =
            std::sync::LazyLock::new(FeedReader::default);
        match (relative.strip_prefix(ACTIONS_PREFIX), &self.actions) {
            (Some(inner), Some(actions)) => Placed {
                location: actions,
                relative: inner,
                reader: &NATIVE,
            },
            _ => Placed {
                location: &self.feed,
                relative,
                reader: &self.reader,
            },
        }
    }

    /// The store path of the file named `relative`.
    pub fn path_of(&self, relative: &str) -> Path {
        let placed = self.place(relative);
        placed.location.child(placed.relative)
    }

    /// The URL of the file named `relative`.
    pub fn url_of(&self, relative: &str) -> Url {
        let placed = self.place(relative);
        placed.location.url_of(placed.relative)
    }
}

/// Whether the checkpoint's `relative` names a file of the actions feed.
pub fn is_action(relative: &str) -> bool {
    relative.starts_with(ACTIONS_PREFIX)
}
