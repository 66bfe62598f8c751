//! Turning snapshots into [`Board`]s, off the render loop: each panel's query runs on the
//! snapshot's engine and its rows become text. The panels that read the models' tables
//! (risk, worklist, forecast), which are made on first ask, come in a second board after the
//! others, and the KPI history of the trend panels (stored once made) in a third.

use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use chrono::{Months, NaiveDate};

use super::board::{Board, Detail, Forecast, Prepared, Rows, Status, Tile, Unit, Week};
use super::layout::{Kind, Layout};
use crate::outreach::ledger::{Ledger, Status as Sent};
use crate::service::Snapshot;

/// Rows kept of a list panel's query (the worklist of a big state has a customer per row).
pub const MAX_ROWS: usize = 10_000;

/// KPI tiles: label, column of `kpi_summary`, unit, whether a rise is good.
const TILES: [(&str, &str, Unit, bool); 7] = [
    ("Total AR", "total_ar", Unit::Money, false),
    ("Past due", "past_due_ar", Unit::Money, false),
    ("DSO", "dso", Unit::Days, false),
    ("Best DSO", "best_possible_dso", Unit::Days, false),
    ("ADD", "add", Unit::Days, false),
    ("CEI", "cei", Unit::Percent, true),
    ("PTP kept", "ptp_kept_rate", Unit::Percent, true),
];

/// Months of KPI history behind the tiles and the DSO trend.
pub const HISTORY_MONTHS: u32 = 12;

const KPI_SQL: &str = "SELECT * FROM kpi_summary";
const AGING_SQL: &str =
    "SELECT bucket, CAST(open_amount_rc AS DOUBLE) AS open_amount FROM aging_totals ORDER BY ord";
const SEGMENTS_SQL: &str = "SELECT r.segment, count(*) AS customers, \
     CAST(sum(r.open_amount_rc) AS DOUBLE) AS open_amount, \
     CAST(sum(r.past_due_amount_rc) AS DOUBLE) AS past_due, \
     CAST(sum(r.expected_at_risk) AS DOUBLE) AS expected_at_risk \
     FROM customer_risk r JOIN risk_segments g ON g.segment = r.segment \
     GROUP BY r.segment, g.ord ORDER BY g.ord";
const WORKLIST_SQL: &str = "SELECT w.rank, w.customer_id, w.name, w.segment, \
     CAST(w.probability AS DOUBLE) AS probability, \
     CAST(w.expected_at_risk AS DOUBLE) AS expected_at_risk, \
     CAST(w.past_due_amount_rc AS DOUBLE) AS past_due, w.max_days_past_due AS days, \
     w.next_action, w.collector_id AS collector, c.currency AS customer_currency \
     FROM worklist w LEFT JOIN customers c ON c.customer_id = w.customer_id ORDER BY w.rank";
const FORECAST_SQL: &str = "SELECT week_start, CAST(expected AS DOUBLE) AS expected, \
     CAST(low AS DOUBLE) AS low, CAST(high AS DOUBLE) AS high FROM cash_forecast ORDER BY week";
const ACCURACY_SQL: &str = "SELECT wape, wape_due_date, wape_average_delay, band_coverage \
     FROM forecast_accuracy";

/// Makes boards from snapshots; keeps the KPI history and the outreach ledger between them,
/// made again only when they may have changed.
pub struct Preparer {
    layout: Layout,
    /// The outreach ledger's folder, when the pipeline has a policy.
    ledger: Option<PathBuf>,
    history: Option<History>,
    outreach: Option<(std::time::SystemTime, u64, Rows)>,
    /// The last KPI row queried: snapshot, query, row.
    kpis: Option<(u64, String, HashMap<String, f64>)>,
    /// Whether a stale KPI history is made again now (else the panels go without it).
    make_history: bool,
}

/// The parts of a board, in the order they are made: the panels of the snapshot's own rows
/// (with the KPI history if it is still fresh), the panels that wait for the models' tables,
/// and the KPI history (a query per month, seconds at 10 M invoices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Quick,
    History,
    Models,
}

/// The KPI summary at the end of each month before the as-of date.
struct History {
    as_of: NaiveDate,
    generation: u64,
    made: std::time::Instant,
    /// (as-of date, `kpi_summary` row as column → value), oldest first, the as-of date's
    /// not included.
    points: Vec<(NaiveDate, HashMap<String, f64>)>,
    /// False for the stand-in of the first board, which is made again at once.
    made_now: bool,
}

