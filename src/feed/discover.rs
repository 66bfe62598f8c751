//! Discovery: list the Parquet files of a feed, so the state layer can pick the new ones.

use futures::TryStreamExt;
use object_store::path::Path;

use super::contract::Entity;
use super::format::FeedReader;
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
    /// The entity the file's table is, or `None` for a folder the contract does not know.
    pub entity: Option<Entity>,
    /// The source's name for the file's table: the first folder (the entity's, when it is
    /// one) in the contract's layout, the topic or table in another format's.
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

/// What a listing of the feed found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every `*.parquet` file, sorted by path.
    pub files: Vec<FeedFile>,
    /// Entries that could not be read (a symlink loop, a folder without permission), each
    /// with why: left out, and the rest of the feed goes on.
    pub skipped: Vec<String>,
}

/// List every `*.parquet` file below the feed root that `reader`'s format reads, sorted by
/// path. Hidden files and folders (starting with `.` or `_`, as Spark and Hive writers leave
/// them) are skipped.
pub async fn discover(feed: &Location, reader: &FeedReader) -> Result<Listing, DiscoverError> {
    let (listed, skipped) = if feed.is_local() {
        let dir = feed.url.to_file_path().unwrap_or_default();
        if !dir.is_dir() {
            return Err(DiscoverError::Missing {
                url: dir.display().to_string(),
            });
        }
        tokio::task::spawn_blocking(move || walk_local(&dir))
            .await
            .map_err(|e| DiscoverError::List {
                url: feed.url.to_string(),
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                },
            })?
    } else {
        let listed: Vec<(Path, u64)> = feed
            .store
            .list(Some(&feed.prefix))
            .map_ok(|meta| (meta.location, meta.size))
            .try_collect()
            .await
            .map_err(|source| DiscoverError::List {
                url: feed.url.to_string(),
                source,
            })?;
        (listed, Vec::new())
    };
    for entry in &skipped {
        tracing::warn!("feed '{}': skipped {entry}", feed.url);
    }
    // Folders a writer marked complete (`_SUCCESS`), for formats that wait for it.
    let marker = format!("/{SUCCESS}");
    let complete: std::collections::HashSet<String> = (listed.iter())
        .map(|(location, _)| feed.relative(location))
        .filter_map(|r| r.strip_suffix(&marker).map(str::to_string))
        .collect();
    let mut files: Vec<FeedFile> = listed
        .into_iter()
        .filter_map(|(location, size)| {
            let relative = feed.relative(&location);
            if is_hidden(&relative) || !relative.ends_with(".parquet") || !relative.contains('/') {
                return None;
            }
            if reader
                .needs_marker(&relative)
                .is_some_and(|folder| !complete.contains(&folder))
            {
                return None;
            }
            let located = reader.locate(&relative)?;
            Some(FeedFile {
                entity: located.entity,
                folder: located.table,
                relative,
                path: location,
                size,
            })
        })
        .collect();
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(Listing { files, skipped })
}

/// The file a writer leaves in a folder it finished writing.
const SUCCESS: &str = "_SUCCESS";

fn is_hidden(relative: &str) -> bool {
    (relative.split('/')).any(|part| part.starts_with('.') || part.starts_with('_'))
}

/// Walk a local feed folder (following symbolic links, as the object store's own listing
/// does), keeping what can be read: an entry that cannot (a link loop, a folder without
/// permission, a name that is not UTF-8) is reported and left out instead of failing the
/// whole listing. Hidden folders are not entered.
fn walk_local(root: &std::path::Path) -> (Vec<(Path, u64)>, Vec<String>) {
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    let walk = walkdir::WalkDir::new(root).follow_links(true).into_iter();
    let visible = |e: &walkdir::DirEntry| {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0
            || !name.starts_with(['.', '_'])
            || (name == SUCCESS && e.file_type().is_file())
    };
    for entry in walk.filter_entry(visible) {
        let shown = |path: Option<&std::path::Path>| {
            let path = path.and_then(|p| p.strip_prefix(root).ok());
            path.map_or(String::from("an entry"), |p| format!("'{}'", p.display()))
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let why = match e.loop_ancestor() {
                    Some(_) => "a symbolic link loop".to_string(),
                    None => e.io_error().map_or(e.to_string(), |io| io.to_string()),
                };
                skipped.push(format!("{}: {why}", shown(e.path())));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let size = match entry.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                skipped.push(format!("{}: {e}", shown(Some(entry.path()))));
                continue;
            }
        };
        match Path::from_absolute_path(entry.path()) {
            Ok(path) => files.push((path, size)),
            Err(e) => skipped.push(format!("{}: {e}", shown(Some(entry.path())))),
        }
    }
    (files, skipped)
}
