//! Alert-triggered outreach: dunning sequences over email, SMS and webhooks, each message
//! once (`docs/outreach.md`).
//!
//! Data flows one way: the policy ([`policy`]) says which rows of the view
//! `outreach_invoices` ([`candidates`]) get which stage; [`plan`] decides the day's messages
//! against the [`ledger`]; [`render`] puts them in words; [`send`] records each in the ledger
//! and hands it to its channel ([`channels`]); [`replay`] runs a policy over history without
//! sending. Which invoices may never be written about (disputed, promised, paid, opted out) is
//! SQL, in `queries/outreach_invoices.sql`.

pub mod candidates;
pub mod channels;
pub mod ledger;
pub mod plan;
pub mod policy;
pub mod render;
pub mod replay;
pub mod send;
pub mod smtp;
pub mod subscriber;

use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::pipeline::spec::SpecError;

/// Why outreach could not run.
#[derive(Debug, thiserror::Error)]
pub enum OutreachError {
    #[error("{0}")]
    Policy(SpecError),
    #[error("outreach view: {0}")]
    View(String),
    #[error("{0}")]
    Template(String),
    #[error("{0}")]
    Channel(String),
    #[error("opt-out list {0}")]
    OptOuts(String),
    #[error("{0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error(
        "the state is at {0}, not in a local folder, so the outreach ledger has no home: set `ledger` in the policy to a local folder"
    )]
    NoLedgerFolder(String),
}

/// A policy with its templates, and where its ledger lives.
pub struct Outreach {
    pub policy: policy::Policy,
    pub templates: render::Templates,
    pub ledger_folder: PathBuf,
}

impl Outreach {
    /// Load the policy `file` and its templates; the ledger lives in the policy's `ledger`
    /// folder, or in `outreach/` of a local state folder at `state`.
    /// Every template is rendered once on sample values: a typo is found now, with its file
    /// and line, not halfway through a send.
    pub fn load(file: &Path, state: &url::Url) -> Result<Outreach, OutreachError> {
        let policy = policy::load(file).map_err(OutreachError::Policy)?;
        let ledger_folder = ledger_folder(
            policy.ledger.as_deref(),
            policy.candidates.as_deref(),
            state,
        )?;
        let secret = match &policy.payment_link {
            Some(_) => link_secret(&ledger_folder)?,
            None => Vec::new(),
        };
        let link = (policy.payment_link.as_deref())
            .map(|l| (l, secret.as_slice(), policy.payment_link_days));
        let templates = render::Templates::load(&policy.templates, &policy.default_language, link)?;
        templates.check()?;
        Ok(Outreach {
            policy,
            templates,
            ledger_folder,
        })
    }

    /// The ledger folder of the policy `file` without loading the policy whole (its
    /// templates may be missing): what `outreach log` needs. A policy that cannot be read
    /// has its ledger in the state folder.
    pub fn ledger_folder_of(file: &Path, state: &url::Url) -> Result<PathBuf, OutreachError> {
        let table = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok());
        let key = |name: &str| {
            (table.as_ref()).and_then(|t| t.get(name).and_then(|l| l.as_str()).map(str::to_string))
        };
        let configured = key("ledger").map(|l| file.parent().unwrap_or(Path::new(".")).join(l));
        ledger_folder(configured.as_deref(), key("candidates").as_deref(), state)
    }

    /// The shape of the policy, as the ledger remembers it.
    pub fn shape(&self) -> ledger::PolicyShape {
        ledger::PolicyShape::of(&self.policy)
    }

    /// Where messages of channels without a server go.
    pub fn outbox(&self) -> PathBuf {
        self.ledger_folder.join("outbox")
    }

    /// Give `engine` the policy's opt-out list and return the query of its candidates (see
    /// [`candidates::query`]). A query that reads the risk model's tables
    /// ([`Engine::reads_derived`]) needs them made first.
    pub async fn prepare(&self, engine: &Engine) -> Result<String, OutreachError> {
        let opt_outs = candidates::opt_outs(&self.policy)?;
        engine.put_derived(crate::engine::derived::OUTREACH_OPT_OUTS, opt_outs)?;
        candidates::query(&self.policy, engine).await
    }

    /// The channels of this policy, from the environment.
    pub fn channels(&self) -> Result<channels::Channels, OutreachError> {
        channels::Channels::from_env(&self.policy, &self.outbox())
    }
}

/// The ledger's folder: the policy's `ledger`, or `outreach/` of a local state folder
/// (`outreach-<view>/` for a policy over another view than the customers' invoices, such as
/// the dispute escalations: each policy its own ledger).
fn ledger_folder(
    configured: Option<&Path>,
    candidates: Option<&str>,
    state: &url::Url,
) -> Result<PathBuf, OutreachError> {
    let name = match candidates {
        Some(view) => format!("outreach-{view}"),
        None => "outreach".to_string(),
    };
    match configured {
        Some(folder) => Ok(folder.to_path_buf()),
        None => match state.to_file_path() {
            Ok(path) if state.scheme() == "file" => Ok(path.join(name)),
            _ => Err(OutreachError::NoLedgerFolder(state.to_string())),
        },
    }
}

/// The environment variable of the key that signs payment links.
pub const LINK_SECRET_VAR: &str = "ARSTREAM_PAYMENT_LINK_SECRET";

/// The key of payment links' tokens: `ARSTREAM_PAYMENT_LINK_SECRET`, or else one made once at
/// random and kept in the ledger's folder (`payment-link.secret`, readable by its owner only),
/// so that links verify across sends with nothing configured.
fn link_secret(folder: &Path) -> Result<Vec<u8>, OutreachError> {
    if let Ok(secret) = std::env::var(LINK_SECRET_VAR)
        && !secret.trim().is_empty()
    {
        return Ok(secret.into_bytes());
    }
    let file = folder.join("payment-link.secret");
    let failed = |e: std::io::Error| {
        OutreachError::Template(format!("payment link secret {}: {e}", file.display()))
    };
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut key = [0u8; 32];
    {
        use std::io::Read;
        let mut random = std::fs::File::open("/dev/urandom").map_err(failed)?;
        random.read_exact(&mut key).map_err(failed)?;
    }
    let text = hex::encode(key);
    std::fs::create_dir_all(folder).map_err(failed)?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()));
    match written {
        Ok(()) => Ok(text.into_bytes()),
        // Another process made it first: its key is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(&file)
            .map(|t| t.trim().as_bytes().to_vec())
            .map_err(failed),
        Err(e) => Err(failed(e)),
    }
}
