//! The worked example of `docs/kpis.md` as a change feed in the contract's layout.

use std::path::Path;

use arstream::dates::days;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use chrono::NaiveDate;

fn d(s: &str) -> Option<i32> {
    Some(days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()))
}

/// Money in cents.
fn m(units: i64) -> i128 {
    units as i128 * 100
}

/// Write the example's rows as one `c` change each.
pub fn write_worked_example(feed: &Path) {
    let ts = 1_767_225_600_000_000;
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };

    let mut b = BatchBuilder::new(Entity::Customers);
    for id in ["C1", "C2"] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(&format!("Customer {id}")))
            .text(Some("US"))
            .text(Some("USD"))
            .decimal(m(100_000))
            .int(30)
            .text(Some("smb"))
            .text(Some("en-US"))
            .text(Some("ap@example.com"))
            .text(Some("+1-555-0100"))
            .text(Some("COL1"));
    }
    super::write(feed, "customers/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Invoices);
    for (id, customer, date, due, amount) in [
        ("I1", "C1", "2025-12-15", "2026-01-14", 1000),
        ("I2", "C1", "2026-01-10", "2026-02-09", 2000),
        ("I3", "C2", "2026-02-01", "2026-03-03", 3000),
        ("I4", "C2", "2026-03-05", "2026-04-04", 4000),
        ("I5", "C1", "2026-03-20", "2026-04-19", 1500),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(customer))
            .date(d(date))
            .date(d(due))
            .decimal(m(amount))
            .text(Some("USD"))
            .text(Some("posted"));
    }
    super::write(feed, "invoices/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Payments);
    for (id, invoice, customer, date, amount) in [
        ("P1", "I1", "C1", "2026-01-20", 1000),
        ("P2", "I2", "C1", "2026-02-15", 500),
        ("P3", "I3", "C2", "2026-03-10", 3000),
        ("P4", "I2", "C1", "2026-03-22", 300),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(customer))
            .text(Some(invoice))
            .date(d(date))
            .decimal(m(amount))
            .text(Some("USD"));
    }
    super::write(feed, "payments/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Adjustments);
    b.row(Op::Create, next(), ts)
        .text(Some("A1"))
        .text(Some("I2"))
        .text(Some("C1"))
        .date(d("2026-03-15"))
        .decimal(m(200))
        .text(Some("USD"))
        .text(Some("write_off"));
    super::write(feed, "adjustments/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Disputes);
    for (id, invoice, customer, opened, status, resolved) in [
        ("D1", "I2", "C1", "2026-02-20", "open", None),
        ("D2", "I3", "C2", "2026-03-04", "resolved", d("2026-03-09")),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(invoice))
            .text(Some(customer))
            .date(d(opened))
            .decimal(m(1000))
            .text(Some("USD"))
            .text(Some("pricing"))
            .text(Some(status))
            .date(resolved);
    }
    super::write(feed, "disputes/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Promises);
    for (id, created, promised, amount) in [
        ("PR1", "2026-03-10", "2026-03-20", 300),
        ("PR2", "2026-02-16", "2026-02-25", 1500),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some("C1"))
            .text(Some("I2"))
            .date(d(created))
            .date(d(promised))
            .decimal(m(amount))
            .text(Some("USD"))
            .text(Some("COL1"));
    }
    super::write(feed, "promises/part-0.parquet", &b.finish());
}
