//! Publishing as a consumer of the service's snapshots: each new checkpoint generation is
//! published, at most every `every` when set, on a low-priority thread of its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Published, Publisher};
use crate::service::Snapshot;
use crate::service::consumer::{Consumer, Next, Retry};

/// What a publish of the service did.
#[derive(Debug, Clone)]
pub enum PublishReport {
    Published(Published),
    /// It could not; tried again after a backoff.
    Failed {
        generation: u64,
        error: String,
    },
}

/// The publisher driven by the service.
pub struct PublishConsumer {
    publisher: Publisher,
    every: Option<Duration>,
    /// The generation published last.
    published: Option<u64>,
}

impl PublishConsumer {
    pub fn new(publisher: Publisher, every: Option<Duration>) -> PublishConsumer {
        PublishConsumer {
            publisher,
            every,
            published: None,
        }
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

impl Consumer for PublishConsumer {
    type Report = PublishReport;

    fn name(&self) -> &'static str {
        "publish"
    }

    fn in_background(&self) -> bool {
        true
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        _cancel: &CancellationToken,
    ) -> (Option<PublishReport>, Next) {
        // Nothing checkpointed yet (an empty feed): nothing to publish.
        if self.published == Some(snapshot.generation) || snapshot.generation == 0 {
            return (None, Next::Newer);
        }
        match self.publisher.publish(&snapshot.engine).await {
            Ok(published) => {
                self.published = Some(snapshot.generation);
                let next = match self.every {
                    Some(every) => Next::NewerNotBefore(Instant::now() + every),
                    None => Next::Newer,
                };
                (Some(PublishReport::Published(published)), next)
            }
            Err(e) => {
                let failed = PublishReport::Failed {
                    generation: snapshot.generation,
                    error: e.to_string(),
                };
                (Some(failed), Next::Retry)
            }
        }
    }
}