/// How long a KPI history serves while the as-of date stays (late-recorded changes may
/// move the past).
const HISTORY_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl Preparer {
    pub fn new(layout: Layout, ledger: Option<PathBuf>) -> Preparer {
        Preparer {
            layout,
            ledger,
            history: None,
            outreach: None,
            make_history: false,
            kpis: None,
        }
    }

    /// The status line of `snapshot`.
    pub fn status(snapshot: &Snapshot) -> Status {
        Status {
            as_of: Some(snapshot.params.as_of),
            currency: snapshot.params.currency.clone(),
            sequence: snapshot.sequence,
            generation: snapshot.generation,
            refreshed_at: chrono::Local::now().format("%H:%M:%S").to_string(),
            files_applied: snapshot.health.files_applied,
            quarantined: snapshot.health.files_quarantined.len(),
            preparing: true,
        }
    }

    /// `board` with the panels of `phase` prepared from `snapshot`.
    pub async fn board(&mut self, snapshot: &Snapshot, phase: Phase, mut board: Board) -> Board {
        let panels: Vec<(usize, Kind, Option<String>)> = (self.layout.panels().into_iter())
            .enumerate()
            .map(|(id, (_, p))| (id, p.kind, p.sql.clone()))
            .collect();
        for (id, kind, sql) in panels {
            let needs_models = matches!(kind, Kind::Segments | Kind::Worklist | Kind::Forecast)
                || sql
                    .as_deref()
                    .is_some_and(|s| snapshot.engine.reads_derived(s));
            let has_history = matches!(kind, Kind::Kpis | Kind::DsoTrend);
            let now = match phase {
                Phase::Quick => !needs_models,
                Phase::History => has_history && !needs_models,
                Phase::Models => needs_models,
            };
            if !now {
                continue;
            }
            self.make_history = phase == Phase::History;
            let prepared = self.panel(snapshot, kind, sql.as_deref()).await;
            board.panels.insert(id, prepared);
        }
        board.status.preparing = phase == Phase::Quick;
        board
    }

    async fn panel(&mut self, snapshot: &Snapshot, kind: Kind, sql: Option<&str>) -> Prepared {
        let result = match kind {
            Kind::Kpis => self.tiles(snapshot, sql.unwrap_or(KPI_SQL)).await,
            Kind::DsoTrend => self.dso(snapshot).await,
            Kind::Aging => query(snapshot, sql.unwrap_or(AGING_SQL))
                .await
                .and_then(|rows| {
                    // A label and an amount: anything else would draw as empty bars.
                    if rows.columns.len() < 2 || !rows.numeric.get(1).copied().unwrap_or(false) {
                        return Err(format!(
                            "an aging panel's query returns a label and an amount (a number); this one returns {}",
                            rows.columns.join(", ")
                        ));
                    }
                    Ok(Prepared::Bars(
                        (rows.cells.iter().zip(&rows.numbers))
                            .map(|(c, n)| (c[0].clone(), if n[1].is_nan() { 0.0 } else { n[1] }))
                            .collect(),
                    ))
                }),
            Kind::Segments | Kind::Worklist => {
                let default = match kind {
                    Kind::Segments => SEGMENTS_SQL,
                    _ => WORKLIST_SQL,
                };
                let mut rows = query(snapshot, sql.unwrap_or(default)).await;
                if let Ok(rows) = &mut rows {
                    rows.note = scored_by_baseline(snapshot).await;
                }
                rows.map(Prepared::Rows)
            }
            Kind::Table => query(snapshot, sql.unwrap_or("SELECT 1"))
                .await
                .map(Prepared::Rows),
            Kind::Forecast => forecast(snapshot, sql.unwrap_or(FORECAST_SQL)).await,
            Kind::Health => Ok(Prepared::Rows(health(snapshot))),
            Kind::Outreach => self.outreach().map(Prepared::Rows),
        };
        result.unwrap_or_else(Prepared::Failed)
    }

    /// The KPI summary a month apart over [`HISTORY_MONTHS`], made again when the as-of date
    /// changed or after [`HISTORY_FOR`].
    async fn history(&mut self, snapshot: &Snapshot) -> &History {
        let as_of = snapshot.params.as_of;
        let fresh = self.history.as_ref().is_some_and(|h| {
            h.made_now
                && h.as_of == as_of
                && (h.generation == snapshot.generation || h.made.elapsed() < HISTORY_FOR)
        });
        if !fresh && !self.make_history {
            // Not now: the first board goes out without it.
            self.history = Some(History {
                as_of,
                generation: snapshot.generation,
                made: std::time::Instant::now(),
                points: Vec::new(),
                made_now: false,
            });
        } else if !fresh {
            let points = match stored_history(snapshot).await {
                Some(points) => points,
                None => {
                    let points = kpi_history(snapshot).await;
                    if let Some(stored) = snapshot.stored() {
                        stored
                            .write_document(HISTORY_DOCUMENT, &to_stored(&points))
                            .await;
                    }
                    points
                }
            };
            self.history = Some(History {
                as_of,
                generation: snapshot.generation,
                made: std::time::Instant::now(),
                points,
                made_now: true,
            });
        }
        self.history.as_ref().expect("made above")
    }

    /// The KPI row of `snapshot` by `sql`, queried once for all the phases and panels that
    /// show it.
    async fn kpis_now(
        &mut self,
        snapshot: &Snapshot,
        sql: &str,
    ) -> Result<HashMap<String, f64>, String> {
        if let Some((sequence, made_by, row)) = &self.kpis
            && (*sequence, made_by.as_str()) == (snapshot.sequence, sql)
        {
            return Ok(row.clone());
        }
        let (_, batches) = snapshot
            .query(sql, Some(1))
            .await
            .map_err(|e| e.to_string())?;
        let row = numbers_of_first_row(&batches).ok_or("the KPI query returned no row")?;
        self.kpis = Some((snapshot.sequence, sql.to_string(), row.clone()));
        Ok(row)
    }

    async fn tiles(&mut self, snapshot: &Snapshot, sql: &str) -> Result<Prepared, String> {
        let now = self.kpis_now(snapshot, sql).await?;
        let history = self.history(snapshot).await;
        let tiles = TILES
            .iter()
            .map(|&(label, column, unit, higher_is_better)| {
                let value = now.get(column).copied();
                let past: Vec<f64> = (history.points.iter())
                    .filter_map(|(_, row)| row.get(column).copied())
                    .collect();
                Tile {
                    label,
                    value,
                    unit,
                    previous: history
                        .points
                        .last()
                        .and_then(|(_, row)| row.get(column).copied()),
                    history: past.into_iter().chain(value).collect(),
                    higher_is_better,
                }
            })
            .collect();
        Ok(Prepared::Tiles(tiles))
    }

    async fn dso(&mut self, snapshot: &Snapshot) -> Result<Prepared, String> {
        let now = self.kpis_now(snapshot, KPI_SQL).await?.get("dso").copied();
        let as_of = snapshot.params.as_of;
        let history = self.history(snapshot).await;
        let mut points: Vec<(NaiveDate, f64)> = (history.points.iter())
            .filter_map(|(day, row)| Some((*day, *row.get("dso")?)))
            .collect();
        points.extend(now.map(|v| (as_of, v)));
        Ok(Prepared::Line(points))
    }

    /// The latest outreach messages, newest first, read again only when the ledger changed.
    fn outreach(&mut self) -> Result<Rows, String> {
        let Some(folder) = &self.ledger else {
            return Err(
                "nothing sent yet: no outreach ledger (`arstream outreach send`, or an `outreach` key in the pipeline)"
                    .into(),
            );
        };
        let file = folder.join("ledger.jsonl");
        let (modified, size) = match std::fs::metadata(&file) {
            Ok(m) => (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()),
            Err(_) => (std::time::UNIX_EPOCH, 0),
        };
        if let Some((m, s, rows)) = &self.outreach
            && (*m, *s) == (modified, size)
        {
            return Ok(rows.clone());
        }
        let ledger = Ledger::read(folder).map_err(|e| e.to_string())?;
        let rows = outreach_rows(ledger.messages().iter().rev().take(MAX_ROWS), None);
        self.outreach = Some((modified, size, rows.clone()));
        Ok(rows)
    }

    /// Everything about one customer: risk, open invoices, disputes, promises (kept, broken
    /// or open), the latest activities, outreach.
    pub async fn detail(
        ledger: Option<&std::path::Path>,
        snapshot: &Snapshot,
        customer_id: &str,
        name: &str,
    ) -> Detail {
        let id = customer_id.replace('\'', "''");
        let sections = [
            (
                "Risk",
                format!(
                    "SELECT segment, CAST(probability AS DOUBLE) AS probability, open_invoices, \
                     CAST(open_amount_rc AS DOUBLE) AS open_amount, \
                     CAST(past_due_amount_rc AS DOUBLE) AS past_due, reasons \
                     FROM customer_risk WHERE customer_id = '{id}'"
                ),
            ),
            (
                "Open invoices",
                format!(
                    "SELECT invoice_id, invoice_date, due_date, currency, \
                     CAST(open_amount AS DOUBLE) AS open_amount, days_past_due, bucket, \
                     in_dispute, promised_date FROM open_items \
                     WHERE customer_id = '{id}' AND open_amount > 0 ORDER BY due_date"
                ),
            ),
            (
                "Disputes",
                format!(
                    "SELECT dispute_id, invoice_id, opened_date, CAST(amount AS DOUBLE) AS amount, \
                     currency, reason, status, resolved_date FROM disputes \
                     WHERE customer_id = '{id}' ORDER BY opened_date DESC"
                ),
            ),
            (
                "Promises",
                format!(
                    "SELECT p.promise_id, p.invoice_id, p.created_date, p.promised_date, \
                     CAST(p.amount AS DOUBLE) AS amount, p.currency, p.collector_id, \
                     CASE WHEN r.promise_id IS NULL THEN 'open' \
                          WHEN r.kept THEN 'kept' ELSE 'broken' END AS outcome \
                     FROM promises p LEFT JOIN promise_results r ON r.promise_id = p.promise_id \
                     WHERE p.customer_id = '{id}' ORDER BY p.promised_date DESC"
                ),
            ),
            (
                "Activities",
                format!(
                    "SELECT activity_ts, collector_id, channel, outcome FROM activities \
                     WHERE customer_id = '{id}' ORDER BY activity_ts DESC LIMIT 50"
                ),
            ),
            (
                "Actions recorded",
                format!(
                    "SELECT recorded_at, recorded_by, action, id, invoice_id, outcome, \
                     CAST(amount AS DOUBLE) AS amount, promised_date, reason, status, team, note \
                     FROM actions_log WHERE customer_id = '{id}' ORDER BY recorded_at DESC LIMIT 50"
                ),
            ),
        ];
        let mut out = Vec::new();
        for (title, sql) in sections {
            let rows = query(snapshot, &sql)
                .await
                .unwrap_or_else(|e| failed_rows(&e));
            out.push((title.to_string(), rows));
        }
        let outreach = match ledger {
            Some(folder) => match Ledger::read(folder) {
                Ok(ledger) => outreach_rows(ledger.messages().iter().rev(), Some(customer_id)),
                Err(e) => failed_rows(&e.to_string()),
            },
            None => failed_rows("nothing sent yet: no outreach ledger"),
        };
        out.push(("Outreach".to_string(), outreach));
        Detail {
            customer_id: customer_id.to_string(),
            name: name.to_string(),
            sections: Some(out),
        }
    }
}

