//! How a recorded message leaves: email over SMTP (lettre; the server from
//! `ARSTREAM_SMTP_URL`), webhooks (an HTTP POST of JSON signed with HMAC-SHA256 keyed by
//! `ARSTREAM_WEBHOOK_SECRET`), SMS through an HTTP gateway (its request shape in the policy,
//! its token from `ARSTREAM_SMS_TOKEN`), or the file outbox, whenever a channel has no server
//! configured. Every delivery carries the message's id (`Message-ID`, `Idempotency-Key`), so
//! a receiver can drop the one duplicate a crash may cause.
//!
//! A failure is transient (not delivered: no connection, SMTP 4xx, HTTP 5xx, 429 or 408; try
//! later), permanent (this message is refused: SMTP 5xx to its recipient or content, another
//! HTTP 4xx), a refusal of the sender (the server refuses us: SMTP 5xx to the greeting, TLS,
//! authentication or `MAIL FROM`, or a redirect of a POST: a configuration to fix, the
//! channel's messages wait), or unconfirmed (the message went whole and the answer was lost:
//! it may have arrived). See [`Failure`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::{self, Header, HeaderName, HeaderValue};
use sha2::Sha256;

use super::OutreachError;
use super::ledger::Message;
use super::policy::{Channel, Policy, SmsGateway};
use super::smtp::{SmtpError, SmtpServer};

/// How much of an error response's body is read (for the reason): a few KiB, however large
/// the body.
const ERROR_BODY_BYTES: usize = 4 * 1024;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not delivered; try again later. The server may say when (`Retry-After`).
    Transient(String, Option<Duration>),
    /// This message is refused for good.
    Permanent(String),
    /// The server refuses the sender: no message of the channel can go until its
    /// configuration is fixed; they wait.
    Refused(String),
    /// The message went whole and its answer was lost: it may have arrived.
    Unconfirmed(String),
}

impl Failure {
    /// The reason, as recorded.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Transient(r, _)
            | Failure::Permanent(r)
            | Failure::Refused(r)
            | Failure::Unconfirmed(r) => r,
        }
    }
}

impl From<SmtpError> for Failure {
    fn from(e: SmtpError) -> Failure {
        match e {
            SmtpError::Unavailable(r) => Failure::Transient(r, None),
            SmtpError::RefusedSender(r) => Failure::Refused(r),
            SmtpError::RefusedMessage(r) => Failure::Permanent(r),
            SmtpError::AnswerLost(r) => Failure::Unconfirmed(r),
        }
    }
}

/// Where a channel's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Smtp,
    Http,
    Outbox,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Smtp => "smtp",
            Via::Http => "http",
            Via::Outbox => "outbox",
        }
    }

    /// The via of `name` (as a message records it).
    pub fn of(name: &str) -> Option<Via> {
        match name {
            "smtp" => Some(Via::Smtp),
            "http" => Some(Via::Http),
            "outbox" => Some(Via::Outbox),
            _ => None,
        }
    }
}

/// The `Content-Language` header of an email.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The channels of a policy, with the servers the environment configures.
pub struct Channels {
    smtp: Option<SmtpServer>,
    http: reqwest::Client,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    sms: SmsGateway,
    /// The gateway's request body, compiled once.
    sms_template: minijinja::Environment<'static>,
    sms_url: Option<String>,
    sms_token: Option<String>,
    outbox: PathBuf,
    sender: lettre::message::Mailbox,
    reply_to: Option<lettre::message::Mailbox>,
}

