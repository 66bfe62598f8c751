//! The facts the models read from an engine, one reader per fact: each owns its SQL, with the
//! as-of date bound as the parameter `$as_of` (a join with the one-row `params` costs a pass
//! over every row at 10 million invoices), and reads its columns by name, so a column added
//! to or moved in a query cannot shift the others. `super::history` assembles them.
//!
//! Each join has its small side first (DataFusion builds its hash table from the left side,
//! and has no row counts here to swap them by).

use arrow::array::{Array, AsArray, BooleanArray, Date32Array, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type, Int64Type};

use crate::dates::Day;
use crate::engine::{Engine, EngineError};

/// A fact's query, named for its errors.
#[derive(Debug, Clone, Copy)]
pub struct Fact {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Whose facts are read: every customer's, or only some (the customers a refresh touched,
/// rescored between retrainings), as an SQL list of quoted ids.
#[derive(Debug, Clone, Copy)]
pub enum Customers<'a> {
    All,
    Only(&'a str),
}

impl Customers<'_> {
    /// `ids` as the SQL list [`Customers::Only`] takes.
    pub fn list<'i>(ids: impl IntoIterator<Item = &'i str>) -> String {
        let quoted = ids
            .into_iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")));
        quoted.collect::<Vec<_>>().join(", ")
    }
}

impl Fact {
    /// Its rows as of day `as_of`.
    pub async fn read(self, engine: &Engine, as_of: Day) -> Result<Vec<RecordBatch>, EngineError> {
        self.read_for(engine, as_of, Customers::All).await
    }

    /// Its rows as of day `as_of`, of `customers` only.
    pub async fn read_for(
        self,
        engine: &Engine,
        as_of: Day,
        customers: Customers<'_>,
    ) -> Result<Vec<RecordBatch>, EngineError> {
        let started = std::time::Instant::now();
        let rows = engine.query_as_of(&self.sql_for(customers), as_of).await;
        let took_s = started.elapsed().as_secs_f64();
        tracing::trace!(fact = self.name, took_s, "fact read");
        rows
    }

