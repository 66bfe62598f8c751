//! When the service refreshes: at an interval (new files are also picked up as they land on
//! a local feed), or at the times of a cron expression in a time zone.

use std::time::Duration;

/// When a pipeline runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Poll the feed at this interval.
    Every(Duration),
    /// At the times of a five-field cron expression, in a time zone.
    Cron {
        expression: String,
        cron: Box<croner::Cron>,
        timezone: chrono_tz::Tz,
    },
}

impl Schedule {
    /// How long to wait from `now` until the next run.
    pub fn wait_from(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron { cron, timezone, .. } => {
                let local = now.with_timezone(timezone);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .and_then(|next| (next.with_timezone(&chrono::Utc) - now).to_std().ok())
                    .unwrap_or(Duration::from_secs(60))
            }
        }
    }

    /// The next `n` runs after `now`, in the schedule's time zone (none for `Every`).
    pub fn next_runs(&self, now: chrono::DateTime<chrono::Utc>, n: usize) -> Vec<String> {
        let Schedule::Cron { cron, timezone, .. } = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut at = now.with_timezone(timezone);
        while out.len() < n {
            let Ok(next) = cron.find_next_occurrence(&at, false) else {
                break;
            };
            out.push(next.format("%Y-%m-%d %H:%M %Z").to_string());
            at = next;
        }
        out
    }

    /// The schedule as written.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(every) => format!("every {}", humantime_secs(*every)),
            Schedule::Cron {
                expression,
                timezone,
                ..
            } => format!("cron '{expression}' {timezone}"),
        }
    }
}

fn humantime_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}
