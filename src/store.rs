//! Object-store URLs: a plain path, `file://`, `memory://`, `s3://`, `gs://` or `az://`.
//!
//! Feeds, state and outputs are all addressed by such a URL; this module turns one into an
//! `ObjectStore` plus the prefix inside it. Cloud credentials come from the environment only
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as the object_store builders read them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ClientConfigKey;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::{Path, PathPart};
use url::Url;

/// Why a location could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("'{0}' is not a valid location: {1}")]
    BadUrl(String, String),
    #[error(
        "unsupported scheme '{scheme}' in '{url}' (use a path, file://, memory://, s3://, gs:// or az://)"
    )]
    Scheme { scheme: String, url: String },
    #[error("cannot open '{url}': {source}")]
    Open {
        url: String,
        source: object_store::Error,
    },
    #[error("folder '{0}' does not exist")]
    Missing(String),
    #[error("cannot create folder '{path}': {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

/// An opened location: the store, the prefix inside it and the URL it was opened from.
#[derive(Clone, Debug)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The normalized URL (`file:///abs/path`, `s3://bucket/prefix`, …).
    pub url: Url,
}

impl Location {
    /// The path of `relative` (slash-separated) under this location's prefix.
    ///
    /// Each part is taken as it is, the way a listing returns it (`März.parquet`, `a#1.parquet`,
    /// `50%.parquet`), so that a name read from the store finds the same object again;
    /// only a part no object can have (`.`, `..`, a control character) is percent-encoded.
    pub fn child(&self, relative: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = match PathPart::parse(part) {
                Ok(raw) => p.clone().join(raw),
                Err(_) => p.clone().join(part),
            };
        }
        p
    }

    /// The folder `name` inside this location, as a location of its own.
    pub fn folder(&self, name: &str) -> Location {
        Location {
            store: self.store.clone(),
            prefix: self.child(name),
            url: self.url_of(name),
        }
    }

    /// The part of `path` below this location's prefix.
    pub fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.as_ref().to_string(),
        }
    }

    /// The URL of `relative` under this location, for engines that take URLs: each part is
    /// percent-encoded, so a name with `#`, `?`, `%` or non-ASCII letters stays one path.
    pub fn url_of(&self, relative: &str) -> Url {
        let mut url = self.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(relative.split('/').filter(|s| !s.is_empty()));
        }
        url
    }

    /// The URL of the store's root (what DataFusion registers the store under).
    pub fn root_url(&self) -> Url {
        let mut u = self.url.clone();
        u.set_path("/");
        u
    }

    /// Where `inner` lies inside this location, as a relative path, when a listing of this
    /// location would see its files: not for a hidden folder (`.arstream/state`), which
    /// feed discovery skips.
    pub fn visible_inside(&self, inner: &Location) -> Option<String> {
        visible_inside(&self.url, &inner.url)
    }

    /// Whether this is a folder on the local disk.
    pub fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }
}

/// [`Location::visible_inside`] of two URLs (folders that need not exist yet).
pub fn visible_inside(outer: &Url, inner: &Url) -> Option<String> {
    let same_store = outer.scheme() == inner.scheme() && outer.host_str() == inner.host_str();
    let prefix = format!("{}/", outer.path().trim_end_matches('/'));
    let relative = inner.path().strip_prefix(&prefix)?.trim_matches('/');
    let hidden = (relative.split('/')).any(|p| p.starts_with('.') || p.starts_with('_'));
    (same_store && !hidden).then(|| relative.to_string())
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// Turn a user-given location into a URL: a plain path becomes an absolute `file://` URL.
pub fn to_url(location: &str) -> Result<Url, StoreError> {
    if location.trim().is_empty() {
        return Err(StoreError::BadUrl(
            location.into(),
            "the location is empty (give a path or a URL)".into(),
        ));
    }
    let looks_like_url = location.contains("://");
    if looks_like_url {
        return Url::parse(location)
            .map_err(|e| StoreError::BadUrl(location.into(), e.to_string()));
    }
    let path = PathBuf::from(location);
    let abs = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| StoreError::BadUrl(location.into(), e.to_string()))?
            .join(path)
    };
    let abs = normalize(&abs);
    Url::from_directory_path(&abs)
        .map_err(|_| StoreError::BadUrl(location.into(), "not an absolute path".into()))
}