    /// Its SQL with each `{customers}` (or `{customers:alias}`, for `alias.customer_id`)
    /// made the condition that a row is of `customers`: `TRUE` for all of them.
    pub fn sql_for(self, customers: Customers<'_>) -> std::borrow::Cow<'static, str> {
        const MARK: &str = "{customers";
        if !self.sql.contains(MARK) {
            return self.sql.into();
        }
        let (mut out, mut rest) = (String::new(), self.sql);
        while let Some(at) = rest.find(MARK) {
            out.push_str(&rest[..at]);
            let end = at + rest[at..].find('}').expect("a closed mark");
            let alias = rest[at + MARK.len()..end].strip_prefix(':');
            match customers {
                Customers::All => out.push_str("TRUE"),
                Customers::Only(list) => {
                    if let Some(alias) = alias {
                        out.push_str(alias);
                        out.push('.');
                    }
                    out.push_str(&format!("customer_id IN ({list})"));
                }
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out.into()
    }

    /// The columns of one batch of its rows, by name.
    pub fn columns(self, batch: &RecordBatch) -> Columns<'_> {
        Columns { fact: self, batch }
    }
}

/// The invoices with their paid dates from `invoice_outcomes` (whatever the queries folder
/// makes it).
pub const INVOICES: Fact = Fact {
    name: "invoices (invoice_outcomes)",
    sql: "SELECT o.invoice_id, o.customer_id, o.invoice_date, o.due_date, \
          CAST(o.amount AS DOUBLE) AS amount, o.paid_date, i.currency \
          FROM invoice_outcomes o JOIN invoices i ON i.invoice_id = o.invoice_id \
          WHERE {customers:o}",
};

/// The same invoices without their paid dates, which the history computes from
/// [`SETTLEMENTS`] as `invoice_outcomes` defines them, in a fraction of the time on a big
/// state (its window over every settlement takes most of a minute at 10 million invoices).
/// The void rule is `invoice_outcomes`' (`status <> 'void'`).
pub const INVOICES_UNPAID: Fact = Fact {
    name: "invoices",
    sql: "SELECT invoice_id, customer_id, invoice_date, due_date, \
          CAST(amount AS DOUBLE) AS amount, CAST(NULL AS DATE) AS paid_date, i.currency \
          FROM invoices i WHERE invoice_date <= $as_of AND status <> 'void' AND {customers:i}",
};

/// Payments and adjustments on an invoice dated up to the as-of date, in cents, with the day
/// one that was changed after it was made (cash applied to its invoice days after it came) was
/// first recorded on its invoice. One made on its invoice is taken as known on its date.
pub const SETTLEMENTS: Fact = Fact {
    name: "settlements",
    sql: "WITH updated AS ( \
              SELECT DISTINCT payment_id FROM payments_changes \
              WHERE _op = 'u' AND {customers}), \
          applied AS ( \
              SELECT c.payment_id, c.invoice_id, min(CAST(c._ts AS DATE)) AS applied_on \
              FROM updated u JOIN payments_changes c ON c.payment_id = u.payment_id \
              WHERE c.invoice_id IS NOT NULL AND {customers:c} \
              GROUP BY c.payment_id, c.invoice_id), \
          adjusted AS ( \
              SELECT DISTINCT adjustment_id FROM adjustments_changes \
              WHERE _op = 'u' AND {customers}), \
          credited AS ( \
              SELECT c.adjustment_id, c.invoice_id, min(CAST(c._ts AS DATE)) AS applied_on \
              FROM adjusted u JOIN adjustments_changes c ON c.adjustment_id = u.adjustment_id \
              WHERE c.invoice_id IS NOT NULL AND {customers:c} \
              GROUP BY c.adjustment_id, c.invoice_id) \
          SELECT x.invoice_id, x.payment_date AS settled_on, \
                 CAST(x.amount * 100 AS BIGINT) AS cents, true AS cash, a.applied_on \
          FROM applied a RIGHT JOIN payments x \
              ON a.payment_id = x.payment_id AND a.invoice_id = x.invoice_id \
          WHERE x.invoice_id IS NOT NULL AND x.payment_date <= $as_of AND {customers:x} \
          UNION ALL SELECT x.invoice_id, x.adjustment_date AS settled_on, \
                 CAST(x.amount * 100 AS BIGINT) AS cents, false AS cash, a.applied_on \
          FROM credited a RIGHT JOIN adjustments x \
              ON a.adjustment_id = x.adjustment_id AND a.invoice_id = x.invoice_id \
          WHERE x.invoice_id IS NOT NULL AND x.adjustment_date <= $as_of AND {customers:x}",
};

/// The invoices voided or deleted by the as-of date, with the day that was recorded and their
/// last version before (a delete carries only the key): they were open until then, and
/// count in their customer's record of the days before.
pub const GONE: Fact = Fact {
    name: "voided or deleted invoices",
    sql: "WITH gone AS ( \
              SELECT invoice_id, min(CAST(_ts AS DATE)) AS gone_on \
              FROM invoices_changes \
              WHERE (_op = 'd' OR status = 'void') AND CAST(_ts AS DATE) <= $as_of \
              GROUP BY invoice_id), \
          versions AS ( \
              SELECT c.invoice_id, c.customer_id, c.invoice_date, c.due_date, \
                     CAST(c.amount AS DOUBLE) AS amount, c.currency, g.gone_on, \
                     row_number() OVER (PARTITION BY c.invoice_id \
                                        ORDER BY c._ts DESC, c._seq DESC) AS n \
              FROM gone g JOIN invoices_changes c ON c.invoice_id = g.invoice_id \
              WHERE c._op <> 'd' AND (c.status IS NULL OR c.status <> 'void') \
                AND {customers:c}) \
          SELECT invoice_id, customer_id, invoice_date, due_date, amount, \
                 CAST(NULL AS DATE) AS paid_date, currency, gone_on \
          FROM versions WHERE n = 1",
};

/// Every amount of the invoices whose amount was changed, with the day it was recorded, in
/// the order recorded.
pub const CORRECTIONS: Fact = Fact {
    name: "amount corrections",
    sql: "WITH changed AS ( \
              SELECT invoice_id FROM invoices_changes WHERE _op = 'u' AND {customers} \
              GROUP BY invoice_id) \
          SELECT c.invoice_id, CAST(c._ts AS DATE) AS recorded_on, \
                 CAST(c.amount AS DOUBLE) AS amount \
          FROM changed u JOIN invoices_changes c ON c.invoice_id = u.invoice_id \
          WHERE c._op <> 'd' AND c.amount IS NOT NULL AND CAST(c._ts AS DATE) <= $as_of \
            AND {customers:c} \
          ORDER BY c.invoice_id, c._ts, c._seq",
};

/// Disputes opened by the as-of date; closed on their resolved date unless still open (the
/// rule of `open_items.in_dispute`: a dispute is open while its status is).
pub const DISPUTES: Fact = Fact {
    name: "disputes",
    sql: "SELECT customer_id, invoice_id, opened_date, \
          CASE WHEN status = 'open' THEN NULL ELSE resolved_date END AS closed_date \
          FROM disputes WHERE opened_date <= $as_of AND {customers}",
};

/// Promises whose outcome is known (`promise_results`).
pub const PROMISES: Fact = Fact {
    name: "promise outcomes (promise_results)",
    sql: "SELECT customer_id, deadline, kept FROM promise_results WHERE {customers}",
};

/// Every promise made by the as-of date.
pub const PLEDGES: Fact = Fact {
    name: "promises",
    sql: "SELECT customer_id, invoice_id, created_date, promised_date, \
          CAST(amount AS DOUBLE) AS amount FROM promises \
          WHERE created_date <= $as_of AND {customers}",
};

/// The rates dated by the as-of date, of every currency but the one they are quoted in.
pub const RATES: Fact = Fact {
    name: "fx rates",
    sql: "SELECT f.currency, f.rate_date, CAST(f.rate AS DOUBLE) AS rate FROM fx_rates f \
          CROSS JOIN params p WHERE f.rate_date <= $as_of AND f.currency <> p.rates_currency",
};

/// The reporting currency, the promise grace days, the rates' currency and the as-of date.
pub const PARAMS: Fact = Fact {
    name: "params",
    sql: "SELECT currency, grace_days, rates_currency, as_of FROM params",
};

/// Credit limits as recorded (`_ts`: when the change was made), the current one for a
/// customer whose changes are not in the feed's log (no `from_date`).
pub const CREDIT_LIMITS: Fact = Fact {
    name: "credit limits",
    sql: "SELECT customer_id, CAST(_ts AS DATE) AS from_date, \
          CAST(credit_limit AS DOUBLE) AS credit_limit FROM customers_changes \
          WHERE CAST(_ts AS DATE) <= $as_of AND credit_limit IS NOT NULL AND {customers} \
          UNION ALL SELECT c.customer_id, CAST(NULL AS DATE) AS from_date, \
          CAST(c.credit_limit AS DOUBLE) AS credit_limit \
          FROM customers c WHERE c.credit_limit IS NOT NULL AND {customers:c}",
};

/// One batch of a fact's rows, its columns read by name as the type the history keeps.
pub struct Columns<'a> {
    fact: Fact,
    batch: &'a RecordBatch,
}

impl Columns<'_> {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether the fact has column `name` (the voided invoices have `gone_on`, the others
    /// not).
    pub fn has(&self, name: &str) -> bool {
        self.batch.schema().index_of(name).is_ok()
    }

