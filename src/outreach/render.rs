//! Messages in words: the policy's minijinja templates (`<template>.<language>.txt` in its
//! templates folder), one per language, chosen by the customer's `language` (`fr-CA`, then
//! `fr`, then the policy's default language). An email template's first line may be
//! `Subject: …`; the rest is the body.
//!
//! Templates see `customer`, `collector`, `invoices` (each with `invoice_id`, `due_date`,
//! `open_amount`, `currency`, `days_past_due`, `stage`), the same split into `past_due` and
//! `not_yet_due`, `totals`, `totals_past_due` and `totals_not_yet_due` (open per currency),
//! `rule`, `stage`, `day`, `payment_link`, `message_id` and `language`, and two filters that
//! write as the language does: `money(currency)` and `date`.
//!
//! Every template is rendered once on sample values when the policy loads, so that a typo
//! (an undefined variable) is found with its file and line before anything goes out.
//!
//! The payment link's `token` signs the customer, the invoices and an expiry
//! ([`link_token`]), so that a page can tell a link it was sent from one a reader wrote.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use minijinja::{Environment, State, UndefinedBehavior, Value};
use serde::Serialize;
use sha2::Sha256;

use super::OutreachError;

/// A customer as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
}

/// A collector as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One invoice of a message.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceView {
    pub invoice_id: String,
    pub invoice_date: NaiveDate,
    pub due_date: NaiveDate,
    pub amount: f64,
    pub open_amount: f64,
    pub currency: String,
    pub days_past_due: i64,
    pub rule: String,
    pub stage: String,
}

/// The open amount of a message in one currency.
#[derive(Debug, Clone, Serialize)]
pub struct TotalView {
    pub currency: String,
    pub open_amount: f64,
}

/// Everything a template may use.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub customer: CustomerView,
    pub collector: CollectorView,
    pub invoices: Vec<InvoiceView>,
    pub totals: Vec<TotalView>,
    /// The invoices past their due date, and those due today or later: a reminder states
    /// them apart (a total "past due" counts only the first).
    pub past_due: Vec<InvoiceView>,
    pub not_yet_due: Vec<InvoiceView>,
    pub totals_past_due: Vec<TotalView>,
    pub totals_not_yet_due: Vec<TotalView>,
    pub rule: String,
    pub stage: String,
    pub day: NaiveDate,
    pub audience: String,
    pub language: String,
    pub message_id: String,
    pub sender: String,
    pub payment_link: Option<String>,
}

impl Context {
    /// The context of a message about `invoices` (oldest due first); the rest as given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        customer: CustomerView,
        collector: CollectorView,
        invoices: Vec<InvoiceView>,
        (rule, stage): (String, String),
        day: NaiveDate,
        audience: String,
        language: String,
        (message_id, sender): (String, String),
    ) -> Context {
        let (past_due, not_yet_due): (Vec<InvoiceView>, Vec<InvoiceView>) =
            invoices.iter().cloned().partition(|i| i.days_past_due > 0);
        Context {
            customer,
            collector,
            totals: Context::totals_of(&invoices),
            totals_past_due: Context::totals_of(&past_due),
            totals_not_yet_due: Context::totals_of(&not_yet_due),
            invoices,
            past_due,
            not_yet_due,
            rule,
            stage,
            day,
            audience,
            language,
            message_id,
            sender,
            payment_link: None,
        }
    }

    /// Sample values, for rendering every template once when a policy loads: one invoice
    /// past due, one not yet due, every optional value present.
    fn sample(language: &str) -> Context {
        let day = NaiveDate::from_ymd_opt(2025, 12, 31).expect("a date");
        let invoice = |id: &str, days_past_due: i64| InvoiceView {
            invoice_id: id.into(),
            invoice_date: day - chrono::Days::new(60),
            due_date: day - chrono::Days::new(30),
            amount: 1234.5,
            open_amount: 1000.0,
            currency: "USD".into(),
            days_past_due,
            rule: "rule".into(),
            stage: "stage".into(),
        };
        let mut context = Context::new(
            CustomerView {
                id: "C-SAMPLE".into(),
                name: "Sample Customer".into(),
                email: Some("ap@sample.example".into()),
                phone: Some("+15550100".into()),
                country: Some("US".into()),
            },
            CollectorView {
                id: Some("K-SAMPLE".into()),
                name: Some("Sample Collector".into()),
                email: Some("collector@sample.example".into()),
            },
            vec![invoice("INV-1", 30), invoice("INV-2", -3)],
            ("rule".into(), "stage".into()),
            day,
            "customer".into(),
            language.into(),
            ("<sample@example.com>".into(), "ar@example.com".into()),
        );
        context.payment_link = Some("https://pay.example/sample".into());
        context
    }

    /// The totals of `invoices` per currency, in the order the currencies first come.
    pub fn totals_of(invoices: &[InvoiceView]) -> Vec<TotalView> {
        let mut totals: Vec<TotalView> = Vec::new();
        for invoice in invoices {
            match totals.iter_mut().find(|t| t.currency == invoice.currency) {
                Some(t) => t.open_amount += invoice.open_amount,
                None => totals.push(TotalView {
                    currency: invoice.currency.clone(),
                    open_amount: invoice.open_amount,
                }),
            }
        }
        totals
    }
}

