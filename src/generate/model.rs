//! Who the synthetic ERP's customers and collectors are, and how each kind of payer pays.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a customer pays; hidden from the feed, it shapes the payment dates the feed shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archetype {
    /// Pays on or a little before the due date, often takes the early-payment discount.
    Prompt,
    /// Pays a few days late.
    SlightlyLate,
    /// Pays a month or more late, every time.
    ChronicallyLate,
    /// On time most of the year, late around year end and in the summer.
    Seasonal,
    /// Starts on time and pays later and later.
    Deteriorating,
    /// Pays for a while, then stops paying at all; its invoices end as write-offs.
    Defaulting,
}

impl Archetype {
    pub fn draw(rng: &mut ChaCha8Rng) -> Archetype {
        match rng.random_range(0..100) {
            0..35 => Archetype::Prompt,
            35..60 => Archetype::SlightlyLate,
            60..75 => Archetype::ChronicallyLate,
            75..85 => Archetype::Seasonal,
            85..95 => Archetype::Deteriorating,
            _ => Archetype::Defaulting,
        }
    }

    /// Days after the due date this payer pays an invoice due in `month` (of `months`);
    /// negative is early.
    pub fn days_late(
        self,
        rng: &mut ChaCha8Rng,
        due_month: u32,
        month: usize,
        months: usize,
    ) -> i32 {
        let noise = normal(rng);
        let days = match self {
            Archetype::Prompt => -2.0 + 3.0 * noise,
            Archetype::SlightlyLate => 6.0 + 5.0 * noise,
            Archetype::ChronicallyLate => 38.0 + 15.0 * noise,
            Archetype::Seasonal => {
                let busy = matches!(due_month, 12 | 1 | 7 | 8);
                if busy {
                    32.0 + 10.0 * noise
                } else {
                    1.0 + 4.0 * noise
                }
            }
            Archetype::Deteriorating => {
                let progress = month as f64 / months.max(1) as f64;
                progress.powf(1.5) * 75.0 + 5.0 * noise
            }
            Archetype::Defaulting => 12.0 + 8.0 * noise,
        };
        days.round().max(-20.0) as i32
    }
}

/// A standard normal draw (Box–Muller), so no distribution crate is needed.
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson draw with mean `lambda` (Knuth; fine for the small means used here).
pub fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

/// Countries with their currency and main language.
pub const COUNTRIES: &[(&str, &str, &str, u32)] = &[
    // (country, currency, language, weight in %)
    ("US", "USD", "en-US", 52),
    ("CA", "CAD", "en-CA", 8),
    ("GB", "GBP", "en-GB", 12),
    ("DE", "EUR", "de-DE", 9),
    ("FR", "EUR", "fr-FR", 7),
    ("NL", "EUR", "nl-NL", 4),
    ("ES", "EUR", "es-ES", 3),
    ("JP", "JPY", "ja-JP", 5),
];

/// Currencies other than the reporting one (USD), with their starting rate in USD.
pub const FX: &[(&str, f64)] = &[("EUR", 1.08), ("GBP", 1.27), ("CAD", 0.74), ("JPY", 0.0067)];

/// A customer as the ERP knows it, plus the hidden payer behaviour.
#[derive(Debug, Clone)]
pub struct Customer {
    pub index: u32,
    pub id: String,
    pub name: String,
    pub country: &'static str,
    pub currency: &'static str,
    pub language: &'static str,
    pub segment: &'static str,
    pub terms_days: i32,
    pub credit_limit_cents: i64,
    pub collector: u32,
    pub archetype: Archetype,
    /// Invoices a month, on average.
    pub invoices_per_month: f64,
    /// log of the typical invoice amount, in the customer's currency.
    pub amount_log_mean: f64,
    /// The month (from 0) in which a defaulting customer stops paying.
    pub default_month: usize,
    /// Month in which the customer record gets an update (new credit limit or e-mail), if any.
    pub update_month: Option<usize>,
}

