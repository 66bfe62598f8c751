//! Arrow's Date32 is days since 1970-01-01; these convert between it and calendar dates.

use chrono::NaiveDate;

/// Days since 1970-01-01 (Arrow's Date32), as the models count them.
pub type Day = i32;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
}

/// The Date32 value of a date.
pub fn days(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// The date of a Date32 value.
pub fn date(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(days as i64)
}
