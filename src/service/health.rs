//! Feed health: what has been applied, what was quarantined and why, what could not be
//! listed, rows per table, the last change per entity, and the currencies without a rate.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::feed::contract::Entity;
use crate::state::State;

/// The health of a state and its feed (`arstream status --format json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub feed: String,
    pub state: String,
    pub generation: u64,
    pub files_applied: usize,
    /// The feed file applied last, if any.
    pub last_applied: Option<String>,
    pub files_quarantined: Vec<QuarantineLine>,
    /// Files applied whose every change was older than (or the same as) what the state held
    /// for its key, by `_seq`: they changed nothing.
    pub files_changing_nothing: Vec<String>,
    /// Entity → rows of its current state.
    pub tables: BTreeMap<String, usize>,
    /// Entity → latest `_ts` applied (RFC 3339).
    pub last_change: BTreeMap<String, String>,
    /// Currencies of open invoices with no FX rate at the KPI as-of date: their amounts are
    /// left out of reporting-currency totals.
    pub missing_fx_rates: Vec<MissingRate>,
    /// Newer checkpoints found damaged and skipped when the state was loaded (path and why).
    pub damaged_checkpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingRate {
    pub currency: String,
    pub invoices: i64,
    pub as_of: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineLine {
    pub path: String,
    pub code: String,
    pub reason: String,
}

impl Health {
    /// The health of `state`, read from its checkpoint and tables (no missing rates: see
    /// [`Health::with_missing_rates`]).
    pub fn of(feed: &str, state: &State) -> Health {
        let cp = state.checkpoint();
        let time = |t: &chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        Health {
            feed: feed.to_string(),
            state: state.location().url.to_string(),
            generation: cp.generation,
            files_applied: cp.applied.len(),
            last_applied: cp.applied.last().map(|a| a.path.clone()),
            files_quarantined: (cp.quarantined.iter())
                .map(|q| QuarantineLine {
                    path: q.path.clone(),
                    code: q.code.to_string(),
                    reason: q.reason.clone(),
                })
                .collect(),
            files_changing_nothing: (cp.applied.iter())
                .filter(|a| a.all_stale())
                .map(|a| a.path.clone())
                .collect(),
            tables: (Entity::ALL.iter())
                .map(|e| (e.name().to_string(), state.table(*e).live_rows()))
                .collect(),
            last_change: (cp.last_change.iter())
                .map(|(k, v)| (k.clone(), time(v)))
                .collect(),
            missing_fx_rates: Vec::new(),
            damaged_checkpoints: state.damaged_checkpoints().to_vec(),
        }
    }

    /// Add the currencies without a rate at the engine's as-of date (`missing_fx_rates`).
    pub async fn with_missing_rates(
        mut self,
        engine: &Engine,
        as_of: chrono::NaiveDate,
    ) -> Result<Health, EngineError> {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let (_, batches) = engine
            .query_planned(
                "SELECT currency, CAST(invoices AS BIGINT) AS invoices FROM missing_fx_rates",
                None,
            )
            .await?;
        for b in batches {
            let currencies = b.column(0).as_string::<i32>();
            let counts = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                self.missing_fx_rates.push(MissingRate {
                    currency: currencies.value(i).to_string(),
                    invoices: counts.value(i),
                    as_of: as_of.to_string(),
                });
            }
        }
        Ok(self)
    }
}