/// `day` the given number of months before (clamped to the month's end).
/// The KPI summary at the end of each of the [`HISTORY_MONTHS`] months before the as-of date.
async fn kpi_history(snapshot: &Snapshot) -> Vec<(NaiveDate, HashMap<String, f64>)> {
    let mut points = Vec::new();
    for months in (1..=HISTORY_MONTHS).rev() {
        let day = months_before(snapshot.params.as_of, months);
        let mut params = snapshot.params.clone();
        params.as_of = day;
        let Ok(engine) = snapshot.engine.at_as_of(&params) else {
            continue;
        };
        if let Ok((_, batches)) = engine.query_planned(KPI_SQL, Some(1)).await
            && let Some(row) = numbers_of_first_row(&batches)
        {
            points.push((day, row));
        }
    }
    points
}

/// The KPI history as stored beside the snapshot's model tables (it depends on the same
/// state, parameters and views): a query per month over the whole state, seconds at 10 M
/// invoices, made once per generation. A figure that is not a number is stored as null.
const HISTORY_DOCUMENT: &str = "dashboard_kpi_history";

type StoredPoints = Vec<(NaiveDate, std::collections::BTreeMap<String, Option<f64>>)>;

fn to_stored(points: &[(NaiveDate, HashMap<String, f64>)]) -> StoredPoints {
    (points.iter())
        .map(|(day, row)| {
            let row = (row.iter()).map(|(k, v)| (k.clone(), v.is_finite().then_some(*v)));
            (*day, row.collect())
        })
        .collect()
}

