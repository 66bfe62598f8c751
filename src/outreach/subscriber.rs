//! Outreach as a consumer of the service (`arstream run` with a pipeline's `outreach` key):
//! after each refresh it sends the day's messages over the newest snapshot, skipping the
//! snapshots published while it was busy, on a low-priority thread of its own (the risk
//! segment may need the model). It holds the ledger's lock while the service runs.

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::candidates;
use super::channels::Channels;
use super::ledger::Ledger;
use super::send::{SendReport, Sender};
use super::{Outreach, OutreachError};
use crate::service::{Snapshot, Snapshots};

/// What one send after a refresh did.
#[derive(Debug)]
pub enum Sent {
    Done { sequence: u64, report: SendReport },
    Failed { sequence: u64, error: String },
}

/// Send the messages of `snapshot`'s as-of date.
pub async fn send_for(
    outreach: &Outreach,
    ledger: &mut Ledger,
    channels: &Channels,
    snapshot: &Snapshot,
    cancel: Option<&CancellationToken>,
) -> Result<SendReport, OutreachError> {
    let query = outreach.prepare(&snapshot.engine).await?;
    let (_, batches) = snapshot.query(&query, None).await?;
    let rows = candidates::from_batches(&batches, outreach.policy.rules.len())?;
    let sender = Sender {
        policy: &outreach.policy,
        templates: &outreach.templates,
        channels,
    };
    let day = snapshot.params.as_of;
    sender
        .send(ledger, &rows, day, Utc::now(), false, cancel)
        .await
}

/// Send after every refresh until `cancel`; what each send did comes on the channel.
pub fn spawn(
    outreach: Outreach,
    mut snapshots: Snapshots,
    cancel: CancellationToken,
) -> (mpsc::UnboundedReceiver<Sent>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = crate::service::background::spawn("outreach", move || async move {
        let opened = Ledger::open(&outreach.ledger_folder)
            .map_err(OutreachError::from)
            .and_then(|ledger| Ok((ledger, outreach.channels()?)));
        let (mut ledger, channels) = match opened {
            Ok(both) => both,
            Err(e) => {
                let _ = tx.send(Sent::Failed {
                    sequence: 0,
                    error: e.to_string(),
                });
                return;
            }
        };
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                let sent = send_for(&outreach, &mut ledger, &channels, &snapshot, Some(&cancel));
                let sequence = snapshot.sequence;
                let event = match sent.await {
                    Ok(report) => Sent::Done { sequence, report },
                    Err(e) => Sent::Failed {
                        sequence,
                        error: e.to_string(),
                    },
                };
                let _ = tx.send(event);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = snapshots.changed() => if changed.is_err() { return },
            }
        }
    });
    (rx, handle)
}
