//! Email over SMTP one command at a time, so that a failure says who refused what: the server
//! refusing us (its greeting, TLS, authentication or `MAIL FROM`: a configuration to fix, and
//! every email waits), one recipient refused (that message fails for good), a busy server
//! (4xx: try later), or a message handed over whole whose answer never came (it may have
//! arrived). lettre's transport says only "permanent" or "transient", which cannot tell a
//! relay refused from an address that does not exist.
//!
//! The server is `ARSTREAM_SMTP_URL`, in lettre's URL form: `smtp://host:port` (plain),
//! `smtp://user:pass@host:587?tls=required` (STARTTLS) or `?tls=opportunistic`,
//! `smtps://user:pass@host:465` (TLS from the start). One connection is kept open between
//! messages.

use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::Mutex;

/// How long one step (connecting, a command, the message) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an email did not go out, by who refused what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    /// No connection, a timeout before the message went, or a 4xx: not delivered, try later.
    Unavailable(String),
    /// The server refuses us (5xx greeting, TLS, authentication, `MAIL FROM`): a
    /// configuration to fix; no email can go until then.
    RefusedSender(String),
    /// This message is refused for good (5xx to `RCPT TO` or to its content).
    RefusedMessage(String),
    /// The message went whole and the server's answer was lost: it may have arrived.
    AnswerLost(String),
}

/// How to reach the server.
enum Security {
    Plain,
    StartTls {
        required: bool,
        parameters: TlsParameters,
    },
    Wrapper(TlsParameters),
}

/// An SMTP server and the connection kept open to it.
pub struct SmtpServer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// The URL without its password, for messages.
    shown: String,
    connection: Mutex<Option<AsyncSmtpConnection>>,
}

/// The step an error happened at: it decides who refused what.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Connect,
    Sender,
    Recipient,
    Data,
    Message,
}

impl SmtpServer {
    /// The server of `url` (see the module's doc).
    pub fn from_url(url: &str) -> Result<SmtpServer, String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = parsed
            .host_str()
            .ok_or("no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some(mode @ ("required" | "opportunistic"))) => (
                Security::StartTls {
                    required: mode == "required",
                    parameters: parameters()?,
                },
                587,
            ),
            ("smtps", None) => (Security::Wrapper(parameters()?), 465),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme '{scheme}' or tls '{}' (smtp, smtp with ?tls=required or ?tls=opportunistic, smtps)",
                    tls.unwrap_or("")
                ));
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(
                decode(user),
                decode(password.unwrap_or("")),
            )),
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        let mut shown = parsed.clone();
        let _ = shown.set_password(None);
        Ok(SmtpServer {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
            shown: shown.to_string(),
            connection: Mutex::new(None),
        })
    }

    /// The server as the user reads it (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Hand `email` (the message as formatted) from `from` to `to`.
    pub async fn send(&self, from: &Address, to: &Address, email: &[u8]) -> Result<(), SmtpError> {
        let mut kept = self.connection.lock().await;
        let mut connection = match kept.take() {
            Some(c) if !c.has_broken() => c,
            _ => self.connect().await?,
        };
        let sent = self.transact(&mut connection, from, to, email).await;
        match &sent {
            Ok(()) => *kept = Some(connection),
            // The connection is left in an unknown state: the next message opens another.
            Err(_) => connection.abort().await,
        }
        sent
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let wrapper = match &self.security {
            Security::Wrapper(p) => Some(p.clone()),
            _ => None,
        };
        let connecting = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(STEP_TIMEOUT),
            &self.hello,
            wrapper,
            None,
        );
        let mut connection = self.step(Step::Connect, connecting).await?;
        if let Security::StartTls {
            required,
            parameters,
        } = &self.security
            && (*required || connection.can_starttls())
        {
            let upgrade = connection.starttls(parameters.clone(), &self.hello);
            self.step(Step::Connect, upgrade).await?;
        }
        if let Some(credentials) = &self.credentials {
            let auth = connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials);
            self.step(Step::Sender, auth).await?;
        }
        Ok(connection)
    }

    async fn transact(
        &self,
        connection: &mut AsyncSmtpConnection,
        from: &Address,
        to: &Address,
        email: &[u8],
    ) -> Result<(), SmtpError> {
        let mut options = Vec::new();
        if !email.is_ascii() && (connection.server_info()).supports_feature(Extension::EightBitMime)
        {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = connection.command(Mail::new(Some(from.clone()), options));
        self.step(Step::Sender, mail).await?;
        let rcpt = connection.command(Rcpt::new(to.clone(), Vec::new()));
        self.step(Step::Recipient, rcpt).await?;
        self.step(Step::Data, connection.command(Data)).await?;
        self.step(Step::Message, connection.message(email)).await?;
        Ok(())
    }

    /// Run one step within the step timeout, and say who refused what when it fails.
    async fn step<T>(
        &self,
        step: Step,
        future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, SmtpError> {
        let what = match step {
            Step::Connect => "connecting",
            Step::Sender => "the sender",
            Step::Recipient => "the recipient",
            Step::Data => "DATA",
            Step::Message => "the message",
        };
        let error = match tokio::time::timeout(STEP_TIMEOUT, future).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => {
                let reason = format!(
                    "SMTP {}: no answer to {what} within {} s",
                    self.shown,
                    STEP_TIMEOUT.as_secs()
                );
                return Err(match step {
                    Step::Message => SmtpError::AnswerLost(reason),
                    _ => SmtpError::Unavailable(reason),
                });
            }
        };
        let reason = format!("SMTP {} refused {what}: {error}", self.shown);
        Err(match (step, error.is_permanent()) {
            (Step::Connect | Step::Sender, true) => SmtpError::RefusedSender(reason),
            (_, true) => SmtpError::RefusedMessage(reason),
            _ if error.is_transient() => SmtpError::Unavailable(reason),
            (Step::Connect, _) if error.is_tls() => SmtpError::RefusedSender(reason),
            (Step::Message, _) => SmtpError::AnswerLost(format!(
                "SMTP {}: the message went whole but no answer came back ({error})",
                self.shown
            )),
            _ => SmtpError::Unavailable(format!("SMTP {}: {error}", self.shown)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_the_server_and_hides_its_password() {
        let s = SmtpServer::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2525));
        assert!(s.credentials.is_none());
        let s = SmtpServer::from_url("smtps://ar%40x:p%26ss@mail.example").unwrap();
        assert_eq!(s.port, 465);
        assert_eq!(s.shown(), "smtps://ar%40x@mail.example");
        assert!(matches!(s.security, Security::Wrapper(_)));
        let s = SmtpServer::from_url("smtp://mail.example?tls=required").unwrap();
        assert_eq!(s.port, 587);
        assert!(SmtpServer::from_url("smtp://mail.example?tls=maybe").is_err());
        assert!(SmtpServer::from_url("http://mail.example").is_err());
    }
}
