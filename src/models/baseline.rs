//! The naive baseline every risk score is shown beside: an invoice is as likely to be late as
//! its customer's invoices were up to the cut-off; a customer with no settled history gets the
//! overall share.

use std::collections::HashMap;

/// Late shares learned from outcomes known at a cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct LateShare {
    by_customer: HashMap<String, f64>,
    overall: f64,
}

impl LateShare {
    /// From `(customer, late)` outcomes known at the cut-off; `None` without any.
    pub fn learn<'a>(outcomes: impl IntoIterator<Item = (&'a str, bool)>) -> Option<LateShare> {
        let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
        let (mut late, mut all) = (0u64, 0u64);
        for (customer, was_late) in outcomes {
            let c = counts.entry(customer.to_string()).or_default();
            c.0 += was_late as u64;
            c.1 += 1;
            late += was_late as u64;
            all += 1;
        }
        (all > 0).then(|| LateShare {
            by_customer: (counts.into_iter())
                .map(|(customer, (l, n))| (customer, l as f64 / n as f64))
                .collect(),
            overall: late as f64 / all as f64,
        })
    }

    /// The probability the baseline gives an invoice of `customer`.
    pub fn probability(&self, customer: &str) -> f64 {
        self.by_customer
            .get(customer)
            .copied()
            .unwrap_or(self.overall)
    }

    /// The share over all outcomes learned.
    pub fn overall(&self) -> f64 {
        self.overall
    }

    /// These customers' shares, with `overall` for the others: shares learned from some
    /// customers' outcomes, completed with the share over everyone's.
    pub fn with_overall(self, overall: f64) -> LateShare {
        LateShare { overall, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_gets_its_own_share_and_a_new_one_the_overall_share() {
        let share = LateShare::learn([
            ("A", true),
            ("A", false),
            ("A", true),
            ("A", true),
            ("B", false),
        ])
        .unwrap();
        assert_eq!(share.probability("A"), 0.75);
        assert_eq!(share.probability("B"), 0.0);
        assert_eq!(share.probability("new"), 0.6);
        assert_eq!(share.overall(), 0.6);
        assert_eq!(LateShare::learn([]), None);
    }
}
