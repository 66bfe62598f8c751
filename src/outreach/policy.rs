//! Outreach policies as files (`pipelines/outreach.toml`): rules whose trigger is SQL over the
//! view `outreach_invoices` (or `outreach_candidates`, with risk segments), each a sequence of
//! stages by days past due, a channel and template per stage, a minimum open amount, and a
//! send window in a time zone. `docs/outreach.md` documents every key.
//!
//! A policy is checked whole when loaded; the first problem is reported with its file and line.
//! A trigger is SQL, so it is checked when it first meets the engine (see [`super::candidates`]),
//! with the same file and line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use serde::Deserialize;
use toml::Spanned;

use crate::pipeline::spec::{SpecError, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    sender: Spanned<String>,
    #[serde(default)]
    reply_to: Option<Spanned<String>>,
    default_language: Option<Spanned<String>>,
    templates: Option<Spanned<String>>,
    payment_link: Option<Spanned<String>>,
    payment_link_days: Option<Spanned<i64>>,
    opt_outs: Option<Spanned<String>>,
    ledger: Option<Spanned<String>>,
    candidates: Option<Spanned<String>>,
    send_window: Option<Spanned<RawWindow>>,
    #[serde(default)]
    channels: RawChannels,
    retry: Option<Spanned<RawRetry>>,
    rules: Spanned<Vec<Spanned<RawRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: Spanned<String>,
    end: Spanned<String>,
    timezone: Spanned<String>,
    days: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannels {
    webhook: Option<Spanned<RawWebhook>>,
    sms: Option<Spanned<RawSms>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    url: Option<Spanned<String>>,
    body: Option<Spanned<String>>,
    content_type: Option<String>,
    token_header: Option<String>,
    token_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    first_wait: Spanned<String>,
    max_wait: Spanned<String>,
    resend_first_wait: Option<Spanned<String>>,
    resend_max_wait: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    trigger: Spanned<String>,
    #[serde(default)]
    min_open_amount: f64,
    stages: Spanned<Vec<Spanned<RawStage>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    day: i32,
    channel: Spanned<String>,
    template: Spanned<String>,
    #[serde(default)]
    to: Option<Spanned<String>>,
}

/// How a stage reaches its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
        }
    }
}

/// Who a stage writes to: the customer, or (an escalation) the customer's collector.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Customer,
    Collector,
}

impl Audience {
    pub fn name(self) -> &'static str {
        match self {
            Audience::Customer => "customer",
            Audience::Collector => "collector",
        }
    }
}

/// The one message a customer may have a day: to the customer, or to its collector by each
/// channel (an escalation email and a CRM case by webhook are two messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub audience: Audience,
    /// The channel, for the collector; none for the customer (one message, whatever channel).
    pub channel: Option<Channel>,
}

impl Slot {
    pub fn of(stage: &Stage) -> Slot {
        Slot {
            audience: stage.audience,
            channel: (stage.audience == Audience::Collector).then_some(stage.channel),
        }
    }

    /// `customer`, `collector-email`, …: in message ids.
    pub fn name(self) -> String {
        match self.channel {
            None => self.audience.name().to_string(),
            Some(c) => format!("{}-{}", self.audience.name(), c.name()),
        }
    }
}

/// One step of a sequence: on and after `day` days past due (negative: before the due date).
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub day: i32,
    pub channel: Channel,
    pub template: String,
    pub audience: Audience,
}

/// A rule: which invoices (`trigger`, SQL), from what open amount, and its stages by day.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub trigger: String,
    /// In the reporting currency: an invoice with less open is as if the trigger did not hold.
    pub min_open_amount: f64,
    /// Ordered by `day`, strictly increasing.
    pub stages: Vec<Stage>,
    /// The line of its trigger, for SQL errors.
    pub line: usize,
}

impl Rule {
    /// The latest stage due at `days_past_due`: a stage missed (the service was down, or the
    /// invoice was suppressed on its day) is never sent late once a later one is due.
    pub fn stage_due(&self, days_past_due: i64) -> Option<&Stage> {
        self.stages
            .iter()
            .rev()
            .find(|s| i64::from(s.day) <= days_past_due)
    }
}

/// When messages may leave: `start` to `end` local time on `days`, in `timezone`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendWindow {
    pub start: NaiveTime,
    /// Exclusive; 24:00 is the end of the day.
    pub end: Option<NaiveTime>,
    pub timezone: chrono_tz::Tz,
    pub days: Vec<Weekday>,
}