/// A message in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub language: String,
    pub subject: String,
    pub body: String,
}

/// The templates of a policy, loaded once.
pub struct Templates {
    env: Environment<'static>,
    /// template → the languages it has.
    languages: BTreeMap<String, Vec<String>>,
    default_language: String,
    payment_link: bool,
    /// The key of payment links' tokens.
    link_secret: Vec<u8>,
    link_days: i64,
    folder: std::path::PathBuf,
}

impl Templates {
    /// Load every `<template>.<language>.txt` of `folder`; a template that does not parse is
    /// an error naming its file and line.
    pub fn load(
        folder: &Path,
        default_language: &str,
        payment_link: Option<(&str, &[u8], i64)>,
    ) -> Result<Templates, OutreachError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_filter("money", money);
        env.add_filter("date", date);
        let mut languages: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let entries = std::fs::read_dir(folder).map_err(|e| {
            OutreachError::Template(format!("templates folder {}: {e}", folder.display()))
        })?;
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".txt") else {
                continue;
            };
            let Some((template, language)) = stem.split_once('.') else {
                continue;
            };
            let source = std::fs::read_to_string(&file)
                .map_err(|e| OutreachError::Template(format!("{}: {e}", file.display())))?;
            env.add_template_owned(stem.to_string(), source)
                .map_err(|e| OutreachError::Template(template_error(&file, &e)))?;
            (languages.entry(template.to_string()).or_default()).push(language.to_string());
        }
        if let Some((link, _, _)) = payment_link {
            env.add_template_owned("payment_link", link.to_string())
                .map_err(|e| OutreachError::Template(format!("payment_link: {e}")))?;
        }
        let (link_secret, link_days) =
            payment_link.map_or((Vec::new(), 0), |(_, s, d)| (s.to_vec(), d));
        Ok(Templates {
            env,
            languages,
            default_language: default_language.to_string(),
            payment_link: payment_link.is_some(),
            link_secret,
            link_days,
            folder: folder.to_path_buf(),
        })
    }

    /// Render every template in every language it has, and the payment link, on sample
    /// values: the first that fails is an error naming its file and line.
    pub fn check(&self) -> Result<(), OutreachError> {
        for (template, languages) in &self.languages {
            for language in languages {
                let mut context = Context::sample(language);
                context.payment_link = self.payment_link(&context)?;
                self.render(template, &context)?;
            }
        }
        Ok(())
    }

    /// The language `template` is written in for a reader of `wanted`: the tag itself, its
    /// primary language, or the default.
    pub fn language_for(&self, template: &str, wanted: Option<&str>) -> String {
        let have = self
            .languages
            .get(template)
            .map_or(&[][..], |v| v.as_slice());
        let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
        if let Some(w) = wanted {
            if let Some(l) = have.iter().find(|l| l.eq_ignore_ascii_case(w)) {
                return l.clone();
            }
            let primary = w.split(['-', '_']).next().unwrap_or(w);
            if let Some(l) = have.iter().find(|l| l.eq_ignore_ascii_case(primary)) {
                return l.clone();
            }
        }
        self.default_language.clone()
    }

    /// The payment link of `context`, when the policy has a pattern. Its template sees
    /// `customer_id`, `invoice_ids` (comma-separated), `day`, `message_id`, and `expires`
    /// (Unix seconds) with `token`, the [`link_token`] of the three.
    pub fn payment_link(&self, context: &Context) -> Result<Option<String>, OutreachError> {
        if !self.payment_link {
            return Ok(None);
        }
        let ids: Vec<&str> = context
            .invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        let invoice_ids = ids.join(",");
        let expires = (context.day + chrono::Days::new(self.link_days as u64 + 1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp();
        let token = link_token(
            &self.link_secret,
            &context.customer.id,
            &invoice_ids,
            expires,
        );
        let template = self
            .env
            .get_template("payment_link")
            .expect("added at load");
        let link = template
            .render(minijinja::context! {
                customer_id => context.customer.id,
                invoice_ids => invoice_ids,
                day => context.day,
                message_id => context.message_id,
                expires => expires,
                token => token,
            })
            .map_err(|e| OutreachError::Template(format!("payment_link: {e}")))?;
        Ok(Some(link))
    }

    /// `template` in `context.language` (which [`Templates::language_for`] chose). An error
    /// names the template's file and line.
    pub fn render(&self, template: &str, context: &Context) -> Result<Rendered, OutreachError> {
        let name = format!("{template}.{}", context.language);
        let file = self.folder.join(format!("{name}.txt"));
        let compiled = self
            .env
            .get_template(&name)
            .map_err(|e| OutreachError::Template(format!("template {}: {e}", file.display())))?;
        let text = compiled
            .render(context)
            .map_err(|e| OutreachError::Template(template_error(&file, &e)))?;
        let (subject, body) = match text.strip_prefix("Subject:") {
            Some(rest) => {
                let (subject, body) = rest.split_once('\n').unwrap_or((rest, ""));
                (
                    subject.trim().to_string(),
                    body.trim_start_matches(['\r', '\n']),
                )
            }
            None => (String::new(), text.as_str()),
        };
        Ok(Rendered {
            language: context.language.clone(),
            subject,
            body: body.trim_end().to_string() + "\n",
        })
    }
}

/// The token of a payment link: the hex HMAC-SHA256, keyed by the policy's link secret, of
/// `customer_id`, `invoice_ids` and `expires` (Unix seconds) joined by line feeds. A payment
/// page computes the same over the link's values and refuses a link whose token differs or
/// whose `expires` is past (`docs/outreach.md` shows how).
pub fn link_token(secret: &[u8], customer_id: &str, invoice_ids: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("{customer_id}\n{invoice_ids}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn template_error(file: &Path, e: &minijinja::Error) -> String {
    let what = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("{}:{line}: {what}", file.display()),
        None => format!("{}: {what}", file.display()),
    }
}

/// The language of the template being rendered (`language` of its context).
fn language_of(state: &State) -> String {
    state
        .lookup("language")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "en".into())
}