/// An environment variable that is set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Channels {
    /// The channels of `policy`: SMTP from `ARSTREAM_SMTP_URL`, the webhook from the policy
    /// or `ARSTREAM_WEBHOOK_URL`, the SMS gateway from the policy or `ARSTREAM_SMS_URL`;
    /// what has none writes to `outbox`.
    pub fn from_env(policy: &Policy, outbox: &Path) -> Result<Channels, OutreachError> {
        let smtp = match env("ARSTREAM_SMTP_URL") {
            None => None,
            Some(url) => Some(SmtpServer::from_url(&url).map_err(|e| {
                OutreachError::Channel(format!(
                    "ARSTREAM_SMTP_URL is not an SMTP URL such as smtp://127.0.0.1:2525 or smtps://user:pass@host:465: {e}"
                ))
            })?),
        };
        // A redirect of a POST is not followed to another address unless it keeps the method
        // and the body (307, 308): a 301 or 302 would turn it into a GET without the message.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            match matches!(attempt.status().as_u16(), 307 | 308) && attempt.previous().len() < 5 {
                true => attempt.follow(),
                false => attempt.stop(),
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(redirects)
            .build()
            .map_err(|e| OutreachError::Channel(format!("HTTP client: {e}")))?;
        let sender = policy
            .sender
            .parse()
            .expect("checked when the policy loaded");
        let reply_to = policy
            .reply_to
            .as_ref()
            .map(|r| r.parse().expect("checked when the policy loaded"));
        let mut sms_template = minijinja::Environment::new();
        sms_template
            .add_template_owned("sms", policy.sms.body.clone())
            .map_err(|e| OutreachError::Channel(format!("sms body: {e}")))?;
        Ok(Channels {
            sms_template,
            smtp,
            http,
            webhook_url: env("ARSTREAM_WEBHOOK_URL").or_else(|| policy.webhook_url.clone()),
            webhook_secret: env("ARSTREAM_WEBHOOK_SECRET"),
            sms: policy.sms.clone(),
            sms_url: env("ARSTREAM_SMS_URL").or_else(|| policy.sms.url.clone()),
            sms_token: env("ARSTREAM_SMS_TOKEN"),
            outbox: outbox.to_path_buf(),
            sender,
            reply_to,
        })
    }

    /// Where messages of `channel` go.
    pub fn via(&self, channel: Channel) -> Via {
        let configured = match channel {
            Channel::Email => self.smtp.is_some(),
            Channel::Webhook => self.webhook_url.is_some(),
            Channel::Sms => self.sms_url.is_some(),
        };
        match configured {
            true if channel == Channel::Email => Via::Smtp,
            true => Via::Http,
            false => Via::Outbox,
        }
    }

    /// Where the server of `via` is, for messages ("smtp://host:port", a URL, a folder).
    pub fn place(&self, channel: Channel) -> String {
        match (channel, self.via(channel)) {
            (_, Via::Outbox) => self.outbox.display().to_string(),
            (Channel::Email, _) => (self.smtp.as_ref()).map_or(String::new(), |s| s.shown().into()),
            (Channel::Webhook, _) => self.webhook_url.clone().unwrap_or_default(),
            (Channel::Sms, _) => self.sms_url.clone().unwrap_or_default(),
        }
    }

    /// Deliver `message` once by `via` (retries are the caller's; `via` is the channel's, or
    /// the outbox).
    pub async fn deliver(&self, message: &Message, via: Via) -> Result<Via, Failure> {
        match (message.channel, via) {
            (_, Via::Outbox) => self.write_outbox(message).map(|_| Via::Outbox),
            (Channel::Email, _) => self.email(message).await.map(|_| Via::Smtp),
            (Channel::Webhook, _) => {
                let url = self.webhook_url.as_deref().expect("via http");
                let body = webhook_body(message);
                let signature = self.webhook_secret.as_deref().map(|k| sign(k, &body));
                let mut request = self
                    .http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("Idempotency-Key", &message.id);
                if let Some(s) = signature {
                    request = request.header(SIGNATURE_HEADER, s);
                }
                self.post(request.body(body)).await.map(|_| Via::Http)
            }
            (Channel::Sms, _) => {
                let url = self.sms_url.as_deref().expect("via http");
                let body = self.sms_body(message)?;
                let mut request = self
                    .http
                    .post(url)
                    .header("Content-Type", &self.sms.content_type)
                    .header("Idempotency-Key", &message.id);
                if let Some(token) = &self.sms_token {
                    let value = format!("{}{token}", self.sms.token_prefix);
                    request = request.header(self.sms.token_header.as_str(), value);
                }
                self.post(request.body(body)).await.map(|_| Via::Http)
            }
        }
    }

    /// The email of `message`, as sent and as written to the outbox.
    fn email_of(&self, message: &Message) -> Result<lettre::Message, Failure> {
        let to: lettre::message::Mailbox = message.to.parse().map_err(|e| {
            Failure::Permanent(format!("malformed email address '{}': {e}", message.to))
        })?;
        let mut builder = lettre::Message::builder()
            .from(self.sender.clone())
            .to(to)
            .subject(header_text(&message.subject))
            .message_id(Some(message.id.clone()))
            .header(ContentLanguage(header_text(&message.language)))
            .header(header::ContentType::TEXT_PLAIN);
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        // Line breaks are CRLF before the encoding is chosen (RFC 2045 6.7: a bare LF would
        // make lettre pick quoted-printable and write it as =0A). 8bit keeps the text readable
        // as written; a line too long for it falls back to what lettre picks.
        let text = message.body.replace("\r\n", "\n").replace('\n', "\r\n");
        let body = lettre::message::Body::new_with_encoding(
            text.clone(),
            header::ContentTransferEncoding::EightBit,
        )
        .unwrap_or_else(|_| lettre::message::Body::new(text));
        builder
            .body(body)
            .map_err(|e| Failure::Permanent(format!("the email cannot be built: {e}")))
    }

    async fn email(&self, message: &Message) -> Result<(), Failure> {
        let email = self.email_of(message)?;
        let smtp = self.smtp.as_ref().expect("via smtp");
        let envelope = email.envelope();
        let to = envelope.to().first().expect("a recipient");
        let from = envelope.from().expect("a sender");
        smtp.send(from, to, &email.formatted())
            .await
            .map_err(Failure::from)
    }

    async fn post(&self, request: reqwest::RequestBuilder) -> Result<(), Failure> {
        let response = match request.send().await {
            Ok(r) => r,
            // Not connected: nothing went. Otherwise the request may have reached the server.
            Err(e) if e.is_connect() || e.is_builder() => {
                return Err(Failure::Transient(format!("HTTP: {e}"), None));
            }
            Err(e) => {
                return Err(Failure::Unconfirmed(format!(
                    "HTTP: the request went but no answer came back: {e}"
                )));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            let location = (response.headers().get(reqwest::header::LOCATION))
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere")
                .to_string();
            return Err(Failure::Refused(format!(
                "HTTP {status}: the server redirects to {location}; a POST is not followed to another address (only 307 and 308 keep its method and body): set the URL to where it points"
            )));
        }
        let retry_after = (response.headers().get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let text = error_body(response).await;
        let text: String = text.chars().take(200).collect();
        let reason = format!("HTTP {status}: {}", text.trim());
        match status.is_server_error() || matches!(status.as_u16(), 429 | 408) {
            true => Err(Failure::Transient(reason, retry_after)),
            false => Err(Failure::Permanent(reason)),
        }
    }

    fn sms_body(&self, message: &Message) -> Result<String, Failure> {
        let text = match message.subject.is_empty() {
            true => message.body.trim().to_string(),
            false => format!("{}\n{}", message.subject, message.body.trim()),
        };
        self.sms_template
            .get_template("sms")
            .and_then(|t| {
                t.render(minijinja::context! {
                    to => message.to,
                    text => text,
                    message_id => message.id,
                    sender => self.sender.to_string(),
                })
            })
            .map_err(|e| Failure::Permanent(format!("sms body: {e}")))
    }

    /// Write `message` to the outbox: `<outbox>/<day>/<id>.eml` (an email as it would be
    /// sent) or `.json` (the webhook's or SMS gateway's request body). Written whole or not at
    /// all; the same message written again replaces itself.
    pub fn write_outbox(&self, message: &Message) -> Result<(), Failure> {
        let folder = self.outbox.join(message.day.to_string());
        let name = outbox_name(&message.id);
        let (file, bytes) = match message.channel {
            Channel::Email => {
                let email = self.email_of(message)?;
                (folder.join(format!("{name}.eml")), email.formatted())
            }
            Channel::Webhook => (
                folder.join(format!("{name}.webhook.json")),
                webhook_body(message).into_bytes(),
            ),
            Channel::Sms => (
                folder.join(format!("{name}.sms.json")),
                self.sms_body(message)?.into_bytes(),
            ),
        };
        // The day's folder is made by its first message.
        let write = || match write_whole(&folder, &file, &bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&folder)?;
                write_whole(&folder, &file, &bytes)
            }
            written => written,
        };
        write().map_err(|e| Failure::Transient(format!("outbox {}: {e}", file.display()), None))
    }
}

