//! Pipelines as files (`pipelines/*.toml`): what a data team schedules.
//!
//! ```toml
//! name = "standard"
//! feed = "../sample-data/feed"      # relative to this file, or an object-store URL
//! state = "../.arstream/state"
//! out = "../.arstream/out"
//! as_of = "feed"                    # today | feed | YYYY-MM-DD
//! # outreach = "outreach.toml"      # send by this policy after each refresh (docs/outreach.md)
//!
//! [schedule]
//! every = "30s"                     # or: cron = "0 6 * * *" and timezone = "Europe/Paris"
//!
//! [[steps]]
//! view = "kpi_summary"              # or: sql = "my_query.sql" (a SELECT, relative to this file)
//! keep = "per_as_of"                # or "latest"
//! # to = "s3://bucket/prefix"       # another sink than `out` for this step
//! # every = "15m"                   # write this output at most this often (big extracts)
//! ```
//!
//! Every problem is reported with the file and the line it is on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::service::schedule::Schedule;

/// Why a pipeline file is not valid: the file, the line, and what is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    feed: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
    out: Option<Spanned<String>>,
    #[serde(default)]
    as_of: Option<Spanned<String>>,
    schedule: Spanned<RawSchedule>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
    outreach: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    every: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    view: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    /// The output's name (default: the view's name, or the SQL file's stem).
    name: Option<Spanned<String>>,
    #[serde(default)]
    keep: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
}

/// How an output is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// One partition per as-of date.
    PerAsOf,
    /// Only the latest result.
    Latest,
}

/// What one step materializes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A view (or table) of the engine.
    View(String),
    /// A SELECT read from a file.
    Sql { path: PathBuf, query: String },
}

/// One step: a query whose result is written as an output.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub source: Source,
    pub keep: Keep,
    /// Another sink than the pipeline's `out`.
    pub to: Option<String>,
    /// Write the output at most this often while `run` runs (an output that costs more than
    /// a refresh should, such as a per-invoice extract of millions of rows); none: at every
    /// refresh.
    pub every: Option<Duration>,
    /// The line of the step in its file (for errors at run time).
    pub line: usize,
}

impl Step {
    /// The query to run.
    pub fn query(&self) -> String {
        match &self.source {
            Source::View(view) => format!("SELECT * FROM {view}"),
            Source::Sql { query, .. } => query.clone(),
        }
    }
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    pub feed: Option<String>,
    pub state: Option<String>,
    /// Where the steps' outputs go; none: `--out` must say.
    pub out: Option<String>,
    /// `today`, `feed` or a date; none: the config's.
    pub as_of: Option<String>,
    pub schedule: Schedule,
    pub steps: Vec<Step>,
    /// The outreach policy `run` sends by after each refresh (see `crate::outreach`); none:
    /// no outreach.
    pub outreach: Option<PathBuf>,
}