/// How many decimals `currency` is written with.
fn decimals(currency: &str) -> usize {
    match currency {
        "JPY" | "KRW" | "CLP" | "ISK" | "VND" => 0,
        "BHD" | "KWD" | "OMR" | "TND" | "JOD" => 3,
        _ => 2,
    }
}

/// `amount` as `language` writes it, with its currency code: `1,234.50 USD`,
/// `1.234,50 EUR`, `1 234,50 EUR`, `¥`-less `12,345 JPY`.
pub fn format_money(amount: f64, currency: &str, language: &str) -> String {
    let places = decimals(currency);
    let fixed = format!("{:.*}", places, amount.abs());
    let (whole, fraction) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let primary = language.split(['-', '_']).next().unwrap_or(language);
    let (group, point) = match primary {
        "de" | "nl" | "es" | "it" | "pt" | "da" | "id" | "tr" => (".", ","),
        "fr" | "sv" | "nb" | "fi" | "pl" | "cs" | "ru" => ("\u{202f}", ","),
        _ => (",", "."),
    };
    let digits: Vec<char> = whole.chars().collect();
    let mut grouped = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push_str(group);
        }
        grouped.push(*c);
    }
    let sign = if amount < 0.0 && fixed.chars().any(|c| c != '0' && c != '.') {
        "-"
    } else {
        ""
    };
    match fraction.is_empty() {
        true => format!("{sign}{grouped} {currency}"),
        false => format!("{sign}{grouped}{point}{fraction} {currency}"),
    }
}

