//! `arstream import`: other systems' exports written as an arstream feed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::import::late_payments;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: Import,
}

#[derive(Debug, Subcommand)]
pub enum Import {
    /// IBM's "late payment histories" CSV (customerID, invoiceNumber, InvoiceDate, DueDate,
    /// InvoiceAmount, Disputed, SettledDate, …): each invoice, its payment in full on the
    /// settled date and its dispute, committed on the days they happened (see docs/import.md)
    #[command(
        after_help = "Example:\n  arstream import late-payments accounts-receivable.csv --out /tmp/ibm-feed\n  arstream --feed /tmp/ibm-feed --state /tmp/ibm-state kpi --as-of 2013-06-30"
    )]
    LatePayments {
        /// The export (CSV with IBM's header)
        file: PathBuf,
        /// Where to write the feed: a folder or object-store URL
        #[arg(long, value_name = "URL")]
        out: String,
        /// The currency of the export's amounts (it names none)
        #[arg(long, value_name = "CCY", default_value = "USD")]
        amounts_in: String,
    },
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Import::LatePayments {
            file,
            out,
            amounts_in,
        } => {
            let feed = crate::store::open(&out, true)?;
            let imported = late_payments::import(&file, &feed, &amounts_in).await?;
            println!(
                "wrote {} files into {out}: {} invoices of {} customers ({} disputed), {} to {}",
                imported.files,
                imported.invoices,
                imported.customers,
                imported.disputes,
                imported.first.map(|d| d.to_string()).unwrap_or_default(),
                imported.last.map(|d| d.to_string()).unwrap_or_default(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