    fn cast(&self, name: &str, to: &DataType) -> Result<arrow::array::ArrayRef, EngineError> {
        let column = self.batch.column_by_name(name).ok_or_else(|| {
            EngineError::Queries(format!("{} has no column '{name}'", self.fact.name))
        })?;
        Ok(cast(column, to)?)
    }

    pub fn strings(&self, name: &str) -> Result<Strings, EngineError> {
        Ok(Strings(self.cast(name, &DataType::Utf8)?))
    }

    pub fn dates(&self, name: &str) -> Result<Date32Array, EngineError> {
        Ok(self
            .cast(name, &DataType::Date32)?
            .as_primitive::<Date32Type>()
            .clone())
    }

    pub fn floats(&self, name: &str) -> Result<Float64Array, EngineError> {
        Ok(self
            .cast(name, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone())
    }

    pub fn ints(&self, name: &str) -> Result<arrow::array::Int32Array, EngineError> {
        Ok(self
            .cast(name, &DataType::Int32)?
            .as_primitive::<Int32Type>()
            .clone())
    }

    pub fn bigints(&self, name: &str) -> Result<arrow::array::Int64Array, EngineError> {
        Ok(self
            .cast(name, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone())
    }

    pub fn bools(&self, name: &str) -> Result<BooleanArray, EngineError> {
        Ok(self.cast(name, &DataType::Boolean)?.as_boolean().clone())
    }
}

/// A column as text, whatever string type the engine gave it.
pub struct Strings(arrow::array::ArrayRef);

impl Strings {
    pub fn value(&self, row: usize) -> Option<&str> {
        let a = self.0.as_string::<i32>();
        a.is_valid(row).then(|| a.value(row))
    }
}

/// A date column's value at `row`, `None` for null.
pub fn date_at(column: &Date32Array, row: usize) -> Option<Day> {
    column.is_valid(row).then(|| column.value(row))
}

/// A number column's value at `row`, `None` for null.
pub fn float_at(column: &Float64Array, row: usize) -> Option<f64> {
    column.is_valid(row).then(|| column.value(row))
}
