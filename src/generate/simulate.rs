//! The life of each invoice, drawn up front: the changes it causes in the ERP (payments,
//! adjustments, disputes, promises, collector calls), each with the day it happens.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::model::{Archetype, Customer, normal};
use crate::feed::contract::Entity;

/// Debezium's change codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// Which file a change lands in: with its month, or late and out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Month,
    /// Corrections that a connector delivered late, in a folder read before the months.
    Backfill,
    /// An at-least-once connector sending a change a second time.
    Redelivery,
}

/// An id rendered as `<prefix><customer><month><n>`, e.g. `INV0001230507`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id {
    pub prefix: &'static str,
    pub customer: u32,
    pub month: u16,
    pub n: u16,
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{:06}{:02}{:03}",
            self.prefix, self.customer, self.month, self.n
        )
    }
}

/// The image a change carries.
#[derive(Debug, Clone)]
pub enum Row {
    Customer {
        customer: u32,
        version: u8,
    },
    Invoice {
        id: Id,
        customer: u32,
        invoice_date: i32,
        due_date: i32,
        amount: i64,
        void: bool,
    },
    Payment {
        id: Id,
        customer: u32,
        invoice: Option<Id>,
        date: i32,
        amount: i64,
    },
    Adjustment {
        id: Id,
        invoice: Id,
        customer: u32,
        date: i32,
        amount: i64,
        kind: &'static str,
    },
    Dispute {
        id: Id,
        invoice: Id,
        customer: u32,
        opened: i32,
        amount: i64,
        reason: &'static str,
        status: &'static str,
        resolved: Option<i32>,
    },
    Promise {
        id: Id,
        customer: u32,
        invoice: Option<Id>,
        created: i32,
        promised: i32,
        amount: i64,
        collector: u32,
    },
    Activity {
        id: Id,
        customer: u32,
        collector: u32,
        ts: i64,
        channel: &'static str,
        outcome: &'static str,
    },
    /// A delete: only the key is carried.
    Delete {
        entity: Entity,
        id: Id,
    },
}

impl Row {
    pub fn entity(&self) -> Entity {
        match self {
            Row::Customer { .. } => Entity::Customers,
            Row::Invoice { .. } => Entity::Invoices,
            Row::Payment { .. } => Entity::Payments,
            Row::Adjustment { .. } => Entity::Adjustments,
            Row::Dispute { .. } => Entity::Disputes,
            Row::Promise { .. } => Entity::Promises,
            Row::Activity { .. } => Entity::Activities,
            Row::Delete { entity, .. } => *entity,
        }
    }
}

/// One change of the feed.
#[derive(Debug, Clone)]
pub struct Event {
    pub day: i32,
    pub seq: i64,
    /// Commit time, µs since the epoch.
    pub ts: i64,
    pub op: Op,
    pub route: Route,
    pub row: Row,
}

/// A source commit sequence that grows with the day and is unique per customer and origin.
pub fn seq(day: i32, customer: u32, month: u16, n: u16) -> i64 {
    ((day as i64) << 44)
        | ((customer as i64 & 0xf_ffff) << 24)
        | ((month as i64 & 0xff) << 16)
        | n as i64
}

/// Draws the events of one customer's invoices of one month.
pub struct MonthSim<'a> {
    pub customer: &'a Customer,
    pub rng: ChaCha8Rng,
    pub month: usize,
    pub months: usize,
    /// Last simulated day (inclusive): later events are not emitted.
    pub end_day: i32,
    pub events: Vec<Event>,
    counter: u16,
}

const DISPUTE_REASONS: &[&str] = &[
    "pricing",
    "quantity",
    "damaged_goods",
    "not_received",
    "duplicate_billing",
];

impl<'a> MonthSim<'a> {
    pub fn new(
        customer: &'a Customer,
        rng: ChaCha8Rng,
        month: usize,
        months: usize,
        end_day: i32,
    ) -> Self {
        MonthSim {
            customer,
            rng,
            month,
            months,
            end_day,
            events: Vec::new(),
            counter: 0,
        }
    }

    fn id(&mut self, prefix: &'static str) -> Id {
        self.counter = self.counter.wrapping_add(1);
        Id {
            prefix,
            customer: self.customer.index,
            month: self.month as u16,
            n: self.counter,
        }
    }

