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
    pub fn load(file: &Path, state: &url::Url) -> Result<Outreach, OutreachError> {
        let policy = policy::load(file).map_err(OutreachError::Policy)?;
        let templates = render::Templates::load(
            &policy.templates,
            &policy.default_language,
            policy.payment_link.as_deref(),
        )?;
        let ledger_folder = match &policy.ledger {
            Some(folder) => folder.clone(),
            None => match state.to_file_path() {
                Ok(path) if state.scheme() == "file" => path.join("outreach"),
                _ => return Err(OutreachError::NoLedgerFolder(state.to_string())),
            },
        };
        Ok(Outreach {
            policy,
            templates,
            ledger_folder,
        })
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