/// Remove `.` and `..` parts without touching the disk (the folder may not exist yet).
fn normalize(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Requests to a cloud store: a connection within 5 s, an answer within 30 s (set over the
/// environment's other client options, which stay). A store that hangs is then an error
/// within about a minute (not the client's default of retrying for three), which the service
/// reports and retries with its own backoff.
const TIMEOUTS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "30s"),
];

/// Up to 3 retries of a failed request, for at most 30 s in all.
fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    }
}

/// Open a location. `create` makes a missing local folder (for state and outputs; a feed
/// folder is never created, so that a typo in its path is reported rather than hidden).
pub fn open(location: &str, create: bool) -> Result<Location, StoreError> {
    let url = to_url(location)?;
    let open_err = |source| StoreError::Open {
        url: location.to_string(),
        source,
    };
    let (store, prefix): (Arc<dyn ObjectStore>, Path) = match url.scheme() {
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|_| StoreError::BadUrl(location.into(), "not a local path".into()))?;
            if !create && !dir.is_dir() {
                return Err(StoreError::Missing(dir.display().to_string()));
            }
            if create {
                std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let prefix = Path::from_filesystem_path(&dir).map_err(|e| open_err(e.into()))?;
            (Arc::new(LocalFileSystem::new()), prefix)
        }
        "memory" => {
            let name = url.host_str().unwrap_or("").to_string();
            let store = memory_stores()
                .lock()
                .expect("memory store registry poisoned")
                .entry(name)
                .or_default()
                .clone();
            (store, Path::from(url.path().trim_matches('/')))
        }
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            for (key, value) in TIMEOUTS {
                builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
            }
            let store = builder.with_retry(retries()).build().map_err(open_err)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (key, value) in TIMEOUTS {
                builder = builder.with_config(GoogleConfigKey::Client(key), value);
            }
            let store = builder.with_retry(retries()).build().map_err(open_err)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        "az" | "abfs" | "abfss" | "azure" => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (key, value) in TIMEOUTS {
                builder = builder.with_config(AzureConfigKey::Client(key), value);
            }
            let store = builder.with_retry(retries()).build().map_err(open_err)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        other => {
            return Err(StoreError::Scheme {
                scheme: other.to_string(),
                url: location.to_string(),
            });
        }
    };
    Ok(Location { store, prefix, url })
}

/// Write `bytes` to `path` so that it survives a power loss once this returns: on a local
/// folder the data goes to a temporary file that is flushed to disk (`fsync`), renamed (or,
/// with `create_only`, linked, which fails if the object exists) into place, and the folder
/// is flushed too, so the new name is on disk as well. Object stores are durable when they
/// acknowledge a PUT; there `create_only` is a conditional PUT.
pub async fn put_durable(
    location: &Location,
    path: &Path,
    bytes: bytes::Bytes,
    create_only: bool,
) -> object_store::Result<()> {
    if !location.is_local() {
        let mode = match create_only {
            true => object_store::PutMode::Create,
            false => object_store::PutMode::Overwrite,
        };
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        location.store.put_opts(path, bytes.into(), opts).await?;
        return Ok(());
    }
    let target = LocalFileSystem::new().path_to_filesystem(path)?;
    let shown = path.to_string();
    tokio::task::spawn_blocking(move || write_synced(&target, &bytes, create_only))
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => object_store::Error::AlreadyExists {
                path: shown,
                source: Box::new(e),
            },
            _ => object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        })
}

fn write_synced(target: &std::path::Path, bytes: &[u8], create_only: bool) -> std::io::Result<()> {
    use std::io::Write;
    write_local_synced(target, create_only, |file| file.write_all(bytes))
}

/// Write a local file durably, its content written by `fill` as it is made (a file of
/// gigabytes need not be held in memory first): into a temporary file, synced, then moved
/// (or, with `create_only`, linked) to `target`, and the folder synced.
pub fn write_local_synced(
    target: &std::path::Path,
    create_only: bool,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let folder = target.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(folder)?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp)?);
        fill(&mut file)?;
        file.flush()?;
        file.get_ref().sync_all()?;
        match create_only {
            true => std::fs::hard_link(&temp, target),
            false => std::fs::rename(&temp, target),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    result?;
    std::fs::File::open(folder)?.sync_all()
}