/// Line (1-based) of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parse `"30s"`, `"5m"`, `"1h"` or a number of seconds.
fn parse_every(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (seconds > 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

/// The shortest `every`: shorter, an idle service spends its time polling.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// Whether `file` is an outreach policy: its TOML has a top-level `rules` array.
fn is_outreach_policy(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.get("rules").is_some_and(|r| r.is_array()))
}

/// The text of a spec file and the name errors give it; a file that cannot be read is an
/// error at its line 1 saying what it was to be (`what`: "pipeline", "outreach policy", …).
pub(crate) fn read_spec(file: &Path, what: &str) -> Result<(String, String), SpecError> {
    let shown = file.display().to_string();
    match std::fs::read_to_string(file) {
        Ok(text) => Ok((shown, text)),
        Err(e) => Err(SpecError {
            file: shown,
            line: 1,
            message: format!("cannot read the {what}: {e}"),
        }),
    }
}

/// Read and check one pipeline file. `views` are the names a `view` step may use.
pub fn load(file: &Path, views: &[String]) -> Result<Pipeline, SpecError> {
    let (shown, text) = read_spec(file, "pipeline")?;
    parse(
        &shown,
        &text,
        file.parent().unwrap_or(Path::new(".")),
        views,
    )
}

/// Check a pipeline's text (`file` names it in errors; relative paths are against `base`).
pub fn parse(file: &str, text: &str, base: &Path, views: &[String]) -> Result<Pipeline, SpecError> {
    let error = |offset: usize, message: String| SpecError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    };
    let duration = |every: &Spanned<String>| {
        let d = parse_every(every.get_ref()).ok_or_else(|| {
            error(
                every.span().start,
                format!(
                    "every '{}' is not a duration such as 30s, 5m or 1h",
                    every.get_ref()
                ),
            )
        })?;
        if d < MIN_EVERY {
            return Err(error(
                every.span().start,
                format!(
                    "every '{}' is shorter than 1s: an idle service would spend its time polling",
                    every.get_ref()
                ),
            ));
        }
        Ok(d)
    };
    let raw: RawPipeline = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        error(offset, e.message().to_string())
    })?;

    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(error(
            raw.name.span().start,
            format!("name '{name}' must be letters, digits, '-' or '_'"),
        ));
    }
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    if stem.as_deref() != Some(name.as_str()) {
        return Err(error(
            raw.name.span().start,
            format!(
                "name '{name}' differs from the file's name ({}.toml)",
                stem.unwrap_or_default()
            ),
        ));
    }

    if let Some(as_of) = &raw.as_of {
        let value = as_of.get_ref();
        if value != "today" && value != "feed" && value.parse::<chrono::NaiveDate>().is_err() {
            return Err(error(
                as_of.span().start,
                format!("as_of '{value}' is not today, feed or a date YYYY-MM-DD"),
            ));
        }
    }

    let schedule_span = raw.schedule.span().start;
    let raw_schedule = raw.schedule.into_inner();
    let schedule = match (&raw_schedule.every, &raw_schedule.cron) {
        (Some(every), None) => {
            if let Some(tz) = &raw_schedule.timezone {
                return Err(error(
                    tz.span().start,
                    "timezone goes with cron, not every".into(),
                ));
            }
            Schedule::Every(duration(every)?)
        }
        (None, Some(cron)) => {
            let expression = cron.get_ref().clone();
            let fields = expression.split_whitespace().count();
            if fields != 5 {
                return Err(error(
                    cron.span().start,
                    format!(
                        "cron '{expression}' has {fields} fields: it takes five, minute hour \
                         day-of-month month day-of-week (\"0 6 * * *\" is 06:00 every day)"
                    ),
                ));
            }
            let parsed: croner::Cron = expression.parse().map_err(|e| {
                error(
                    cron.span().start,
                    format!("cron '{expression}' is not valid: {e}"),
                )
            })?;
            let timezone = match &raw_schedule.timezone {
                Some(tz) => tz.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                    error(
                        tz.span().start,
                        format!(
                            "timezone '{}' is not an IANA time zone (such as Europe/Paris)",
                            tz.get_ref()
                        ),
                    )
                })?,
                None => {
                    return Err(error(
                        cron.span().start,
                        "a cron schedule needs a timezone (such as timezone = \"UTC\")".into(),
                    ));
                }
            };
            Schedule::Cron {
                expression,
                cron: Box::new(parsed),
                timezone,
            }
        }
        _ => {
            return Err(error(
                schedule_span,
                "schedule needs exactly one of every = \"30s\" or cron = \"…\"".into(),
            ));
        }
    };

    let steps_span = raw.steps.span().start;
    let raw_steps = raw.steps.into_inner();
    if raw_steps.is_empty() {
        return Err(error(
            steps_span,
            "a pipeline needs at least one step".into(),
        ));
    }
    let mut steps: Vec<Step> = Vec::new();
    for step in raw_steps {
        let at = step.span().start;
        let step = step.into_inner();
        let (source, default_name) = match (&step.view, &step.sql) {
            (Some(view), None) => {
                let v = view.get_ref().clone();
                if !views.contains(&v) {
                    let hint = crate::hint::closest(&v, views)
                        .map(|c| format!(" (did you mean '{c}'?)"))
                        .unwrap_or_default();
                    return Err(error(
                        view.span().start,
                        format!("unknown view '{v}'{hint}"),
                    ));
                }
                (Source::View(v.clone()), v)
            }
            (None, Some(sql)) => {
                let path = base.join(sql.get_ref());
                let query = std::fs::read_to_string(&path).map_err(|e| {
                    error(
                        sql.span().start,
                        format!("cannot read SQL file {}: {e}", path.display()),
                    )
                })?;
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (Source::Sql { path, query }, stem)
            }
            _ => {
                return Err(error(
                    at,
                    "a step needs exactly one of view = \"…\" or sql = \"file.sql\"".into(),
                ));
            }
        };
        let name = step
            .name
            .as_ref()
            .map_or(default_name, |n| n.get_ref().clone());
        if steps.iter().any(|s| s.name == name) {
            return Err(error(at, format!("two steps write the output '{name}'")));
        }
        let keep = match step.keep.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("per_as_of") => Keep::PerAsOf,
            Some("latest") => Keep::Latest,
            Some(other) => {
                let span = step.keep.as_ref().map_or(at, |k| k.span().start);
                return Err(error(
                    span,
                    format!("keep '{other}' is not per_as_of or latest"),
                ));
            }
        };
        let every = step.every.as_ref().map(duration).transpose()?;
        steps.push(Step {
            name,
            source,
            keep,
            every,
            to: step.to.map(|t| crate::config::resolve(base, t.get_ref())),
            line: line_of(text, at),
        });
    }

    let outreach = match &raw.outreach {
        None => None,
        Some(policy) => {
            let path = base.join(policy.get_ref());
            if !path.is_file() {
                return Err(error(
                    policy.span().start,
                    format!("outreach policy {} does not exist", path.display()),
                ));
            }
            Some(path)
        }
    };

    Ok(Pipeline {
        name,
        description: raw.description,
        file: PathBuf::from(file),
        feed: raw.feed.map(|f| crate::config::resolve(base, f.get_ref())),
        state: raw.state.map(|s| crate::config::resolve(base, s.get_ref())),
        out: raw.out.map(|o| crate::config::resolve(base, o.get_ref())),
        as_of: raw.as_of.map(|a| a.into_inner()),
        schedule,
        steps,
        outreach,
    })
}