async fn stored_history(snapshot: &Snapshot) -> Option<Vec<(NaiveDate, HashMap<String, f64>)>> {
    let stored: StoredPoints = snapshot.stored()?.read_document(HISTORY_DOCUMENT).await?;
    let points = (stored.into_iter())
        .map(|(day, row)| {
            let row = (row.into_iter()).map(|(k, v)| (k, v.unwrap_or(f64::NAN)));
            (day, row.collect())
        })
        .collect();
    Some(points)
}

fn months_before(day: NaiveDate, months: u32) -> NaiveDate {
    day.checked_sub_months(Months::new(months)).unwrap_or(day)
}

/// The first row's numeric columns, by name.
fn numbers_of_first_row(batches: &[RecordBatch]) -> Option<HashMap<String, f64>> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let mut out = std::collections::HashMap::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let Some(values) = as_numbers(column)
            && values.is_valid(0)
        {
            out.insert(field.name().clone(), values.value(0));
        }
    }
    Some(out)
}

/// A numeric column as Float64 (`None` for other types).
fn as_numbers(column: &arrow::array::ArrayRef) -> Option<arrow::array::Float64Array> {
    let numeric = column.data_type().is_numeric();
    if !numeric {
        return None;
    }
    let cast = cast(column, &DataType::Float64).ok()?;
    Some(cast.as_primitive::<Float64Type>().clone())
}

