//! When the service looks at the feed again: as soon as a file lands in a local feed folder
//! (file-system notifications), else at the schedule's next time (polling, also the fallback
//! when notifications cannot be set up, and always for object stores).

use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::schedule::Schedule;
use crate::store::Location;

/// How long a landing must be quiet before the feed is read (a folder of files copied in one
/// go is then read once), and at most how long to wait for that quiet.
const SETTLE: Duration = Duration::from_millis(20);
const SETTLE_AT_MOST: Duration = Duration::from_millis(500);

/// The feed-change trigger of one service.
pub struct Trigger {
    schedule: Schedule,
    landed: Arc<Notify>,
    /// Kept alive for as long as notifications are wanted.
    watcher: Option<notify::RecommendedWatcher>,
}

impl Trigger {
    /// A trigger for `feed` on `schedule`. A local feed on an interval schedule is watched
    /// too (unless `watch` is off); a cron schedule runs at its times only.
    /// The actions feed (`actions`, created when local and missing) is watched with it.
    pub fn new(feed: &Location, actions: &Location, schedule: Schedule, watch: bool) -> Trigger {
        let landed = Arc::new(Notify::new());
        let wanted = watch && feed.is_local() && matches!(schedule, Schedule::Every(_));
        let watcher = match wanted {
            true => watch_folders(feed, actions, landed.clone()),
            false => None,
        };
        Trigger {
            schedule,
            landed,
            watcher,
        }
    }

    /// Whether landings are noticed as they happen (not only at the next poll).
    pub fn watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Wait until the feed should be read again: a file landed (and things went quiet), or
    /// the schedule's next time came. With `backoff`, wait that long instead, whatever
    /// lands (a retry after a failure).
    pub async fn next(&self, backoff: Option<Duration>) {
        if let Some(wait) = backoff {
            return tokio::time::sleep(wait).await;
        }
        let poll = self.schedule.wait_from(chrono::Utc::now());
        if !self.watching() {
            return tokio::time::sleep(poll).await;
        }
        tokio::select! {
            _ = self.landed.notified() => {}
            _ = tokio::time::sleep(poll) => return,
        }
        let settled = tokio::time::sleep(SETTLE_AT_MOST);
        tokio::pin!(settled);
        loop {
            tokio::select! {
                _ = &mut settled => return,
                _ = tokio::time::sleep(SETTLE) => return,
                _ = self.landed.notified() => {}
            }
        }
    }
}

/// Watch the local feed folder and its sub-folders, and the actions folder when local; `None`
/// (with a warning) when the system refuses.
fn watch_folders(
    feed: &Location,
    actions: &Location,
    landed: Arc<Notify>,
) -> Option<notify::RecommendedWatcher> {
    let folder = feed.url.to_file_path().ok()?;
    let actions = actions.url.to_file_path().ok();
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| is_landing(&e)) {
            landed.notify_one();
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&folder, RecursiveMode::Recursive)?;
        if let Some(actions) = actions {
            std::fs::create_dir_all(&actions)?;
            w.watch(&actions, RecursiveMode::Recursive)?;
        }
        Ok(w)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                "cannot watch feed folder '{}' for new files ({e}); polling it instead",
                folder.display()
            );
            None
        }
    }
}

/// A file finished writing, or a file or folder moved in, outside hidden names (writers'
/// temporary files). A file still being written is not a landing: only its close is.
fn is_landing(event: &notify::Event) -> bool {
    let finished = matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
    );
    let visible = |p: &std::path::PathBuf| {
        p.file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with(['.', '_']))
    };
    finished && event.paths.iter().any(visible)
}