    /// Emit a change on `day` (dropped when past the end of the simulation).
    fn emit(&mut self, day: i32, op: Op, route: Route, row: Row) {
        if day > self.end_day {
            return;
        }
        self.counter = self.counter.wrapping_add(1);
        let s = seq(day, self.customer.index, self.month as u16, self.counter);
        let second_of_day = self.rng.random_range(7 * 3600..19 * 3600) as i64;
        let ts = (day as i64 * 86_400 + second_of_day) * 1_000_000;
        self.events.push(Event {
            day,
            seq: s,
            ts,
            op,
            route,
            row,
        });
    }

    fn activity(&mut self, day: i32, channel: &'static str, outcome: &'static str) {
        if day > self.end_day {
            return;
        }
        let id = self.id("ACT");
        let ts =
            (day as i64 * 86_400 + self.rng.random_range(8 * 3600..18 * 3600) as i64) * 1_000_000;
        let row = Row::Activity {
            id,
            customer: self.customer.index,
            collector: self.customer.collector,
            ts,
            channel,
            outcome,
        };
        self.emit(day, Op::Create, Route::Month, row);
    }

    /// Draw one invoice issued on `invoice_day` and everything that follows from it.
    pub fn invoice(&mut self, invoice_day: i32, due_month: u32) {
        let c = self.customer;
        let id = self.id("INV");
        let due = invoice_day + c.terms_days;
        let mut amount = ((c.amount_log_mean + 0.7 * normal(&mut self.rng)).exp() * 100.0)
            .round()
            .max(1000.0) as i64;
        let image = |amount: i64, void: bool| Row::Invoice {
            id,
            customer: c.index,
            invoice_date: invoice_day,
            due_date: due,
            amount,
            void,
        };
        self.emit(invoice_day, Op::Create, Route::Month, image(amount, false));
        if self.rng.random_bool(0.01) {
            // The same change delivered twice by the connector.
            let mut copy = self.events.last().cloned().expect("just emitted");
            copy.route = Route::Redelivery;
            if copy.day <= self.end_day {
                self.events.push(copy);
            }
        }
        let fate: f64 = self.rng.random();
        let late_route = |rng: &mut ChaCha8Rng| {
            if rng.random_bool(0.4) {
                Route::Backfill
            } else {
                Route::Month
            }
        };
        if fate < 0.003 {
            let day = invoice_day + self.rng.random_range(1..4);
            self.emit(
                day,
                Op::Delete,
                Route::Month,
                Row::Delete {
                    entity: crate::feed::contract::Entity::Invoices,
                    id,
                },
            );
            return;
        }
        if fate < 0.011 {
            let day = invoice_day + self.rng.random_range(1..11);
            let route = late_route(&mut self.rng);
            self.emit(day, Op::Update, route, image(amount, true));
            return;
        }
        if self.rng.random_bool(0.02) {
            amount = (amount as f64 * self.rng.random_range(0.9..1.1)).round() as i64;
            let day = invoice_day + self.rng.random_range(2..13);
            let route = late_route(&mut self.rng);
            self.emit(day, Op::Update, route, image(amount, false));
        }
        let mut open = amount;
        if self.rng.random_bool(0.02) {
            let credit = (open as f64 * self.rng.random_range(0.05..0.2)).round() as i64;
            let day = invoice_day + self.rng.random_range(5..31);
            self.adjustment(id, day, credit, "credit_note");
            open -= credit;
        }

        let month_progress = self.month;
        let mut days_late =
            c.archetype
                .days_late(&mut self.rng, due_month, month_progress, self.months);
        let defaulted = c.archetype == Archetype::Defaulting && self.month + 1 >= c.default_month;
        let mut pay_day = (due + days_late).max(invoice_day + 1);

        if self.rng.random_bool(0.03) {
            let opened = invoice_day + self.rng.random_range(5..26);
            let disputed = if self.rng.random_bool(0.5) {
                open
            } else {
                (open as f64 * self.rng.random_range(0.1..0.6)).round() as i64
            };
            let dispute_id = self.id("DSP");
            let reason = DISPUTE_REASONS[self.rng.random_range(0..DISPUTE_REASONS.len())];
            let dispute = |status, resolved| Row::Dispute {
                id: dispute_id,
                invoice: id,
                customer: c.index,
                opened,
                amount: disputed,
                reason,
                status,
                resolved,
            };
            self.emit(opened, Op::Create, Route::Month, dispute("open", None));
            self.activity(opened, "portal", "dispute_raised");
            let outcome: f64 = self.rng.random();
            if outcome < 0.6 {
                let resolved = opened + self.rng.random_range(3..41);
                self.emit(
                    resolved,
                    Op::Update,
                    Route::Month,
                    dispute("resolved", Some(resolved)),
                );
                self.adjustment(id, resolved, disputed, "credit_note");
                open -= disputed;
                pay_day = pay_day.max(resolved + self.rng.random_range(0..11));
            } else if outcome < 0.9 {
                let resolved = opened + self.rng.random_range(5..31);
                self.emit(
                    resolved,
                    Op::Update,
                    Route::Month,
                    dispute("rejected", Some(resolved)),
                );
                pay_day = pay_day.max(resolved + self.rng.random_range(0..11));
            } else {
                // Still open: the disputed part stays unpaid.
                open -= disputed;
            }
        }
        days_late = pay_day - due;

        if days_late > 5 || defaulted {
            self.collect(id, due, pay_day, open, defaulted);
        }
        if defaulted {
            if open > 0 {
                self.adjustment(id, due + 180, open, "write_off");
            }
            return;
        }
        if open <= 0 {
            return;
        }
        if c.archetype == Archetype::Prompt && days_late <= 0 && self.rng.random_bool(0.3) {
            let discount = (open as f64 * 0.02).round() as i64;
            self.adjustment(id, pay_day, discount, "discount");
            open -= discount;
        }
        if self.rng.random_bool(0.02) {
            let deduction = (open as f64 * self.rng.random_range(0.01..0.05)).round() as i64;
            let day = pay_day + self.rng.random_range(5..21);
            self.adjustment(id, day, deduction, "deduction");
            open -= deduction;
        }
        if self.rng.random_bool(0.12) {
            let first = (open as f64 * self.rng.random_range(0.4..0.8)).round() as i64;
            let first_day = (pay_day - self.rng.random_range(5..20)).max(invoice_day + 1);
            self.payment(id, first_day, first);
            let second_day = pay_day + self.rng.random_range(10..41);
            self.payment(id, second_day, open - first);
        } else {
            self.payment(id, pay_day, open);
        }
    }