/// A query's rows as text, at most [`MAX_ROWS`].
async fn query(snapshot: &Snapshot, sql: &str) -> Result<Rows, String> {
    let (schema, batches) = snapshot
        .query(sql, Some(1))
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows_of(&schema, &batches))
}

/// Record batches as [`Rows`]: numbers with thousands separators (two decimals, none for
/// whole-number columns), the rest as Arrow writes it; nulls empty.
pub fn rows_of(schema: &arrow::datatypes::Schema, batches: &[RecordBatch]) -> Rows {
    let numeric: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect();
    let whole: Vec<bool> = (schema.fields().iter())
        .map(|f| f.data_type().is_integer())
        .collect();
    let mut rows = Rows {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        numeric: numeric.clone(),
        ..Rows::default()
    };
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let options = FormatOptions::default().with_null("");
    'batches: for batch in batches {
        let numbers: Vec<Option<arrow::array::Float64Array>> =
            batch.columns().iter().map(as_numbers).collect();
        let formatters: Vec<Option<ArrayFormatter>> = (batch.columns().iter())
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for i in 0..batch.num_rows() {
            if rows.cells.len() == MAX_ROWS {
                break 'batches;
            }
            let mut cells = Vec::with_capacity(formatters.len());
            let mut values = Vec::with_capacity(formatters.len());
            for (c, formatter) in formatters.iter().enumerate() {
                match &numbers[c] {
                    Some(n) if n.is_valid(i) => {
                        let v = n.value(i);
                        cells.push(match whole[c] {
                            true => thousands(v, 0),
                            false => thousands(v, 2),
                        });
                        values.push(v);
                    }
                    _ => {
                        let text = formatter
                            .as_ref()
                            .map_or(String::new(), |f| f.value(i).to_string());
                        cells.push(text);
                        values.push(f64::NAN);
                    }
                }
            }
            rows.cells.push(cells);
            rows.numbers.push(values);
        }
    }
    if total > rows.cells.len() {
        rows.more = Some(total);
    }
    rows
}

/// 1234567.891 with 2 digits → "1,234,567.89".
pub fn thousands(v: f64, digits: usize) -> String {
    let text = format!("{:.digits$}", v.abs());
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    match v < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        true => format!("-{out}"),
        false => out,
    }
}

fn failed_rows(error: &str) -> Rows {
    Rows {
        columns: vec!["error".into()],
        numeric: vec![false],
        cells: vec![vec![error.to_string()]],
        numbers: vec![vec![f64::NAN]],
        more: None,
        note: None,
    }
}

/// A note when the baseline, not the risk model, scored the invoices (why is in
/// `invoice_risk.scored_by` and the log: too long for a panel's border).
async fn scored_by_baseline(snapshot: &Snapshot) -> Option<String> {
    let sql = format!(
        "SELECT scored_by FROM invoice_scores WHERE scored_by <> '{}' LIMIT 1",
        crate::models::risk::SCORED_BY_MODEL
    );
    let (_, batches) = snapshot.query(&sql, Some(1)).await.ok()?;
    batches.iter().find(|b| b.num_rows() > 0)?;
    Some("risk model not used: baseline scores".into())
}