impl SendWindow {
    /// Whether `now` is inside the window.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone);
        let time = local.time();
        self.days.contains(&local.weekday())
            && time >= self.start
            && self.end.is_none_or(|end| time < end)
    }

    /// The next time the window opens after `now` (within two weeks; a window with days
    /// always opens within one).
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.timezone).date_naive();
        (0..15).find_map(|ahead| {
            let day = local + chrono::Days::new(ahead);
            if !self.days.contains(&day.weekday()) {
                return None;
            }
            let opens = self
                .timezone
                .from_local_datetime(&day.and_time(self.start))
                .earliest()?
                .with_timezone(&Utc);
            (opens > now).then_some(opens)
        })
    }

    /// As a person reads it: `Mon–Fri 08:00–18:00 Europe/Paris`.
    pub fn describe(&self) -> String {
        let days: Vec<String> = self.days.iter().map(|d| d.to_string()).collect();
        let end = self
            .end
            .map_or("24:00".to_string(), |e| e.format("%H:%M").to_string());
        format!(
            "{} {}–{} {}",
            days.join(","),
            self.start.format("%H:%M"),
            end,
            self.timezone
        )
    }
}

/// The SMS gateway: where and in what shape a message is posted.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsGateway {
    /// None: messages go to the file outbox (also when `ARSTREAM_SMS_URL` is unset).
    pub url: Option<String>,
    /// A minijinja template of the request body, given `to`, `text`, `message_id`, `sender`.
    pub body: String,
    pub content_type: String,
    /// The header that carries `ARSTREAM_SMS_TOKEN`, after `token_prefix`.
    pub token_header: String,
    pub token_prefix: String,
}

/// How transient failures (a server down, a 5xx) are retried: within one `send`
/// (`attempts`, waits from `first_wait` doubling up to `max_wait`), and by the service while
/// messages wait (from `resend_first_wait` doubling up to `resend_max_wait`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
    pub resend_first_wait: Duration,
    pub resend_max_wait: Duration,
}

/// The longest wait between two tries within one send: longer, and a send would hold the
/// ledger (and a user's terminal) for minutes; the service retries later instead.
const MAX_WAIT_WITHIN_SEND: Duration = Duration::from_secs(60);

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// The email sender (`From`), a mailbox such as `Accounts Receivable <ar@example.com>`.
    pub sender: String,
    pub reply_to: Option<String>,
    pub default_language: String,
    /// The folder of templates, `<template>.<language>.txt`.
    pub templates: PathBuf,
    /// A minijinja template of the payment link (given `customer_id`, `invoice_ids`, `token`,
    /// `expires`, …).
    pub payment_link: Option<String>,
    /// How many days a payment link's token is valid after the day of its message.
    pub payment_link_days: i64,
    /// A CSV file of customers not to write to (`customer_id`, optional `reason`).
    pub opt_outs: Option<PathBuf>,
    /// Where the ledger is kept; none: `<state>/outreach` (a local state folder).
    pub ledger: Option<PathBuf>,
    /// The view the rules choose among, when not the customers' invoices
    /// (`outreach_invoices`): `dispute_escalations`, for the disputes past their SLA.
    pub candidates: Option<String>,
    pub window: Option<SendWindow>,
    /// None: webhooks go to the file outbox (also when `ARSTREAM_WEBHOOK_URL` is unset).
    pub webhook_url: Option<String>,
    pub sms: SmsGateway,
    pub retry: Retry,
    pub rules: Vec<Rule>,
}

/// The default SMS request: JSON with the recipient and the text.
const SMS_BODY: &str = r#"{"to": {{ to | tojson }}, "text": {{ text | tojson }}, "reference": {{ message_id | tojson }}}"#;

