//! What the ledger keeps per invoice and per customer, and the rules that turn it into
//! contributions (the same rules as `queries/invoice_balances.sql` and
//! `queries/promise_outcomes.sql`).

use super::rows::PromiseImage;
use super::{Day, Money};
use crate::state::table::EntityTable;

/// A payment (cash) or adjustment on an invoice. A missing amount counts as 0, as SQL's
/// `sum` skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub day: Day,
    pub is_cash: bool,
    pub amount: Money,
}

/// The settlements filed under one invoice id (whether or not the invoice exists yet: a
/// payment may arrive before its invoice); most invoices have one or two, kept inline.
pub type Settlements = smallvec::SmallVec<[Settlement; 2]>;

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
            .map(|c| c.amount as i128)
            .sum();
        paid >= amount as i128
    }
}

/// What an existing invoice's balance depends on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub invoice_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub currency: u16,
    pub invoice_date: Day,
    pub due_date: Option<Day>,
    pub amount: Option<Money>,
}

/// The promises filed under one invoice id or customer.
pub type Promises = smallvec::SmallVec<[Promise; 1]>;

/// Add an item to a list, or (`sign` −1) take one equal to it out.
pub fn change<A: smallvec::Array>(items: &mut smallvec::SmallVec<A>, item: A::Item, sign: i64)
where
    A::Item: PartialEq,
{
    if sign > 0 {
        items.push(item);
    } else if let Some(at) = items.iter().position(|x| *x == item) {
        items.swap_remove(at);
    }
}

/// A customer with promises made on the account: its payments (on any invoice or none).
#[derive(Debug, Default, Clone)]
pub struct CustomerGroup {
    pub payments: Settlements,
    pub promises: Promises,
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
                if let (Some(day), Some(id)) = (image.day, image.customer_id)
                    && id == customer_id
                {
                    group.payments.push(Settlement {
                        day,
                        is_cash: true,
                        amount: image.amount.unwrap_or(0),
                    });
                }
            }
        }
        group
    }
}

/// The open amount of an invoice as dated rows: `+amount` from the invoice date, then
/// `-settlement` from each settlement's date (or the invoice date, when earlier). The open
/// amount at D is the sum of the rows dated up to D.
pub fn open_rows(
    amount: Money,
    invoice_date: Day,
    settlements: &[Settlement],
) -> Vec<(Day, Money)> {
    std::iter::once((invoice_date, amount))
        .chain(
            settlements
                .iter()
                .map(|s| (s.day.max(invoice_date), s.amount.saturating_neg())),
        )
        .collect()
}

/// Whether the open amount stays at or above zero on every day. The common case (payments
/// and adjustments that are all positive and do not add up to more than the amount) is
/// answered without sorting.
pub fn never_overpaid(amount: Money, invoice_date: Day, settlements: &[Settlement]) -> bool {
    let amounts = settlements.iter().map(|s| s.amount as i128);
    if amounts.clone().all(|a| a >= 0) {
        return amounts.sum::<i128>() <= amount as i128;
    }
    let mut rows = open_rows(amount, invoice_date, settlements);
    rows.sort_unstable();
    let mut open = 0i128;
    for (n, (day, amount)) in rows.iter().enumerate() {
        open += *amount as i128;
        let last_of_day = rows.get(n + 1).is_none_or(|(next, _)| next != day);
        if last_of_day && open < 0 {
            return false;
        }
    }
    true
}
