//! What a frame shows, prepared: every panel's rows as text and numbers, made off the render
//! loop from a snapshot (see [`super::prepare`]). Drawing reads only these, so a frame costs
//! the same whatever the size of the state.

use std::collections::HashMap;

use chrono::NaiveDate;

/// A table of text for drawing, with what it takes to sort it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    /// Columns drawn right-aligned and sorted as numbers.
    pub numeric: Vec<bool>,
    pub cells: Vec<Vec<String>>,
    /// The number sorted on, per numeric cell (`NaN` for none).
    pub numbers: Vec<Vec<f64>>,
    /// Rows the query returned, when more than were kept.
    pub more: Option<usize>,
    /// What the reader must know of these rows (shown under them), e.g. that the baseline
    /// scored them.
    pub note: Option<String>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The index of column `name`, if it has one.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// How a KPI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Money,
    Days,
    /// A ratio (a fraction in the data) shown in percent.
    Percent,
}

/// One KPI tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub label: &'static str,
    pub value: Option<f64>,
    pub unit: Unit,
    /// Its value one period (a month) before the as-of date.
    pub previous: Option<f64>,
    /// Oldest first, one a month, the as-of date's last.
    pub history: Vec<f64>,
    /// Whether a rise is good news (CEI) or bad (DSO).
    pub higher_is_better: bool,
}

/// One week of the cash forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Week {
    pub start: NaiveDate,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

/// The cash forecast and its backtest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forecast {
    pub weeks: Vec<Week>,
    /// Backtested WAPE, and the naive baselines' (paid on due date, average delay).
    pub wape: Option<f64>,
    pub wape_due_date: Option<f64>,
    pub wape_average_delay: Option<f64>,
    pub band_coverage: Option<f64>,
}

/// A panel's content, prepared.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    Tiles(Vec<Tile>),
    /// Label and amount, in order.
    Bars(Vec<(String, f64)>),
    /// (as-of date, value), oldest first.
    Line(Vec<(NaiveDate, f64)>),
    Rows(Rows),
    Forecast(Forecast),
    /// Its query failed: the panel says why, the others go on.
    Failed(String),
}

/// Where the service stands, for the status line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// `None` until the first snapshot: the state is loading.
    pub as_of: Option<NaiveDate>,
    pub currency: String,
    pub sequence: u64,
    pub generation: u64,
    /// Local time of the snapshot, `HH:MM:SS`.
    pub refreshed_at: String,
    pub files_applied: usize,
    pub quarantined: usize,
    /// The panels still being prepared (the models' tables take longest).
    pub preparing: bool,
}

/// Everything a frame shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    pub status: Status,
    /// By panel id (see [`super::layout::Layout::panels`]).
    pub panels: HashMap<usize, Prepared>,
}

/// A customer drilled into: its sections, each a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub customer_id: String,
    pub name: String,
    /// `None` while its queries run.
    pub sections: Option<Vec<(String, Rows)>>,
}

impl Detail {
    /// The lines it draws: each section's title, its header and rows (or "none"), a blank.
    pub fn lines(&self) -> usize {
        let section = |rows: &Rows| 2 + if rows.is_empty() { 1 } else { rows.len() + 1 };
        (self.sections.iter().flatten())
            .map(|(_, rows)| section(rows))
            .sum::<usize>()
            .max(1)
    }
}
