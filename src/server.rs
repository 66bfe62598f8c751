//! A pipeline's service: the consumers of a [`Plan`] (the outputs writer's lanes, outreach,
//! the SQL server, the dashboard in front) put together on the runner through [`Service`], the one seam of
//! [`crate::service::consumer`]. The commands only parse their arguments, build a [`Server`]
//! and print what it reports ([`Event`]).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::dashboard::{self, layout::Layout};
use crate::outreach::ledger::Ledger;
use crate::outreach::send::SendReport;
use crate::outreach::subscriber::{self, OutreachConsumer, Sent};
use crate::outreach::{Outreach, OutreachError};
use crate::pipeline::catalog::Plan;
use crate::pipeline::outputs::OutputError;
use crate::pipeline::writer::{OutputWriter, Written};
use crate::publish::{PublishConsumer, PublishReport, Published, Publisher};
use crate::service::compose::{self, Service};
use crate::service::session::{Session, SessionError, refuse_inside_feed};
use crate::service::{Runner, RunnerOptions, ServiceError, Snapshot, Stopped};
use crate::sql_server::{Serving, SqlServer};
use crate::store::StoreError;

/// What the consumers of a pipeline's service report.
pub enum Report {
    /// An outputs lane wrote, or could not.
    Written(Written),
    /// Outreach sent, or could not.
    Sent(Sent),
    /// The SQL server serves a new snapshot, or could not.
    Sql(Serving),
    /// The state was published as Delta tables, or could not be.
    Published(PublishReport),
}

/// What the service reports while it runs: a line of its log each.
pub type Event = compose::Event<Report>;

/// Why the service could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outreach(#[from] OutreachError),
    #[error(transparent)]
    Outputs(#[from] OutputError),
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
}

/// A pipeline's service: the runner, the outputs it writes, the outreach it sends, and the
/// dashboard in front when there is one.
pub struct Server {
    plan: Plan,
    writer: Option<OutputWriter>,
    outreach: Option<Outreach>,
    dashboard: Option<Layout>,
    sql: Option<SqlServer>,
    publisher: Option<PublishConsumer>,
}

/// What one refresh did ([`Server::once`]).
pub enum Once {
    /// Nothing to write: the state caught up with the feed, and no engine made.
    CaughtUp(Box<Session>),
    /// Stopped before the first refresh (the next run goes on from where it stopped).
    Stopped,
    Refreshed(Box<Refreshed>),
}

/// The refresh of [`Server::once`], the outputs written under `out` (none without outputs),
/// what outreach sent, and what was published.
pub struct Refreshed {
    pub snapshot: Arc<Snapshot>,
    pub out: Option<url::Url>,
    pub written: Vec<String>,
    pub sent: Option<(Outreach, SendReport)>,
    /// What was published (with `--publish` or `[publish] url`).
    pub published: Option<Published>,
}

impl Server {
    /// The service of `plan`: its outputs writer (refusing an output folder inside the feed)
    /// and its outreach policy, loaded.
    pub fn new(plan: Plan) -> Result<Server, ServerError> {
        let writer = writer(&plan)?;
        let outreach = outreach_of(&plan)?;
        let publisher = publisher_of(&plan)?;
        Ok(Server {
            plan,
            writer,
            outreach,
            dashboard: None,
            sql: None,
            publisher,
        })
    }

    /// Show the dashboard `layout` in front, until `q`. A dashboard only looks: outreach
    /// does not send (its ledger is shown), and events are on the screen, not handed out.
    pub fn with_dashboard(mut self, layout: Layout) -> Server {
        self.dashboard = Some(layout);
        self
    }

    /// Serve SQL over the Postgres wire protocol on each snapshot (`arstream serve`).
    pub fn with_sql(mut self, sql: SqlServer) -> Server {
        self.sql = Some(sql);
        self
    }

    fn options(&self, watch_feed: bool) -> RunnerOptions {
        RunnerOptions {
            session: self.plan.session.clone(),
            schedule: self.plan.schedule.clone(),
            watch_feed,
        }
    }

    /// One refresh: catch up, write the outputs, send outreach's messages, publish.
    pub async fn once(self, cancel: &CancellationToken) -> Result<Once, ServerError> {
        if self.writer.is_none() && self.publisher.is_none() {
            let session = Session::open(&self.plan.session, None, Some(cancel)).await?;
            return Ok(Once::CaughtUp(Box::new(session)));
        }
        let runner = Runner::new(self.options(false));
        let snapshots = runner.subscribe();
        runner.run(cancel, true).await?;
        let Some(snapshot) = snapshots.borrow().clone() else {
            return Ok(Once::Stopped);
        };
        let (out, written) = match &self.writer {
            Some(writer) => (
                Some(writer.out().clone()),
                writer.write_all(&snapshot).await?,
            ),
            None => (None, Vec::new()),
        };
        // Outreach goes with the outputs, as when a run without them made no refresh at all.
        let sent = match self.outreach.filter(|_| out.is_some()) {
            Some(outreach) => {
                let mut ledger =
                    Ledger::open(&outreach.ledger_folder).map_err(OutreachError::from)?;
                let channels = outreach.channels()?;
                let report = subscriber::send_for(
                    &outreach,
                    &mut ledger,
                    &channels,
                    &snapshot,
                    Some(cancel),
                )
                .await?;
                Some((outreach, report))
            }
            None => None,
        };
        let published = match &self.publisher {
            Some(p) => Some(p.publisher().publish(&snapshot.engine).await?),
            None => None,
        };
        Ok(Once::Refreshed(Box::new(Refreshed {
            snapshot,
            out,
            written,
            sent,
            published,
        })))
    }

