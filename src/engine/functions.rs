//! SQL functions arstream adds to DataFusion's.
//!
//! `allocate_cents(amount, total) OVER (PARTITION BY … ORDER BY …)`: money converted at a
//! closing rate has ten decimals; a report shows cents. Rounding each line on its own makes
//! the lines miss their total by a cent or more (an aging report whose customers do not add
//! up to the bucket). This rounds each row's exact `amount` to cents, then moves the cents
//! still missing (or too many) onto the rows rounding moved furthest, so that the rows of a
//! partition add up to `total` exactly: the largest-remainder method. Rows with a null amount
//! stay null; a null total leaves plain rounding. Ties go to the earlier row in the window's
//! order, so the result does not depend on how the engine split the work.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};

/// The scale amounts are taken at: an amount (2 decimals) times a rate (8 decimals).
const EXACT_SCALE: i8 = 10;
/// Units of the exact scale in one cent.
const PER_CENT: i128 = 10i128.pow((EXACT_SCALE - 2) as u32);

/// Every function of this module, to register on a session.
pub fn all() -> Vec<WindowUDF> {
    vec![WindowUDF::from(AllocateCents::new())]
}

/// `allocate_cents(amount, total)`: see the module's documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AllocateCents {
    signature: Signature,
}

impl AllocateCents {
    fn new() -> Self {
        AllocateCents {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl WindowUDFImpl for AllocateCents {
    fn name(&self) -> &str {
        "allocate_cents"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!("allocate_cents(amount, total) takes two arguments");
        }
        for t in arg_types {
            if !(t.is_numeric() || t.is_null()) {
                return plan_err!("allocate_cents takes money amounts, not {t}");
            }
        }
        Ok(vec![exact_type(), exact_type()])
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(Allocator))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Decimal128(18, 2),
            true,
        )))
    }
}

fn exact_type() -> DataType {
    DataType::Decimal128(38, EXACT_SCALE)
}

#[derive(Debug)]
struct Allocator;

impl PartitionEvaluator for Allocator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [amounts, totals] = values else {
            return exec_err!("allocate_cents takes two arguments");
        };
        let amounts = amounts.as_primitive::<Decimal128Type>();
        let totals = totals.as_primitive::<Decimal128Type>();
        let exact: Vec<Option<i128>> = (0..num_rows)
            .map(|i| amounts.is_valid(i).then(|| amounts.value(i)))
            .collect();
        let total = (0..num_rows).find_map(|i| totals.is_valid(i).then(|| totals.value(i)));
        let cents = allocate(&exact, total.map(round_to_cents));
        Ok(Arc::new(
            Decimal128Array::from(cents).with_precision_and_scale(18, 2)?,
        ))
    }
}

/// An exact amount in cents, half away from zero (as a cast to two decimals rounds).
fn round_to_cents(exact: i128) -> i128 {
    let half = PER_CENT / 2;
    if exact >= 0 {
        (exact + half) / PER_CENT
    } else {
        (exact - half) / PER_CENT
    }
}

/// The exact amounts rounded to cents, adding up to `total` cents when one is given.
fn allocate(exact: &[Option<i128>], total: Option<i128>) -> Vec<Option<i128>> {
    let mut cents: Vec<Option<i128>> = exact.iter().map(|e| e.map(round_to_cents)).collect();
    let Some(total) = total else {
        return cents;
    };
    let rounded: Vec<usize> = (0..exact.len()).filter(|&i| exact[i].is_some()).collect();
    if rounded.is_empty() {
        return cents;
    }
    let missing = total - cents.iter().flatten().sum::<i128>();
    let step = missing.signum();
    // How far rounding moved each row in the direction the cents must go: the rows moved
    // furthest the other way take them first.
    let moved = |i: usize| step * (cents[i].unwrap() * PER_CENT - exact[i].unwrap());
    let mut order = rounded;
    order.sort_by_key(|&i| (moved(i), i));
    for k in 0..missing.unsigned_abs() as usize {
        let row = order[k % order.len()];
        cents[row] = cents[row].map(|c| c + step);
    }
    cents
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An amount at the exact scale from a decimal string's digits ("1.005" → units).
    fn exact(s: &str) -> Option<i128> {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let negative = whole.starts_with('-');
        let digits = format!("{}{:0<10}", whole.trim_start_matches('-'), frac);
        let units: i128 = digits.parse().unwrap();
        Some(if negative { -units } else { units })
    }

    #[test]
    fn the_rows_add_up_to_the_total_and_the_rows_rounded_furthest_take_the_cents() {
        // 0.334 + 0.334 + 0.332 = 1.000: each rounds to 0.33, one cent short of 1.00.
        let rows = [exact("0.334"), exact("0.334"), exact("0.332")];
        let cents = allocate(&rows, Some(100));
        // The first two were rounded down most (0.004 each, against 0.002): the earlier takes it.
        assert_eq!(cents, vec![Some(34), Some(33), Some(33)]);
    }

    #[test]
    fn too_many_cents_are_taken_back_from_the_rows_rounded_up_most() {
        // 0.335 + 0.335 + 0.33 = 1.00: rounding gives 0.34 + 0.34 + 0.33 = 1.01.
        let rows = [exact("0.335"), exact("0.335"), exact("0.33")];
        assert_eq!(
            allocate(&rows, Some(100)),
            vec![Some(33), Some(34), Some(33)]
        );
    }

    #[test]
    fn negative_amounts_round_away_from_zero_and_nulls_stay_null() {
        let rows = [exact("-1.005"), None, exact("2.004")];
        assert_eq!(allocate(&rows, None), vec![Some(-101), None, Some(200)]);
        // -1.005 + 2.004 = 0.999 → 1.00: the cent goes to the row rounded down most (-1.005
        // went down to -1.01 by 0.005, 2.004 to 2.00 by 0.004).
        assert_eq!(
            allocate(&rows, Some(100)),
            vec![Some(-100), None, Some(200)]
        );
    }

    #[test]
    fn a_total_set_apart_from_the_rows_is_met_even_when_it_needs_several_cents_a_row() {
        let rows = [exact("1.00")];
        assert_eq!(allocate(&rows, Some(103)), vec![Some(103)]);
        assert_eq!(allocate(&[None, None], Some(5)), vec![None, None]);
    }
}