/// Parse `"200ms"`, `"5s"`, `"1m"`.
fn parse_wait(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    match text.to_ascii_lowercase().get(..3)? {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

/// Whether `name` is letters, digits, `-` or `_` (names go into file names and message ids).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Read and check a policy file.
pub fn load(file: &Path) -> Result<Policy, SpecError> {
    let (shown, text) = crate::pipeline::spec::read_spec(file, "outreach policy")?;
    parse(&shown, &text, file.parent().unwrap_or(Path::new(".")))
}

/// Check a policy's text (`file` names it in errors; relative paths are against `base`).
pub fn parse(file: &str, text: &str, base: &Path) -> Result<Policy, SpecError> {
    let error = |offset: usize, message: String| SpecError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        error(offset, e.message().trim().to_string())
    })?;
    let path = |value: &Spanned<String>| base.join(value.get_ref());

    let name = raw.name.get_ref().trim().to_string();
    if !is_plain_name(&name) {
        return Err(error(
            raw.name.span().start,
            format!("name '{name}' must be letters, digits, '-' or '_'"),
        ));
    }
    let mailbox = |value: &Spanned<String>, key: &str| {
        value
            .get_ref()
            .parse::<lettre::message::Mailbox>()
            .map(|_| value.get_ref().clone())
            .map_err(|e| {
                error(
                    value.span().start,
                    format!(
                        "{key} '{}' is not an email address such as 'Accounts Receivable <ar@example.com>': {e}",
                        value.get_ref()
                    ),
                )
            })
    };
    let sender = mailbox(&raw.sender, "sender")?;
    let reply_to = raw
        .reply_to
        .as_ref()
        .map(|r| mailbox(r, "reply_to"))
        .transpose()?;
    let default_language = match &raw.default_language {
        Some(l) if l.get_ref().trim().is_empty() => {
            return Err(error(l.span().start, "default_language is empty".into()));
        }
        Some(l) => l.get_ref().trim().to_string(),
        None => "en".to_string(),
    };
    let templates = raw
        .templates
        .as_ref()
        .map_or_else(|| base.join("templates"), path);
    if !templates.is_dir() {
        let offset = raw.templates.as_ref().map_or(0, |t| t.span().start);
        return Err(error(
            offset,
            format!("templates folder {} does not exist", templates.display()),
        ));
    }
    if let Some(link) = &raw.payment_link {
        let mut env = minijinja::Environment::new();
        env.add_template("payment_link", link.get_ref())
            .map_err(|e| error(link.span().start, format!("payment_link: {e}")))?;
    }
    let opt_outs = raw.opt_outs.as_ref().map(path);
    if let (Some(file), Some(raw_file)) = (&opt_outs, &raw.opt_outs)
        && !file.is_file()
    {
        return Err(error(
            raw_file.span().start,
            format!("opt_outs file {} does not exist", file.display()),
        ));
    }

    let window = match raw.send_window {
        None => None,
        Some(w) => {
            let w = w.into_inner();
            let time = |t: &Spanned<String>, key: &str| -> Result<Option<NaiveTime>, SpecError> {
                if t.get_ref() == "24:00" && key == "end" {
                    return Ok(None);
                }
                NaiveTime::parse_from_str(t.get_ref(), "%H:%M")
                    .map(Some)
                    .map_err(|_| {
                        error(
                            t.span().start,
                            format!("{key} '{}' is not a time HH:MM", t.get_ref()),
                        )
                    })
            };
            let start = time(&w.start, "start")?.expect("start is never 24:00");
            let end = time(&w.end, "end")?;
            if end.is_some_and(|e| e <= start) {
                return Err(error(
                    w.end.span().start,
                    "end must be after start (a window does not span midnight)".into(),
                ));
            }
            let timezone = w.timezone.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                error(
                    w.timezone.span().start,
                    format!(
                        "timezone '{}' is not an IANA time zone (such as Europe/Paris)",
                        w.timezone.get_ref()
                    ),
                )
            })?;
            let days = match &w.days {
                None => vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                Some(days) => {
                    let mut out = Vec::new();
                    for d in days.get_ref() {
                        let day = parse_weekday(d).ok_or_else(|| {
                            error(
                                days.span().start,
                                format!("'{d}' is not a day of the week (mon … sun)"),
                            )
                        })?;
                        out.push(day);
                    }
                    if out.is_empty() {
                        return Err(error(days.span().start, "days is empty".into()));
                    }
                    out
                }
            };
            Some(SendWindow {
                start,
                end,
                timezone,
                days,
            })
        }
    };

    let url = |value: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, SpecError> {
        match value {
            None => Ok(None),
            Some(v) => match url::Url::parse(v.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(v.get_ref().clone())),
                _ => Err(error(
                    v.span().start,
                    format!("{key} '{}' is not an http(s) URL", v.get_ref()),
                )),
            },
        }
    };
    let webhook_url = match &raw.channels.webhook {
        Some(w) => url(&w.get_ref().url, "webhook url")?,
        None => None,
    };
    let sms = match raw.channels.sms {
        None => SmsGateway {
            url: None,
            body: SMS_BODY.into(),
            content_type: "application/json".into(),
            token_header: "Authorization".into(),
            token_prefix: "Bearer ".into(),
        },
        Some(s) => {
            let s = s.into_inner();
            let body = s
                .body
                .as_ref()
                .map_or(SMS_BODY.to_string(), |b| b.get_ref().clone());
            let mut env = minijinja::Environment::new();
            if let Err(e) = env.add_template("sms body", &body) {
                let offset = s.body.as_ref().map_or(0, |b| b.span().start);
                return Err(error(offset, format!("sms body: {e}")));
            }
            SmsGateway {
                url: url(&s.url, "sms url")?,
                body,
                content_type: s.content_type.unwrap_or_else(|| "application/json".into()),
                token_header: s.token_header.unwrap_or_else(|| "Authorization".into()),
                token_prefix: s.token_prefix.unwrap_or_else(|| "Bearer ".into()),
            }
        }
    };
    let retry = match raw.retry {
        None => Retry {
            attempts: 4,
            first_wait: Duration::from_millis(200),
            max_wait: Duration::from_secs(5),
            resend_first_wait: Duration::from_secs(60),
            resend_max_wait: Duration::from_secs(30 * 60),
        },
        Some(r) => {
            let span = r.span().start;
            let r = r.into_inner();
            let wait = |w: &Spanned<String>| {
                parse_wait(w.get_ref()).ok_or_else(|| {
                    error(
                        w.span().start,
                        format!("'{}' is not a wait such as 200ms, 5s or 1m", w.get_ref()),
                    )
                })
            };
            if !(1..=20).contains(&r.attempts) {
                return Err(error(span, "retry attempts must be 1 to 20".into()));
            }
            let (first_wait, max_wait) = (wait(&r.first_wait)?, wait(&r.max_wait)?);
            if max_wait > MAX_WAIT_WITHIN_SEND {
                return Err(error(
                    r.max_wait.span().start,
                    format!(
                        "max_wait '{}' is longer than {} s: a send waits at most that long between two tries (resend_max_wait is for the service's retries)",
                        r.max_wait.get_ref(),
                        MAX_WAIT_WITHIN_SEND.as_secs()
                    ),
                ));
            }
            if first_wait > max_wait {
                return Err(error(
                    r.first_wait.span().start,
                    format!(
                        "first_wait '{}' is longer than max_wait '{}'",
                        r.first_wait.get_ref(),
                        r.max_wait.get_ref()
                    ),
                ));
            }
            let resend_first_wait = match &r.resend_first_wait {
                Some(w) => wait(w)?,
                None => Duration::from_secs(60),
            };
            let resend_max_wait = match &r.resend_max_wait {
                Some(w) => wait(w)?,
                None => Duration::from_secs(30 * 60).max(resend_first_wait),
            };
            if resend_first_wait.is_zero() || resend_first_wait > resend_max_wait {
                let at = r
                    .resend_first_wait
                    .as_ref()
                    .map_or(span, |w| w.span().start);
                return Err(error(
                    at,
                    "resend_first_wait must be more than 0 and no longer than resend_max_wait"
                        .into(),
                ));
            }
            Retry {
                attempts: r.attempts,
                first_wait,
                max_wait,
                resend_first_wait,
                resend_max_wait,
            }
        }
    };
    let payment_link_days = match &raw.payment_link_days {
        None => 30,
        Some(d) if (1..=366).contains(d.get_ref()) => *d.get_ref(),
        Some(d) => {
            return Err(error(
                d.span().start,
                "payment_link_days must be 1 to 366".into(),
            ));
        }
    };

    let rules_span = raw.rules.span().start;
    let mut rules: Vec<Rule> = Vec::new();
    for raw_rule in raw.rules.into_inner() {
        let rule_span = raw_rule.span().start;
        let r = raw_rule.into_inner();
        let rule_name = r.name.get_ref().trim().to_string();
        if !is_plain_name(&rule_name) {
            return Err(error(
                r.name.span().start,
                format!("rule name '{rule_name}' must be letters, digits, '-' or '_'"),
            ));
        }
        if rules.iter().any(|x| x.name == rule_name) {
            return Err(error(
                r.name.span().start,
                format!("a second rule is called '{rule_name}'"),
            ));
        }
        if r.trigger.get_ref().trim().is_empty() {
            return Err(error(r.trigger.span().start, "trigger is empty".into()));
        }
        if r.trigger.get_ref().contains(';') {
            return Err(error(
                r.trigger.span().start,
                "trigger is one SQL predicate (no ';')".into(),
            ));
        }
        if !r.min_open_amount.is_finite() || r.min_open_amount < 0.0 {
            return Err(error(rule_span, "min_open_amount must be 0 or more".into()));
        }
        let mut stages: Vec<Stage> = Vec::new();
        if r.stages.get_ref().is_empty() {
            return Err(error(r.stages.span().start, "a rule needs stages".into()));
        }
        for raw_stage in r.stages.into_inner() {
            let span = raw_stage.span().start;
            let s = raw_stage.into_inner();
            let stage_name = s.name.get_ref().trim().to_string();
            if !is_plain_name(&stage_name) {
                return Err(error(
                    s.name.span().start,
                    format!("stage name '{stage_name}' must be letters, digits, '-' or '_'"),
                ));
            }
            if let Some(last) = stages.last() {
                if last.day >= s.day {
                    return Err(error(
                        span,
                        format!(
                            "stage '{stage_name}' (day {}) must come after stage '{}' (day {}): stages go in order of day",
                            s.day, last.name, last.day
                        ),
                    ));
                }
                if stages.iter().any(|x| x.name == stage_name) {
                    return Err(error(
                        s.name.span().start,
                        format!("a second stage is called '{stage_name}'"),
                    ));
                }
            }
            let channel = match s.channel.get_ref().as_str() {
                "email" => Channel::Email,
                "sms" => Channel::Sms,
                "webhook" => Channel::Webhook,
                other => {
                    return Err(error(
                        s.channel.span().start,
                        format!("channel '{other}' is not email, sms or webhook"),
                    ));
                }
            };
            let audience = match s.to.as_ref().map(|t| t.get_ref().as_str()) {
                None | Some("customer") => Audience::Customer,
                Some("collector") => Audience::Collector,
                Some(other) => {
                    let offset = s.to.as_ref().map_or(span, |t| t.span().start);
                    return Err(error(
                        offset,
                        format!("to '{other}' is not customer or collector"),
                    ));
                }
            };
            if channel == Channel::Sms && audience == Audience::Collector {
                let offset = s.to.as_ref().map_or(span, |t| t.span().start);
                return Err(error(
                    offset,
                    format!(
                        "stage '{stage_name}': an SMS cannot go to the collector (the feed has no collector phone numbers): escalate by email or webhook"
                    ),
                ));
            }
            let template = s.template.get_ref().trim().to_string();
            let default = templates.join(format!("{template}.{default_language}.txt"));
            if !default.is_file() {
                return Err(error(
                    s.template.span().start,
                    format!(
                        "template '{template}' has no file in the default language: {} does not exist",
                        default.display()
                    ),
                ));
            }
            stages.push(Stage {
                name: stage_name,
                day: s.day,
                channel,
                template,
                audience,
            });
        }
        rules.push(Rule {
            name: rule_name,
            trigger: r.trigger.get_ref().trim().to_string(),
            min_open_amount: r.min_open_amount,
            stages,
            line: line_of(text, r.trigger.span().start),
        });
    }
    if rules.is_empty() {
        return Err(error(rules_span, "a policy needs at least one rule".into()));
    }
    let candidates = match raw.candidates {
        Some(view) => {
            let name = view.get_ref().trim().to_string();
            let plain = !name.is_empty()
                && (name.bytes())
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !plain {
                return Err(error(
                    view.span().start,
                    format!(
                        "candidates '{name}' is not the name of a view (like dispute_escalations)"
                    ),
                ));
            }
            Some(name)
        }
        None => None,
    };

    Ok(Policy {
        name,
        description: raw.description,
        file: PathBuf::from(file),
        sender,
        reply_to,
        default_language,
        templates,
        payment_link: raw.payment_link.map(|l| l.into_inner()),
        payment_link_days,
        opt_outs,
        ledger: raw.ledger.as_ref().map(path),
        candidates,
        window,
        webhook_url,
        sms,
        retry,
        rules,
    })
}