async fn forecast(snapshot: &Snapshot, sql: &str) -> Result<Prepared, String> {
    let weeks = query(snapshot, sql).await?;
    let at = |name: &str| {
        weeks
            .column(name)
            .ok_or(format!("the forecast query has no column '{name}'"))
    };
    let (start, expected, low, high) =
        (at("week_start")?, at("expected")?, at("low")?, at("high")?);
    for column in [expected, low, high] {
        if !weeks.numeric[column] {
            return Err(format!(
                "the forecast query's '{}' must be a number",
                weeks.columns[column]
            ));
        }
    }
    let mut out = Forecast::default();
    for (cells, numbers) in weeks.cells.iter().zip(&weeks.numbers) {
        let Ok(day) = NaiveDate::parse_from_str(&cells[start], "%Y-%m-%d") else {
            return Err(format!(
                "the forecast query's week_start must be a date (YYYY-MM-DD), not '{}'",
                cells[start]
            ));
        };
        out.weeks.push(Week {
            start: day,
            expected: numbers[expected],
            low: numbers[low],
            high: numbers[high],
        });
    }
    if let Ok((_, batches)) = snapshot.query(ACCURACY_SQL, Some(1)).await
        && let Some(row) = numbers_of_first_row(&batches)
    {
        out.wape = row.get("wape").copied();
        out.wape_due_date = row.get("wape_due_date").copied();
        out.wape_average_delay = row.get("wape_average_delay").copied();
        out.band_coverage = row.get("band_coverage").copied();
    }
    Ok(Prepared::Forecast(out))
}

/// The feed's health as rows: the last file applied, the counts, each file quarantined.
fn health(snapshot: &Snapshot) -> Rows {
    let h = &snapshot.health;
    let mut cells = vec![
        vec![
            "last file".into(),
            h.last_applied.clone().unwrap_or_else(|| "none yet".into()),
        ],
        vec!["files applied".into(), h.files_applied.to_string()],
        vec!["quarantined".into(), h.files_quarantined.len().to_string()],
    ];
    let latest = h.last_change.values().max().cloned().unwrap_or_default();
    cells.push(vec!["last change".into(), latest]);
    for m in &h.missing_fx_rates {
        cells.push(vec![
            format!("no FX rate {}", m.currency),
            format!("{} invoice(s)", m.invoices),
        ]);
    }
    for q in &h.files_quarantined {
        cells.push(vec![
            format!("✗ {}", q.path),
            format!("[{}] {}", q.code, q.reason),
        ]);
    }
    let numbers = cells.iter().map(|_| vec![f64::NAN, f64::NAN]).collect();
    Rows {
        columns: vec!["".into(), "".into()],
        numeric: vec![false, false],
        cells,
        numbers,
        more: None,
        note: None,
    }
}

/// Outreach messages as rows: day, customer, channel, stage, status, to.
fn outreach_rows<'a>(
    entries: impl Iterator<Item = &'a crate::outreach::ledger::Entry>,
    customer: Option<&str>,
) -> Rows {
    let mut rows = Rows {
        columns: [
            "day",
            "customer_id",
            "channel",
            "stage",
            "status",
            "to",
            "invoices",
        ]
        .map(String::from)
        .to_vec(),
        numeric: vec![false, false, false, false, false, false, true],
        ..Rows::default()
    };
    for entry in entries.filter(|e| customer.is_none_or(|c| e.message.customer_id == c)) {
        if rows.cells.len() == MAX_ROWS {
            break;
        }
        let m = &entry.message;
        let status = match &entry.status {
            Sent::Pending { waiting: None } => "pending".to_string(),
            Sent::Pending { waiting: Some(w) } => format!("waiting: {w}"),
            Sent::Sent { via, .. } => format!("sent ({via})"),
            Sent::Failed { reason } => format!("FAILED: {reason}"),
            other => format!("{other:?}").to_lowercase(),
        };
        rows.cells.push(vec![
            m.day.to_string(),
            m.customer_id.clone(),
            m.channel.name().to_string(),
            m.stage.clone(),
            status,
            m.to.clone(),
            m.items.len().to_string(),
        ]);
        rows.numbers.push(vec![
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            m.items.len() as f64,
        ]);
    }
    rows
}

/// Keep the previous snapshot's board for the panels not yet prepared for this one.
pub fn carried(previous: &Board, status: Status) -> Board {
    Board {
        status,
        panels: previous.panels.clone(),
    }
}