/// The pipeline files of a folder, sorted by name.
///
/// An outreach policy in the same folder (a file with `[[rules]]`, such as `outreach.toml`)
/// is not a pipeline: a pipeline names it with its `outreach` key.
pub fn files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter(|p| !is_outreach_policy(p))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views() -> Vec<String> {
        vec!["kpi_summary".into(), "open_items".into()]
    }

    fn check(text: &str) -> Result<Pipeline, SpecError> {
        parse("pipelines/p.toml", text, Path::new("pipelines"), &views())
    }

    const GOOD: &str = "name = \"p\"\nout = \"out\"\n\n[schedule]\nevery = \"30s\"\n\n[[steps]]\nview = \"kpi_summary\"\n";

    #[test]
    fn a_good_pipeline_loads() {
        let p = check(GOOD).unwrap();
        assert_eq!(p.steps[0].name, "kpi_summary");
        assert_eq!(p.out.as_deref(), Some("pipelines/out"));
        assert!(matches!(p.schedule, Schedule::Every(d) if d == Duration::from_secs(30)));
        assert_eq!(p.steps[0].every, None);
        let slow = check(&format!("{GOOD}every = \"15m\"\n")).unwrap();
        assert_eq!(slow.steps[0].every, Some(Duration::from_secs(900)));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let unknown = GOOD.replace("view = \"kpi_summary\"", "view = \"kpi_sumary\"");
        let e = check(&unknown).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("pipelines/p.toml", 8));
        assert!(e.message.contains("did you mean 'kpi_summary'"), "{e}");

        let cron = GOOD.replace(
            "every = \"30s\"",
            "cron = \"61 * * * *\"\ntimezone = \"UTC\"",
        );
        let e = check(&cron).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("cron '61 * * * *' is not valid"), "{e}");

        let zone = GOOD.replace(
            "every = \"30s\"",
            "cron = \"0 6 * * *\"\ntimezone = \"Mars/Olympus\"",
        );
        assert_eq!(check(&zone).unwrap_err().line, 6);

        let every = format!("{GOOD}every = \"soon\"\n");
        let e = check(&every).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.message.contains("every 'soon' is not a duration"), "{e}");

        let missing = GOOD.replace("[schedule]\nevery = \"30s\"\n", "");
        let e = check(&missing).unwrap_err();
        assert!(e.message.contains("missing field `schedule`"), "{e}");
        // `out` may be left to the command line (`--out`).
        let no_out = check(&GOOD.replace("out = \"out\"\n", "")).unwrap();
        assert_eq!(no_out.out, None);
        // A poll every millisecond; a cron with seconds.
        let e = check(&GOOD.replace("every = \"30s\"", "every = \"1ms\"")).unwrap_err();
        assert!(e.message.contains("shorter than 1s"), "{e}");
        let six = GOOD.replace(
            "every = \"30s\"",
            "cron = \"0 6 * * * *\"\ntimezone = \"UTC\"",
        );
        let e = check(&six).unwrap_err();
        assert!(e.message.contains("has 6 fields"), "{e}");
    }

    #[test]
    fn cron_waits_until_the_next_time_in_its_zone() {
        let text = GOOD.replace(
            "every = \"30s\"",
            "cron = \"0 6 * * *\"\ntimezone = \"Europe/Paris\"",
        );
        let p = check(&text).unwrap();
        // 04:00 UTC in winter is 05:00 in Paris: one hour to 06:00 there.
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-15T04:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(p.schedule.wait_from(now), Duration::from_secs(3600));
    }
}
