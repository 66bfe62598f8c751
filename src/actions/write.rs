//! Writing checked actions into the actions feed: one Parquet file per entity per command,
//! in the change-feed contract, with who recorded each row, from where, and the note as
//! extra columns (`recorded_by`, `recorded_via`, `note`, `action`). A file appears whole or
//! not at all (written aside, then moved in, never over another), so the state applies each
//! once, whatever stops the command.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use super::ActionError;
use super::check::{Recorded, Row};
use crate::store::Location;

/// Who recorded a batch of actions, from where, and when.
#[derive(Debug, Clone)]
pub struct RecordedBy {
    /// The collector's id (`--as`, `ARSTREAM_USER`).
    pub who: String,
    /// The command or screen it came from (`act promise`, `act --file x.jsonl`, `dashboard`).
    pub via: String,
    pub at: DateTime<Utc>,
}

/// Write `actions` into the actions feed: one file per entity, each named `name`. Returns
/// the files written (relative to the actions feed).
pub async fn write(
    actions: &Location,
    recorded: &[Recorded],
    by: &RecordedBy,
    name: &str,
) -> Result<Vec<String>, ActionError> {
    let mut by_entity: BTreeMap<&'static str, Vec<(&Recorded, &Row)>> = BTreeMap::new();
    for action in recorded {
        for row in &action.rows {
            by_entity
                .entry(entity_of(row))
                .or_default()
                .push((action, row));
        }
    }
    let mut written = Vec::new();
    for (entity, rows) in by_entity {
        let batch = batch_of(entity, &rows, by)?;
        let bytes = crate::parquet_io::encode(&batch.schema(), &[batch])
            .map_err(|e| ActionError::Encode(e.to_string()))?;
        let relative = format!("{entity}/date={}/{name}", by.at.format("%Y-%m-%d"));
        let path = actions.child(&relative);
        crate::store::put_durable(actions, &path, bytes, true)
            .await
            .map_err(|source| ActionError::Write {
                url: actions.url_of(&relative).to_string(),
                source,
            })?;
        written.push(relative);
    }
    Ok(written)
}

fn entity_of(row: &Row) -> &'static str {
    match row {
        Row::Activity { .. } => "activities",
        Row::Promise { .. } => "promises",
        Row::Dispute { .. } => "disputes",
    }
}