/// A header's text on one line: control characters (a CR or LF in a customer's name would
/// end the header early) become spaces.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The first few KiB of an error response's body: enough for a reason, whatever its size.
async fn error_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// Write `bytes` to `file` in `folder` whole or not at all. On Linux an unnamed file
/// (`O_TMPFILE`) is written and then linked under its name: half the directory operations of
/// a partial file renamed, and those are most of what writing a big outbox costs. Elsewhere,
/// where the file system has no unnamed files, or when `file` exists already (a message
/// written again after a crash replaces itself), a `.partial` file is renamed.
fn write_whole(folder: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if link_unnamed(folder, file, bytes)? {
        return Ok(());
    }
    let partial = file.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, file)
}

/// Whether `bytes` went to `file` through an unnamed file (see [`write_whole`]).
#[cfg(target_os = "linux")]
fn link_unnamed(folder: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;

    let Ok(mut unnamed) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(folder)
    else {
        return Ok(false);
    };
    unnamed.write_all(bytes)?;
    let fd = CString::new(format!("/proc/self/fd/{}", unnamed.as_raw_fd())).expect("no NUL");
    let Ok(target) = CString::new(file.as_os_str().as_bytes()) else {
        return Ok(false);
    };
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            fd.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    Ok(linked == 0)
}

