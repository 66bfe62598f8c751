//! What the ledger keeps per invoice and per customer, and the rules that turn it into
//! contributions (the same rules as `queries/invoice_balances.sql` and
//! `queries/promise_outcomes.sql`).

use super::rows::PromiseImage;
use super::{Day, Money};
use crate::state::table::EntityTable;

/// A payment (cash) or adjustment on an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub day: Day,
    pub amount: Option<Money>,
    pub is_cash: bool,
}

/// A promise to pay, as far as its outcome goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    pub created: Option<Day>,
    pub promised: Day,
    pub amount: Option<Money>,
}

impl Promise {
    /// A promise without a promised date never falls due, so it is not kept here.
    pub fn of(image: &PromiseImage) -> Option<Promise> {
        Some(Promise {
            created: image.created,
            promised: image.promised?,
            amount: image.amount,
        })
    }

    /// Kept when the cash dated from the day it was made to the promised date plus the grace
    /// days adds up to at least the promised amount.
    pub fn kept(&self, cash: &[Settlement], grace_days: i32) -> bool {
        let (Some(created), Some(amount)) = (self.created, self.amount) else {
            return self.created.is_none() && self.amount.is_some_and(|a| a <= 0);
        };
        let deadline = self.promised + grace_days;
        let paid: i128 = cash
            .iter()
            .filter(|c| c.is_cash && c.day >= created && c.day <= deadline)
            .filter_map(|c| c.amount)
            .map(|a| a as i128)
            .sum();
        paid >= amount as i128
    }
}

/// What an existing invoice's balance depends on.
#[derive(Debug, Clone)]
pub struct Facts {
    pub invoice_id: String,
    pub currency: u16,
    pub invoice_date: Day,
    pub due_date: Option<Day>,
    pub amount: Option<Money>,
}

/// The settlements and promises filed under one invoice id (whether or not the invoice
/// exists yet: a payment may arrive before its invoice).
#[derive(Debug, Default, Clone)]
pub struct InvoiceGroup {
    pub settlements: Vec<Settlement>,
    pub promises: Vec<Promise>,
}

fn change<T: PartialEq>(items: &mut Vec<T>, item: T, sign: i64) {
    if sign > 0 {
        items.push(item);
    } else if let Some(at) = items.iter().position(|x| *x == item) {
        items.swap_remove(at);
    }
}

impl InvoiceGroup {
    pub fn change_settlement(&mut self, settlement: Settlement, sign: i64) {
        change(&mut self.settlements, settlement, sign);
    }

    pub fn change_promise(&mut self, promise: Promise, sign: i64) {
        change(&mut self.promises, promise, sign);
    }

    /// The payments on the invoice (what its promises are judged on).
    pub fn cash(&self) -> Vec<Settlement> {
        self.settlements
            .iter()
            .copied()
            .filter(|s| s.is_cash)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.settlements.is_empty() && self.promises.is_empty()
    }
}

/// A customer with promises made on the account: its payments (on any invoice or none).
#[derive(Debug, Default, Clone)]
pub struct CustomerGroup {
    pub payments: Vec<Settlement>,
    pub promises: Vec<Promise>,
}

impl CustomerGroup {
    /// A group for a customer's first promise on the account, with its payments read from
    /// the payments table (a scan, paid once per such customer).
    pub fn from_payments(customer_id: &str, payments: &EntityTable) -> CustomerGroup {
        let mut group = CustomerGroup::default();
        for (batch, rows) in payments.current_rows() {
            let settlements = super::rows::Settlements::new(batch, true);
            for r in rows {
                let image = settlements.row(r);
                if let (Some(day), Some(_)) = (image.day, image.customer_id)
                    && image.customer_id == Some(customer_id)
                {
                    group.payments.push(Settlement {
                        day,
                        amount: image.amount,
                        is_cash: true,
                    });
                }
            }
        }
        group
    }

    pub fn change_payment(&mut self, payment: Settlement, sign: i64) {
        change(&mut self.payments, payment, sign);
    }

    pub fn change_promise(&mut self, promise: Promise, sign: i64) {
        change(&mut self.promises, promise, sign);
    }
}

/// The open amount of an invoice as dated rows: `+amount` from the invoice date, then
/// `-settlement` from each settlement's date (or the invoice date, when earlier). The open
/// amount at D is the sum of the rows dated up to D. An invoice without an amount has an
/// unknown open amount, and no rows.
pub fn open_rows(facts: &Facts, group: &InvoiceGroup) -> Vec<(Day, Option<Money>)> {
    let Some(amount) = facts.amount else {
        return Vec::new();
    };
    std::iter::once((facts.invoice_date, Some(amount)))
        .chain(group.settlements.iter().map(|s| {
            (
                s.day.max(facts.invoice_date),
                s.amount.map(|a| a.saturating_neg()),
            )
        }))
        .collect()
}

/// Whether the running sum of dated rows stays at or above zero on every day.
pub fn never_negative(rows: &[(Day, Option<Money>)]) -> bool {
    let mut sorted: Vec<(Day, i128)> = rows
        .iter()
        .map(|(d, a)| (*d, a.unwrap_or(0) as i128))
        .collect();
    sorted.sort_unstable();
    let mut open = 0i128;
    for (n, (day, amount)) in sorted.iter().enumerate() {
        open += amount;
        let last_of_day = sorted.get(n + 1).is_none_or(|(next, _)| next != day);
        if last_of_day && open < 0 {
            return false;
        }
    }
    true
}