impl Policy {
    /// The error of a trigger that does not run, at the trigger's line.
    pub fn trigger_error(&self, rule: &Rule, message: impl std::fmt::Display) -> SpecError {
        SpecError {
            file: self.file.display().to_string(),
            line: rule.line,
            message: format!("rule '{}': trigger: {message}", rule.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/reminder.en.txt"),
            "Subject: x\n\nhi",
        )
        .unwrap();
        dir
    }

    const GOOD: &str = r#"
name = "dunning"
sender = "AR <ar@example.com>"

[send_window]
start = "08:00"
end = "18:00"
timezone = "Europe/Paris"

[[rules]]
name = "overdue"
trigger = "days_past_due >= 1"

[[rules.stages]]
name = "first"
day = 1
channel = "email"
template = "reminder"

[[rules.stages]]
name = "escalate"
day = 30
channel = "email"
template = "reminder"
to = "collector"
"#;

    #[test]
    fn a_good_policy_loads() {
        let dir = folder();
        let p = parse("p.toml", GOOD, dir.path()).unwrap();
        assert_eq!(p.rules[0].stages.len(), 2);
        assert_eq!(p.rules[0].stage_due(0), None);
        assert_eq!(p.rules[0].stage_due(7).unwrap().name, "first");
        assert_eq!(
            p.rules[0].stage_due(45).unwrap().audience,
            Audience::Collector
        );
        let w = p.window.unwrap();
        // 2026-12-01 is a Tuesday; 09:00 in Paris is 08:00 UTC.
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        assert!(w.is_open(at(8)));
        assert!(!w.is_open(at(17)));
        assert_eq!(
            w.next_open(at(17)).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 2, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_bad_policy_names_its_line() {
        let dir = folder();
        let bad = GOOD.replace(
            "channel = \"email\"\ntemplate = \"reminder\"\nto",
            "channel = \"fax\"\ntemplate = \"reminder\"\nto",
        );
        let e = parse("p.toml", &bad, dir.path()).unwrap_err();
        assert_eq!(e.line, 23, "{e}");
        assert!(e.to_string().contains("channel 'fax'"), "{e}");
        let e = parse("p.toml", &GOOD.replace("day = 30", "day = 1"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("in order of day"), "{e}");
        let e = parse(
            "p.toml",
            &GOOD.replace("Europe/Paris", "Mars/Olympus"),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (8, "p.toml"), "{e}");
        let e = parse(
            "p.toml",
            &GOOD.replace("template = \"reminder\"\nto", "template = \"final\"\nto"),
            dir.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("final.en.txt"), "{e}");
        let e = parse(
            "p.toml",
            &GOOD.replace("sender = \"AR <ar@example.com>\"", "sender = \"nobody\""),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn an_sms_to_the_collector_is_refused_where_it_is_written() {
        let dir = folder();
        let bad = GOOD.replace(
            "day = 30\nchannel = \"email\"",
            "day = 30\nchannel = \"sms\"",
        );
        let e = parse("p.toml", &bad, dir.path()).unwrap_err();
        assert_eq!(e.line, 25, "{e}");
        assert!(
            e.to_string().contains("an SMS cannot go to the collector"),
            "{e}"
        );
    }

    #[test]
    fn retry_waits_that_would_hold_a_send_for_minutes_are_refused() {
        let dir = folder();
        let with =
            |retry: &str| parse("p.toml", &format!("{GOOD}\n[retry]\n{retry}\n"), dir.path());
        let e = with("attempts = 3\nfirst_wait = \"10m\"\nmax_wait = \"5s\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("first_wait '10m' is longer than max_wait '5s'"),
            "{e}"
        );
        let e = with("attempts = 3\nfirst_wait = \"1s\"\nmax_wait = \"10m\"").unwrap_err();
        assert!(e.to_string().contains("longer than 60 s"), "{e}");
        let p = with(
            "attempts = 3\nfirst_wait = \"1s\"\nmax_wait = \"5s\"\nresend_first_wait = \"2s\"",
        )
        .unwrap();
        assert_eq!(p.retry.resend_first_wait, Duration::from_secs(2));
        assert_eq!(p.retry.resend_max_wait, Duration::from_secs(1800));
    }
}
