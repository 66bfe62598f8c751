//! The KPI summary of a refresh as a typed struct, for the consumers that show it (the refresh
//! line, the dashboard) without running SQL themselves. The `kpi_summary` view stays the
//! definition; a column a user's view leaves out is `None` here.

use serde::{Deserialize, Serialize};

use crate::engine::EngineError;

/// One row of `kpi_summary`: amounts in the reporting currency, days, and ratios (CEI in %).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KpiSummary {
    pub as_of: Option<chrono::NaiveDate>,
    pub window_days: Option<i32>,
    pub currency: Option<String>,
    pub total_ar: Option<f64>,
    pub current_ar: Option<f64>,
    pub past_due_ar: Option<f64>,
    pub unapplied_cash: Option<f64>,
    pub credit_sales: Option<f64>,
    pub dso: Option<f64>,
    pub best_possible_dso: Option<f64>,
    pub add: Option<f64>,
    pub add_weighted: Option<f64>,
    pub countback_dso: Option<f64>,
    pub cei: Option<f64>,
    pub bad_debt_ratio: Option<f64>,
    pub recovery_rate: Option<f64>,
    pub ptp_kept_rate: Option<f64>,
    pub dispute_resolution_days: Option<f64>,
    pub dispute_resolution_days_median: Option<f64>,
    pub cash_forecast_wape: Option<f64>,
    pub unconverted_invoices: Option<i64>,
}

impl KpiSummary {
    /// The query whose first row this is.
    pub const QUERY: &str = "SELECT * FROM kpi_summary";

    /// The summary in the first row of `batches`, the result of [`KpiSummary::QUERY`].
    pub fn from_rows(batches: &[arrow::array::RecordBatch]) -> Result<KpiSummary, EngineError> {
        let rows = crate::engine::rows_as_json(batches)?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(KpiSummary::default());
        };
        // Decimals arrive as numbers or strings depending on their size: take both.
        let numbers: serde_json::Map<String, serde_json::Value> = (row.into_iter())
            .map(|(k, v)| match &v {
                serde_json::Value::String(s) if k != "currency" && k != "as_of" => {
                    let n = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64);
                    (k, n.map_or(v, serde_json::Value::Number))
                }
                _ => (k, v),
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(numbers))
            .map_err(|e| EngineError::Queries(format!("kpi_summary: {e}")))
    }
}