fn text(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn batch_of(
    entity: &str,
    rows: &[(&Recorded, &Row)],
    by: &RecordedBy,
) -> Result<RecordBatch, ActionError> {
    let micros = by.at.timestamp_micros();
    let n = rows.len();
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let ts = || -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![micros; n]).with_timezone("UTC"))
    };
    let day = |d: chrono::NaiveDate| crate::dates::days(d);
    let money = |values: Vec<i128>| -> Result<ArrayRef, ActionError> {
        let array = Decimal128Array::from(values).with_precision_and_scale(18, 2);
        Ok(Arc::new(
            array.map_err(|e| ActionError::Encode(e.to_string()))?,
        ))
    };
    // A change of an existing key (a dispute closed) comes after its last one.
    let seqs: Vec<i64> = (rows.iter())
        .map(|(_, row)| match row {
            Row::Dispute {
                after_seq: Some(after),
                ..
            } => micros.max(after + 1),
            _ => micros,
        })
        .collect();
    let ops = (rows.iter()).map(|(_, row)| match row {
        Row::Dispute {
            after_seq: Some(_), ..
        } => Some("u".to_string()),
        _ => Some("c".to_string()),
    });
    let mut fields = vec![
        Field::new("_op", DataType::Utf8, false),
        Field::new("_seq", DataType::Int64, false),
        Field::new("_ts", utc(), false),
    ];
    let mut columns: Vec<ArrayRef> = vec![text(ops), Arc::new(Int64Array::from(seqs)), ts()];
    let mut add = |name: &str, data_type: DataType, column: ArrayRef| {
        fields.push(Field::new(name, data_type, true));
        columns.push(column);
    };
    let pick = |f: &dyn Fn(&Row) -> Option<String>| text(rows.iter().map(|(_, r)| f(r)));
    match entity {
        "activities" => {
            let get = |f: fn(&Row) -> Option<String>| pick(&f);
            add(
                "activity_id",
                DataType::Utf8,
                get(|r| match r {
                    Row::Activity { id, .. } => Some(id.clone()),
                    _ => None,
                }),
            );
            add(
                "customer_id",
                DataType::Utf8,
                get(|r| match r {
                    Row::Activity { customer_id, .. } => Some(customer_id.clone()),
                    _ => None,
                }),
            );
            add(
                "collector_id",
                DataType::Utf8,
                text(rows.iter().map(|_| Some(by.who.clone()))),
            );
            let at = (rows.iter()).map(|(_, r)| match r {
                Row::Activity { at, .. } => at.timestamp_micros(),
                _ => micros,
            });
            let at = TimestampMicrosecondArray::from_iter_values(at).with_timezone("UTC");
            add("activity_ts", utc(), Arc::new(at));
            add(
                "channel",
                DataType::Utf8,
                get(|r| match r {
                    Row::Activity { channel, .. } => channel.map(str::to_string),
                    _ => None,
                }),
            );
            add(
                "outcome",
                DataType::Utf8,
                get(|r| match r {
                    Row::Activity { outcome, .. } => Some(outcome.to_string()),
                    _ => None,
                }),
            );
            let until = (rows.iter()).map(|(_, r)| match r {
                Row::Activity { hold_until, .. } => hold_until.map(day),
                _ => None,
            });
            add(
                "hold_until",
                DataType::Date32,
                Arc::new(Date32Array::from_iter(until)),
            );
        }
        "promises" => {
            let mut ids = Vec::new();
            let (mut customers, mut invoices, mut created, mut promised, mut cents, mut currencies) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for (_, row) in rows {
                if let Row::Promise {
                    id,
                    customer_id,
                    invoice_id,
                    created: c,
                    promised: p,
                    cents: a,
                    currency,
                } = row
                {
                    ids.push(Some(id.clone()));
                    customers.push(Some(customer_id.clone()));
                    invoices.push(invoice_id.clone());
                    created.push(day(*c));
                    promised.push(day(*p));
                    cents.push(*a);
                    currencies.push(Some(currency.clone()));
                }
            }
            add("promise_id", DataType::Utf8, text(ids));
            add("customer_id", DataType::Utf8, text(customers));
            add("invoice_id", DataType::Utf8, text(invoices));
            add(
                "created_date",
                DataType::Date32,
                Arc::new(Date32Array::from(created)),
            );
            add(
                "promised_date",
                DataType::Date32,
                Arc::new(Date32Array::from(promised)),
            );
            add("amount", DataType::Decimal128(18, 2), money(cents)?);
            add("currency", DataType::Utf8, text(currencies));
            add(
                "collector_id",
                DataType::Utf8,
                text(rows.iter().map(|_| Some(by.who.clone()))),
            );
        }
        _ => {
            let (mut ids, mut invoices, mut customers, mut opened, mut cents) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut currencies, mut reasons, mut statuses, mut resolved, mut teams) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (_, row) in rows {
                if let Row::Dispute {
                    id,
                    invoice_id,
                    customer_id,
                    opened: o,
                    cents: a,
                    currency,
                    reason,
                    status,
                    resolved: r,
                    team,
                    ..
                } = row
                {
                    ids.push(Some(id.clone()));
                    invoices.push(Some(invoice_id.clone()));
                    customers.push(Some(customer_id.clone()));
                    opened.push(day(*o));
                    cents.push(*a);
                    currencies.push(Some(currency.clone()));
                    reasons.push(Some(reason.clone()));
                    statuses.push(Some(status.to_string()));
                    resolved.push(r.map(day));
                    teams.push(team.clone());
                }
            }
            add("dispute_id", DataType::Utf8, text(ids));
            add("invoice_id", DataType::Utf8, text(invoices));
            add("customer_id", DataType::Utf8, text(customers));
            add(
                "opened_date",
                DataType::Date32,
                Arc::new(Date32Array::from(opened)),
            );
            add("amount", DataType::Decimal128(18, 2), money(cents)?);
            add("currency", DataType::Utf8, text(currencies));
            add("reason", DataType::Utf8, text(reasons));
            add("status", DataType::Utf8, text(statuses));
            add(
                "resolved_date",
                DataType::Date32,
                Arc::new(Date32Array::from(resolved)),
            );
            add("team", DataType::Utf8, text(teams));
        }
    }
    add(
        "action",
        DataType::Utf8,
        text(rows.iter().map(|(a, _)| Some(a.action.name().to_string()))),
    );
    add(
        "note",
        DataType::Utf8,
        text(
            rows.iter()
                .map(|(a, _)| a.action.note().map(str::to_string)),
        ),
    );
    add(
        "recorded_by",
        DataType::Utf8,
        text(rows.iter().map(|_| Some(by.who.clone()))),
    );
    add(
        "recorded_via",
        DataType::Utf8,
        text(rows.iter().map(|_| Some(by.via.clone()))),
    );
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, columns).map_err(|e| ActionError::Encode(e.to_string()))
}