    /// The service until `cancel` (or the dashboard closed): each event handed to `on_event`
    /// as it happens (none while a dashboard is shown).
    pub async fn run(
        self,
        cancel: &CancellationToken,
        on_event: impl FnMut(Event),
    ) -> Result<Stopped, ServerError> {
        let mut service = Service::new(self.options(true));
        for lane in self.writer.iter().flat_map(OutputWriter::lanes) {
            service = service.consumer(lane, Report::Written);
        }
        if let Some(sql) = self.sql {
            service = service.consumer(sql, Report::Sql);
        }
        if let Some(publisher) = self.publisher {
            service = service.consumer(publisher, Report::Published);
        }
        let ledger = match &self.outreach {
            Some(o) => Some(o.ledger_folder.clone()),
            None => default_ledger(&self.plan),
        };
        match (self.dashboard, self.outreach) {
            (Some(layout), _) => {
                let recorder = dashboard::Recorder {
                    who: self.plan.session.who.clone(),
                    to: self.plan.session.actions_location()?,
                };
                service = service.front(Box::new(move |snapshots, notices, cancel| {
                    Box::pin(async move {
                        let shown =
                            dashboard::show(layout, snapshots, notices, ledger, recorder, cancel);
                        shown.await.map_err(|e| format!("the dashboard: {e}"))
                    })
                }));
            }
            (None, Some(outreach)) => {
                service = service.consumer(OutreachConsumer::new(outreach), Report::Sent);
            }
            (None, None) => {}
        }
        Ok(service.run(cancel, on_event).await?)
    }
}

/// The outputs writer of a plan, refusing an output folder inside the feed.
fn writer(plan: &Plan) -> Result<Option<OutputWriter>, ServerError> {
    let Some(out) = &plan.out else {
        return Ok(None);
    };
    let feed = plan.session.feed_location()?;
    let sinks = std::iter::once(out).chain(plan.steps.iter().filter_map(|s| s.to.as_ref()));
    for url in sinks {
        refuse_inside_feed(&feed, &crate::store::open(url, true)?, "output folder")?;
    }
    let out = crate::store::open(out, true)?;
    Ok(Some(OutputWriter::new(plan.steps.clone(), out)))
}

/// The publisher of the plan (`--publish` or `[publish] url`), refusing a location inside the
/// feed (whose discovery would take Delta's files for changes).
fn publisher_of(plan: &Plan) -> Result<Option<PublishConsumer>, ServerError> {
    let Some(url) = &plan.publish else {
        return Ok(None);
    };
    let config = plan.session.config_file().map_err(SessionError::from)?;
    let publisher = Publisher::of_config(url, &config.publish)?;
    refuse_inside_feed(
        &plan.session.feed_location()?,
        publisher.location(),
        "publish location",
    )?;
    let every = Publisher::every(&config.publish);
    Ok(Some(PublishConsumer::new(publisher, every)))
}

/// The outreach policy of the plan's pipeline, loaded, with its ledger in the state folder.
fn outreach_of(plan: &Plan) -> Result<Option<Outreach>, ServerError> {
    let Some(file) = plan.pipeline.as_ref().and_then(|p| p.outreach.as_ref()) else {
        return Ok(None);
    };
    let config = plan.session.config_file().map_err(SessionError::from)?;
    let state = plan.session.state.clone().unwrap_or(config.state.url);
    let location = crate::store::open(&state, true)?;
    Ok(Some(Outreach::load(file, &location.url)?))
}

/// The ledger `outreach send` writes by default (the pipelines folder's `outreach.toml`), when
/// there is one: a dashboard over a pipeline without a policy still shows what was sent, by
/// whatever sent it.
fn default_ledger(plan: &Plan) -> Option<PathBuf> {
    let config = plan.session.config_file().ok()?;
    let state = plan
        .session
        .state
        .clone()
        .unwrap_or(config.state.url.clone());
    let url = crate::store::to_url(&state).ok()?;
    let file = std::path::Path::new(&config.engine.pipelines).join("outreach.toml");
    let folder = Outreach::ledger_folder_of(&file, &url).ok()?;
    folder.join("ledger.jsonl").is_file().then_some(folder)
}
