//! The model tables of a state, stored in its folder (`models/`, see [`crate::state::stored`]),
//! so that a command on a state already modelled at the same as-of date (by the service, or
//! by an earlier command) reads them instead of reading the history, training, scoring,
//! assigning, forecasting and backtesting again: at 10 million invoices, most of a minute.
//! Their key adds to the generation all the models depend on: the KPI parameters with the
//! as-of date, the risk options and every view's plain definition.

use crate::engine::Engine;
use crate::engine::params::KpiParams;
use crate::models::risk::RiskOptions;
use crate::state::State;
use crate::state::stored::StoredTables;

pub use crate::state::stored::Stored;

/// The manifest's name for the rows the risk model was trained on (0: the baseline scored).
pub const TRAINED_ROWS: &str = "trained_rows";

/// Where `engine`'s model tables over `state` are stored; `None` while the state holds
/// changes not checkpointed yet.
pub fn of(
    state: &State,
    engine: &Engine,
    params: &KpiParams,
    options: RiskOptions,
) -> Option<StoredModels> {
    let made_of = format!(
        "{params:?}; {options:?}; views {:016x}",
        engine.definitions_fingerprint()
    );
    StoredTables::of(state, "models", &made_of)
}

/// The model tables' store.
pub type StoredModels = StoredTables;
