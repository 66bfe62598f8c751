//! Discovery: list the Parquet files of a feed, so the state layer can pick the new ones.

use futures::TryStreamExt;
use object_store::path::Path;

use super::contract::Entity;
use crate::store::Location;

/// One file found in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedFile {
    /// Path relative to the feed root, e.g. `invoices/month=2025-01/part-0000.parquet`:
    /// the file's identity in the checkpoint.
    pub relative: String,
    /// Full path inside the store.
    pub path: Path,
    pub size: u64,
    /// The entity named by the first folder, or `None` for a folder the contract does not know.
    pub entity: Option<Entity>,
    /// The first folder's name (the entity's, when it is one).
    pub folder: String,
}

/// Why the feed could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("feed '{url}' does not exist or is not a folder")]
    Missing { url: String },
    #[error("cannot list feed '{url}': {source}")]
    List {
        url: String,
        source: object_store::Error,
    },
}

/// List every `*.parquet` file below the feed root, sorted by path. Hidden files and folders
/// (starting with `.` or `_`, as Spark and Hive writers leave them) are skipped.
pub async fn discover(feed: &Location) -> Result<Vec<FeedFile>, DiscoverError> {
    if feed.is_local() {
        let dir = feed.url.to_file_path().unwrap_or_default();
        if !dir.is_dir() {
            return Err(DiscoverError::Missing {
                url: dir.display().to_string(),
            });
        }
    }
    let listed: Vec<_> = feed
        .store
        .list(Some(&feed.prefix))
        .try_collect()
        .await
        .map_err(|source| DiscoverError::List {
            url: feed.url.to_string(),
            source,
        })?;
    let mut files: Vec<FeedFile> = listed
        .into_iter()
        .filter_map(|meta| {
            let relative = feed.relative(&meta.location);
            let hidden = relative
                .split('/')
                .any(|part| part.starts_with('.') || part.starts_with('_'));
            if hidden || !relative.ends_with(".parquet") || !relative.contains('/') {
                return None;
            }
            let folder = relative.split('/').next().unwrap_or_default().to_string();
            Some(FeedFile {
                entity: Entity::from_name(&folder),
                folder,
                relative,
                path: meta.location,
                size: meta.size,
            })
        })
        .collect();
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}