const SYLLABLES: &[&str] = &[
    "ar", "bel", "cor", "dan", "el", "fin", "gal", "hol", "is", "jon", "kel", "lum", "mar", "nor",
    "or", "pel", "quin", "ros", "sol", "tor", "ul", "ver", "wes", "xan", "yor", "zen",
];
const SUFFIXES: &[&str] = &[
    "Industries",
    "Logistics",
    "Foods",
    "Retail",
    "Systems",
    "GmbH",
    "Ltd",
    "SA",
    "Holdings",
    "Supply",
];

fn company_name(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(2..4);
    let mut word: String = (0..n)
        .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
        .collect();
    if let Some(first) = word.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{word} {}", SUFFIXES[rng.random_range(0..SUFFIXES.len())])
}

impl Customer {
    /// Draw customer `index`; `months` is the length of the simulation.
    pub fn draw(rng: &mut ChaCha8Rng, index: u32, months: usize, collectors: u32) -> Customer {
        let mut pick = rng.random_range(0..100);
        let &(country, currency, language, _) = COUNTRIES
            .iter()
            .find(|c| {
                if pick < c.3 {
                    true
                } else {
                    pick -= c.3;
                    false
                }
            })
            .unwrap_or(&COUNTRIES[0]);
        let (segment, amount_usd, per_month) = match rng.random_range(0..100) {
            0..10 => ("enterprise", 25_000.0, 9.0),
            10..40 => ("mid-market", 6_000.0, 5.0),
            _ => ("smb", 900.0, 2.8),
        };
        let rate = FX
            .iter()
            .find(|f| f.0 == currency)
            .map(|f| f.1)
            .unwrap_or(1.0);
        let terms_days = [15, 30, 30, 30, 45, 60][rng.random_range(0..6)];
        let archetype = Archetype::draw(rng);
        let limit = (amount_usd / rate * per_month * 2.0 / 1000.0).round() * 1000.0;
        Customer {
            index,
            id: format!("C{index:06}"),
            name: company_name(rng),
            country,
            currency,
            language,
            segment,
            terms_days,
            credit_limit_cents: (limit * 100.0) as i64,
            collector: index % collectors.max(1),
            archetype,
            invoices_per_month: per_month * rng.random_range(0.6..1.4),
            amount_log_mean: (amount_usd / rate).ln(),
            default_month: rng.random_range(months / 3..months.max(2)),
            update_month: rng
                .random_bool(0.2)
                .then(|| rng.random_range(0..months.max(1))),
        }
    }

    pub fn email(&self, version: u8) -> String {
        let base: String = self.name.split(' ').next().unwrap_or("ap").to_lowercase();
        if version == 0 {
            format!("ap@{base}.example")
        } else {
            format!("accounts.payable@{base}.example")
        }
    }

    pub fn phone(&self) -> String {
        format!("+1-555-{:04}", self.index % 10_000)
    }
}

/// A collector on the receivables team.
pub struct Collector {
    pub id: String,
    pub name: String,
    pub email: String,
    pub languages: &'static str,
    pub capacity: i32,
}

const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Luis",
];
const LAST: &[&str] = &[
    "Schmidt", "Okafor", "Martin", "Tanaka", "Rossi", "Nguyen", "Smith", "Dubois", "Jansen",
    "Garcia",
];
const LANGS: &[&str] = &[
    "en", "en,fr", "en,de", "en,es", "en,ja", "en,nl", "de,en,fr",
];

impl Collector {
    pub fn draw(rng: &mut ChaCha8Rng, index: u32) -> Collector {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        Collector {
            id: format!("COL{index:03}"),
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}{index}@arstream.example",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            languages: LANGS[rng.random_range(0..LANGS.len())],
            capacity: rng.random_range(40..90),
        }
    }
}

pub use crate::dates::{date, days};