/// `day` as `language` writes a date.
pub fn format_date(day: NaiveDate, language: &str) -> String {
    let pattern = match language {
        "en-US" | "en" => "%b %-d, %Y",
        l if l.starts_with("en") => "%-d %b %Y",
        l if l.starts_with("de") => "%d.%m.%Y",
        l if l.starts_with("nl") => "%d-%m-%Y",
        l if l.starts_with("fr") || l.starts_with("es") || l.starts_with("it") => "%d/%m/%Y",
        l if l.starts_with("ja") || l.starts_with("zh") => "%Y/%m/%d",
        _ => "%Y-%m-%d",
    };
    day.format(pattern).to_string()
}

fn money(state: &State, amount: f64, currency: String) -> String {
    format_money(amount, &currency, &language_of(state))
}

fn date(state: &State, value: Value) -> Result<String, minijinja::Error> {
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    let day = text.parse::<NaiveDate>().map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("date: '{text}' is not a date"),
        )
    })?;
    Ok(format_date(day, &language_of(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_the_language_writes_it() {
        assert_eq!(format_money(1234.5, "USD", "en-US"), "1,234.50 USD");
        assert_eq!(format_money(1234.5, "EUR", "de-DE"), "1.234,50 EUR");
        assert_eq!(
            format_money(1234567.0, "EUR", "fr-FR"),
            "1\u{202f}234\u{202f}567,00 EUR"
        );
        assert_eq!(format_money(12345.4, "JPY", "ja-JP"), "12,345 JPY");
        assert_eq!(format_money(-5.0, "GBP", "en-GB"), "-5.00 GBP");
        assert_eq!(format_money(999.999, "USD", "en"), "1,000.00 USD");
        let d = NaiveDate::from_ymd_opt(2025, 12, 3).unwrap();
        assert_eq!(format_date(d, "de-DE"), "03.12.2025");
        assert_eq!(format_date(d, "en-US"), "Dec 3, 2025");
    }

    #[test]
    fn a_template_is_chosen_by_language_and_a_typo_in_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "r.en.txt",
            "Subject: Due {{ totals[0].open_amount | money(totals[0].currency) }}\n\nDear {{ customer.name }}",
        );
        write("r.fr.txt", "Subject: Échu\n\nBonjour {{ customer.name }}");
        write("bad.en.txt", "{{ customer.nmae }}");
        let t = Templates::load(
            dir.path(),
            "en",
            Some((
                "https://pay.example/{{ customer_id }}?x={{ expires }}&t={{ token }}",
                b"k".as_slice(),
                30,
            )),
        )
        .unwrap();
        assert_eq!(t.language_for("r", Some("fr-CA")), "fr");
        assert_eq!(t.language_for("r", Some("ja-JP")), "en");
        let invoices = vec![InvoiceView {
            invoice_id: "I1".into(),
            invoice_date: NaiveDate::from_ymd_opt(2025, 11, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
            amount: 1200.0,
            open_amount: 1200.0,
            currency: "EUR".into(),
            days_past_due: 30,
            rule: "r".into(),
            stage: "s".into(),
        }];
        let mut c = Context::new(
            CustomerView {
                id: "C1".into(),
                name: "Acme".into(),
                email: None,
                phone: None,
                country: None,
            },
            CollectorView {
                id: None,
                name: None,
                email: None,
            },
            invoices,
            ("r".into(), "s".into()),
            NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            "customer".into(),
            "en".into(),
            ("m".into(), "ar@example.com".into()),
        );
        let r = t.render("r", &c).unwrap();
        assert_eq!(
            (r.subject.as_str(), r.body.as_str()),
            ("Due 1,200.00 EUR", "Dear Acme\n")
        );
        // The link's token signs the customer, the invoices and the expiry: valid the 30
        // days after the message's day (2025-12-31), up to 2026-01-31 00:00 UTC.
        let expires = 1_769_817_600;
        let token = link_token(b"k", "C1", "I1", expires);
        assert_eq!(
            t.payment_link(&c).unwrap().unwrap(),
            format!("https://pay.example/C1?x={expires}&t={token}")
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"C1\nI1\n1769817600");
        assert_eq!(token, hex::encode(mac.finalize().into_bytes()));
        c.language = "fr".into();
        assert_eq!(t.render("r", &c).unwrap().body, "Bonjour Acme\n");
        c.language = "en".into();
        let e = t.render("bad", &c).unwrap_err().to_string();
        assert!(e.contains("bad.en.txt:1: undefined value"), "{e}");
        // The check at load renders every template on sample values: the typo is found then.
        let e = t.check().unwrap_err().to_string();
        assert!(e.contains("bad.en.txt:1: undefined value"), "{e}");
    }
}