/// A file name for a message id (`<2025-12-31.C1.…@example.com>` → without brackets, `@`
/// as `_at_`).
pub fn outbox_name(id: &str) -> String {
    id.trim_matches(['<', '>'])
        .replace('@', "_at_")
        .replace(['/', '\\'], "_")
}

/// The header that carries a webhook's signature: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Arstream-Signature";

/// The signature of `body` keyed by `secret`.
pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON a webhook receives: the message, its invoices and its text.
pub fn webhook_body(message: &Message) -> String {
    let body = serde_json::json!({
        "message_id": message.id,
        "day": message.day,
        "customer_id": message.customer_id,
        "audience": message.audience,
        "rule": message.rule,
        "stage": message.stage,
        "language": message.language,
        "subject": message.subject,
        "text": message.body,
        "invoices": message.items,
    });
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            outbox_name("<2025-12-31.C1.ab.customer@x.example>"),
            "2025-12-31.C1.ab.customer_at_x.example"
        );
    }

    #[test]
    fn headers_stay_on_one_line_and_a_retry_after_is_read() {
        assert_eq!(header_text("Evil\r\nBcc: x@y"), "Evil  Bcc: x@y");
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn an_outbox_file_is_written_whole_and_written_again_replaces_itself() {
        let dir = std::env::temp_dir().join(format!("arstream-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.eml");
        write_whole(&dir, &file, b"first").unwrap();
        write_whole(&dir, &file, b"second").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        let names: Vec<_> = (std::fs::read_dir(&dir).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["m.eml"], "no partial file is left behind");
        assert!(write_whole(&dir.join("missing"), &dir.join("missing/m.eml"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
