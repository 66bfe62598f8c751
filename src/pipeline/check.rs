//! What `pipeline validate` checks beyond a pipeline file's own fields ([`super::spec`]), so
//! that a pipeline it passes does not fail at its first run: every step's SQL plans over the
//! views of the queries folder, and the output and state folders lie outside the feed (whose
//! discovery would read their files as changes).

use super::spec::{Pipeline, SpecError};
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::params::KpiParams;
use crate::engine::views::ViewSet;
use crate::service::session::SessionError;
use crate::state::State;
use crate::store;

/// The errors of `pipeline` that only show with the views and stores it names (none: it
/// runs as far as a check without rows can tell).
pub async fn check(config: &Config, pipeline: &Pipeline) -> Vec<SpecError> {
    let file = pipeline.file.display().to_string();
    let error = |line: usize, message: String| SpecError {
        file: file.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(&pipeline.file).unwrap_or_default();
    // The line of a top-level key (1 when it is not in the file: the config's).
    let line_of = |key: &str| {
        (text.lines().position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        }))
        .map_or(1, |i| i + 1)
    };
    let mut errors = Vec::new();
    let feed_url = pipeline.feed.clone().unwrap_or(config.feed.url.clone());
    let state_url = pipeline.state.clone().unwrap_or(config.state.url.clone());
    // Folders `run` makes when missing: only where they lie is checked.
    match store::to_url(&feed_url) {
        Err(e) => errors.push(error(line_of("feed"), format!("feed: {e}"))),
        Ok(feed) => {
            let out = pipeline.out.as_deref();
            let folders = [
                ("output folder", "out", out),
                ("state", "state", Some(&state_url)),
            ];
            for (what, key, url) in folders {
                let Some(url) = url else {
                    continue;
                };
                let inner = match store::to_url(url) {
                    Ok(inner) => inner,
                    Err(e) => {
                        errors.push(error(line_of(key), format!("{what}: {e}")));
                        continue;
                    }
                };
                if let Some(relative) = store::visible_inside(&feed, &inner) {
                    let e = SessionError::InsideFeed {
                        what,
                        inner: inner.to_string(),
                        feed: feed.to_string(),
                        relative,
                    };
                    errors.push(error(line_of(key), e.to_string()));
                }
            }
        }
    }
    match engine_without_rows(config).await {
        Ok(engine) => {
            for step in &pipeline.steps {
                if let Err(e) = engine.ctx.sql(&step.query()).await {
                    let message = format!("step '{}' does not plan: {e}", step.name);
                    errors.push(error(step.line, message));
                }
            }
        }
        Err(e) => errors.push(error(1, format!("the views of the queries folder: {e}"))),
    }
    errors
}

/// An engine over an empty state with the views of the configured queries folder.
async fn engine_without_rows(config: &Config) -> Result<Engine, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let location = store::open("memory://pipeline-validate", true).map_err(|e| text(&e))?;
    let mut state = State::open(location).await.map_err(|e| text(&e))?;
    let folder = std::path::Path::new(&config.engine.queries);
    let engine =
        (Engine::new().with_queries(Some(folder), ViewSet::Plain)).map_err(|e| text(&e))?;
    let today = chrono::Utc::now().date_naive();
    (engine.refresh(&mut state, &KpiParams::new(today)).await).map_err(|e| text(&e))?;
    Ok(engine)
}