    fn adjustment(&mut self, invoice: Id, day: i32, amount: i64, kind: &'static str) {
        let id = self.id("ADJ");
        let row = Row::Adjustment {
            id,
            invoice,
            customer: self.customer.index,
            date: day,
            amount,
            kind,
        };
        self.emit(day, Op::Create, Route::Month, row);
    }

    /// A payment; one in 25 arrives without remittance advice, sits as unapplied cash and is
    /// applied to its invoice a few days later (an update of the same payment).
    fn payment(&mut self, invoice: Id, day: i32, amount: i64) {
        let id = self.id("PAY");
        let customer = self.customer.index;
        let image = |invoice| Row::Payment {
            id,
            customer,
            invoice,
            date: day,
            amount,
        };
        if self.rng.random_bool(0.04) {
            self.emit(day, Op::Create, Route::Month, image(None));
            let applied = day + self.rng.random_range(2..11);
            self.emit(applied, Op::Update, Route::Month, image(Some(invoice)));
        } else {
            self.emit(day, Op::Create, Route::Month, image(Some(invoice)));
        }
    }

    /// Dunning for a late invoice: reminders, calls, a letter, and often a promise to pay.
    fn collect(&mut self, invoice: Id, due: i32, pay_day: i32, amount: i64, defaulted: bool) {
        let paid_by = |day: i32| !defaulted && pay_day <= day;
        if !paid_by(due + 3) {
            self.activity(due + 3, "email", "reminder_sent");
        }
        if !paid_by(due + 12) {
            let outcome = ["no_answer", "left_message", "spoke_to_ap"][self.rng.random_range(0..3)];
            self.activity(due + 12, "call", outcome);
        }
        if !paid_by(due + 20) && self.rng.random_bool(0.3) {
            self.activity(due + 20, "sms", "reminder_sent");
        }
        if !paid_by(due + 40) {
            self.activity(due + 40, "letter", "sent");
        }
        if !paid_by(due + 60) {
            self.activity(due + 60, "call", "escalated");
        }
        if (pay_day - due > 10 || defaulted) && self.rng.random_bool(0.5) {
            let created = due + self.rng.random_range(8..16);
            let keeps = !defaulted && self.rng.random_bool(0.6);
            let promised = if keeps {
                (pay_day - self.rng.random_range(0..4)).max(created + 1)
            } else {
                created + self.rng.random_range(3..11)
            };
            let id = self.id("PTP");
            let on_account = self.rng.random_bool(0.1);
            let row = Row::Promise {
                id,
                customer: self.customer.index,
                invoice: (!on_account).then_some(invoice),
                created,
                promised,
                amount,
                collector: self.customer.collector,
            };
            self.emit(created, Op::Create, Route::Month, row);
            self.activity(created, "call", "promise_to_pay");
        }
    }
}
