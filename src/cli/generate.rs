//! `arstream generate`: write a synthetic ERP change feed.

use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;

use crate::generate::{GenerateOptions, generate};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  arstream generate --out /tmp/feed --customers 500 --months 12\n  arstream generate --out s3://bucket/feed --customers 100000 --months 24 --seed 7"
)]
pub struct GenerateArgs {
    /// Where to write the feed: a folder or object-store URL
    #[arg(long, value_name = "URL")]
    pub out: String,
    /// Number of customers (about 4 invoices per customer and month)
    #[arg(long, default_value_t = 200)]
    pub customers: u32,
    /// Months of history
    #[arg(long, default_value_t = 12)]
    pub months: usize,
    /// Random seed: the same seed writes the same feed
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First month of the history (YYYY-MM-DD; the first of its month is used)
    #[arg(long, default_value = "2025-01-01")]
    pub start: NaiveDate,
    /// Largest number of rows in one file
    #[arg(long, default_value_t = 1_000_000)]
    pub rows_per_file: usize,
}

pub async fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    // Commit times after today break the contract (they are quarantined): refuse a timeline
    // that runs past it.
    let end = args.start + chrono::Months::new(args.months as u32);
    let today = chrono::Utc::now().date_naive();
    if end > today + chrono::Days::new(1) {
        anyhow::bail!(
            "{} months from {} run to {end}, past today ({today}): commit times (_ts) in the future break the contract; give an earlier --start",
            args.months,
            args.start
        );
    }
    let opts = GenerateOptions {
        customers: args.customers,
        months: args.months,
        seed: args.seed,
        start: args.start,
        out: args.out.clone(),
        rows_per_file: args.rows_per_file,
    };
    let bar = super::progress_bar();
    if let Some(b) = &bar {
        b.set_message("months");
    }
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        let progress = |done: usize, total: usize| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
        };
        let r = generate(&opts, Some(&progress));
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        r
    })
    .await
    .context("the generator stopped")??;
    println!(
        "wrote {} files ({:.1} MB), {} change rows, {} to {}, into {} in {:.1} s",
        report.files,
        report.bytes as f64 / 1e6,
        report.total_rows(),
        report.first_day.map(|d| d.to_string()).unwrap_or_default(),
        report.last_day.map(|d| d.to_string()).unwrap_or_default(),
        args.out,
        started.elapsed().as_secs_f64()
    );
    for (entity, rows) in &report.rows {
        println!("  {entity:<12} {rows:>12}");
    }
    Ok(ExitCode::SUCCESS)
}
