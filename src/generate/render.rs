//! Turning simulated changes into Arrow batches in the contract's schema.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};

use super::model::{Collector, Customer};
use super::simulate::{Event, Op, Row};
use crate::feed::contract::{Entity, Kind};

enum Column {
    Text(StringBuilder),
    Int32(Int32Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder),
}

impl Column {
    fn for_kind(kind: Kind) -> Column {
        match kind {
            Kind::Text | Kind::Currency => Column::Text(StringBuilder::new()),
            Kind::Int32 => Column::Int32(Int32Builder::new()),
            Kind::Date => Column::Date(Date32Builder::new()),
            Kind::Timestamp => {
                Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            Kind::Money => Column::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(18, 2)
                    .expect("valid decimal"),
            ),
            Kind::Rate => Column::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(18, 8)
                    .expect("valid decimal"),
            ),
        }
    }

    fn null(&mut self) {
        match self {
            Column::Text(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b) => b.append_null(),
            Column::Decimal(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Text(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
            Column::Decimal(b) => Arc::new(b.finish()),
        }
    }
}

/// Builds one entity's batch a row at a time, values given in contract column order.
pub struct BatchBuilder {
    entity: Entity,
    ops: StringBuilder,
    seqs: Int64Builder,
    ts: TimestampMicrosecondBuilder,
    columns: Vec<Column>,
    next: usize,
}

impl BatchBuilder {
    pub fn new(entity: Entity) -> Self {
        BatchBuilder {
            entity,
            ops: StringBuilder::new(),
            seqs: Int64Builder::new(),
            ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            columns: entity
                .columns()
                .iter()
                .map(|c| Column::for_kind(c.kind))
                .collect(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start a row; the previous row's unset columns become null.
    pub fn row(&mut self, op: Op, seq: i64, ts: i64) -> &mut Self {
        self.fill_nulls();
        self.ops.append_value(op.code());
        self.seqs.append_value(seq);
        self.ts.append_value(ts);
        self.next = 0;
        self
    }

    fn fill_nulls(&mut self) {
        if self.seqs.is_empty() {
            return;
        }
        while self.next < self.columns.len() {
            self.columns[self.next].null();
            self.next += 1;
        }
    }

    fn column(&mut self) -> &mut Column {
        let i = self.next;
        self.next += 1;
        &mut self.columns[i]
    }

    pub fn text(&mut self, v: Option<&str>) -> &mut Self {
        match (self.column(), v) {
            (Column::Text(b), Some(v)) => b.append_value(v),
            (c, _) => c.null(),
        }
        self
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        if let Column::Int32(b) = self.column() {
            b.append_value(v);
        }
        self
    }

    pub fn date(&mut self, v: Option<i32>) -> &mut Self {
        match (self.column(), v) {
            (Column::Date(b), Some(v)) => b.append_value(v),
            (c, _) => c.null(),
        }
        self
    }

    pub fn timestamp(&mut self, v: i64) -> &mut Self {
        if let Column::Timestamp(b) = self.column() {
            b.append_value(v);
        }
        self
    }

    /// A money amount in cents (or a rate in 1e-8 units: the scale is the column's).
    pub fn decimal(&mut self, v: i128) -> &mut Self {
        if let Column::Decimal(b) = self.column() {
            b.append_value(v);
        }
        self
    }

    pub fn finish(mut self) -> RecordBatch {
        self.fill_nulls();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.ops.finish()),
            Arc::new(self.seqs.finish()),
            Arc::new(self.ts.finish()),
        ];
        arrays.extend(self.columns.iter_mut().map(Column::finish));
        // A feed file's `_seq` is an Int64, as most sources number changes; the state widens
        // it (contract::SEQ_TYPE).
        let schema = self.entity.change_schema();
        let mut fields: Vec<arrow::datatypes::FieldRef> = schema.fields().to_vec();
        fields[1] = Arc::new(arrow::datatypes::Field::new(
            crate::feed::contract::SEQ,
            arrow::datatypes::DataType::Int64,
            false,
        ));
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        RecordBatch::try_new(schema, arrays).expect("builder follows the contract")
    }
}

/// Everything rendering needs to know besides the events.
pub struct Directory<'a> {
    pub customers: &'a [Customer],
    pub collectors: &'a [Collector],
}

/// Render events (all of one entity) as one batch.
pub fn render(entity: Entity, events: &[&Event], dir: &Directory) -> RecordBatch {
    let mut b = BatchBuilder::new(entity);
    for e in events {
        b.row(e.op, e.seq, e.ts);
        render_row(&mut b, &e.row, dir);
    }
    b.finish()
}

fn render_row(b: &mut BatchBuilder, row: &Row, dir: &Directory) {
    let customer = |i: u32| &dir.customers[i as usize];
    let money = |cents: i64| cents as i128;
    match row {
        Row::Customer {
            customer: i,
            version,
        } => {
            let c = customer(*i);
            let limit = if *version == 0 {
                c.credit_limit_cents
            } else {
                c.credit_limit_cents / 2
            };
            b.text(Some(&c.id))
                .text(Some(&c.name))
                .text(Some(c.country))
                .text(Some(c.currency))
                .decimal(money(limit))
                .int(c.terms_days)
                .text(Some(c.segment))
                .text(Some(c.language))
                .text(Some(&c.email(*version)))
                .text(Some(&c.phone()))
                .text(Some(&dir.collectors[c.collector as usize].id));
        }
        Row::Invoice {
            id,
            customer: i,
            invoice_date,
            due_date,
            amount,
            void,
        } => {
            let c = customer(*i);
            b.text(Some(&id.to_string()))
                .text(Some(&c.id))
                .date(Some(*invoice_date))
                .date(Some(*due_date))
                .decimal(money(*amount))
                .text(Some(c.currency))
                .text(Some(if *void { "void" } else { "posted" }));
        }
        Row::Payment {
            id,
            customer: i,
            invoice,
            date,
            amount,
        } => {
            let c = customer(*i);
            b.text(Some(&id.to_string()))
                .text(Some(&c.id))
                .text(invoice.map(|x| x.to_string()).as_deref())
                .date(Some(*date))
                .decimal(money(*amount))
                .text(Some(c.currency));
        }
        Row::Adjustment {
            id,
            invoice,
            customer: i,
            date,
            amount,
            kind,
        } => {
            let c = customer(*i);
            b.text(Some(&id.to_string()))
                .text(Some(&invoice.to_string()))
                .text(Some(&c.id))
                .date(Some(*date))
                .decimal(money(*amount))
                .text(Some(c.currency))
                .text(Some(kind));
        }
        Row::Dispute {
            id,
            invoice,
            customer: i,
            opened,
            amount,
            reason,
            status,
            resolved,
        } => {
            let c = customer(*i);
            b.text(Some(&id.to_string()))
                .text(Some(&invoice.to_string()))
                .text(Some(&c.id))
                .date(Some(*opened))
                .decimal(money(*amount))
                .text(Some(c.currency))
                .text(Some(reason))
                .text(Some(status))
                .date(*resolved);
        }
        Row::Promise {
            id,
            customer: i,
            invoice,
            created,
            promised,
            amount,
            collector,
        } => {
            let c = customer(*i);
            b.text(Some(&id.to_string()))
                .text(Some(&c.id))
                .text(invoice.map(|x| x.to_string()).as_deref())
                .date(Some(*created))
                .date(Some(*promised))
                .decimal(money(*amount))
                .text(Some(c.currency))
                .text(Some(&dir.collectors[*collector as usize].id));
        }
        Row::Activity {
            id,
            customer: i,
            collector,
            ts,
            channel,
            outcome,
        } => {
            b.text(Some(&id.to_string()))
                .text(Some(&customer(*i).id))
                .text(Some(&dir.collectors[*collector as usize].id))
                .timestamp(*ts)
                .text(Some(channel))
                .text(Some(outcome));
        }
        Row::Delete { id, .. } => {
            b.text(Some(&id.to_string()));
        }
    }
}

/// The collectors as a batch of `r` (snapshot) changes.
pub fn collectors_batch(
    collectors: &[Collector],
    seq: impl Fn(usize) -> i64,
    ts: i64,
) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Collectors);
    for (i, c) in collectors.iter().enumerate() {
        b.row(Op::Read, seq(i), ts)
            .text(Some(&c.id))
            .text(Some(&c.name))
            .text(Some(&c.email))
            .text(Some(c.languages))
            .int(c.capacity);
    }
    b.finish()
}
