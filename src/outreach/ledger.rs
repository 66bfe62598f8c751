//! The outreach ledger: what was sent, skipped, failed or is waiting, so that each
//! (rule, stage, invoice) entry goes out at most once, across restarts and crashes.
//!
//! It is one append-only file of JSON lines (`ledger.jsonl`, in `<state>/outreach` or the
//! policy's `ledger` folder). A message is recorded `pending`, with everything needed to send
//! it again byte for byte, and made durable *before* it is sent; `sent` is appended after the
//! server accepted it. A crash between the two leaves it pending: the next `send` sends it
//! again with the same `Message-ID` / `Idempotency-Key`, which receivers use to drop the
//! duplicate. That is the one message that may go out twice, and only with the same id.
//!
//! A lock file keeps two senders off one ledger.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{Audience, Channel, Slot};

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("outreach ledger {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("outreach ledger {path}, line {line}: {message}")]
    Corrupt {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "outreach ledger {0} is in use by another `outreach send` or `run` (its lock is held); wait for it to finish"
    )]
    Locked(String),
}

/// One invoice a message is about, as it was when the message was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub rule: String,
    pub stage: String,
    /// The stage's `day`: what identifies the stage for the ledger, whatever the policy's
    /// names (absent from records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    pub invoice_id: String,
    pub due_date: NaiveDate,
    pub days_past_due: i64,
    pub open_amount: f64,
    pub currency: String,
}

/// A message as recorded before it is sent: everything needed to send it again unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The `Message-ID` (email) and `Idempotency-Key` (HTTP): one per customer, audience,
    /// lead stage and day.
    pub id: String,
    pub day: NaiveDate,
    pub customer_id: String,
    pub audience: Audience,
    pub channel: Channel,
    /// The rule and stage that chose the channel and template (the latest stage among items).
    pub rule: String,
    pub stage: String,
    /// Email address, phone number, or (webhook) the customer id.
    pub to: String,
    pub language: String,
    pub subject: String,
    pub body: String,
    pub items: Vec<Item>,
    pub recorded_at: DateTime<Utc>,
    /// Where it was made to go (`smtp`, `http`, `outbox`): it goes out there or keeps
    /// waiting (absent from records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Message {
    /// The reader's slot of the day it takes.
    pub fn slot(&self) -> Slot {
        Slot {
            audience: self.audience,
            channel: (self.audience == Audience::Collector).then_some(self.channel),
        }
    }
}

/// An entry that did not go out, and why (suppression, or a message that lost all reason to
/// go out while it waited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub day: NaiveDate,
    pub rule: String,
    pub stage: String,
    pub customer_id: String,
    pub invoice_id: String,
    pub reason: String,
    /// The message it was in, when it was one waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
    /// The stage as the ledger knows it whatever its names: its reader's slot and its day
    /// (`customer@7`), so that renaming a rule or stage does not log the skip again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_key: Option<String>,
}

impl Skip {
    /// What a skip is recorded once per (with its invoice and reason).
    fn key(&self) -> String {
        (self.stage_key.clone()).unwrap_or_else(|| format!("{}/{}", self.rule, self.stage))
    }
}

/// The key of a stage for skips: its reader's slot and its day.
pub fn stage_key(slot: Slot, day: i32) -> String {
    format!("{}@{day}", slot.name())
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Record {
    Pending(Message),
    /// Accepted by the server (or written to the outbox: `via`).
    Sent {
        id: String,
        via: String,
        at: DateTime<Utc>,
    },
    /// A transient failure: the message stays pending and is retried by the next send.
    Waiting {
        id: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A permanent failure (a malformed address, a 4xx): never retried.
    Failed {
        id: String,
        reason: String,
        at: DateTime<Utc>,
    },
    Skipped(Skip),
    /// A pending message that did not go out as it was made: it was decided again when it
    /// could go out (its entries are free to be planned anew, see [`super::send`]).
    Dropped {
        id: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The shape of the policy a send ran with, written when it differs from the last one
    /// recorded: what a later send compares its policy with.
    Policy {
        shape: PolicyShape,
        at: DateTime<Utc>,
    },
}

/// A policy as the ledger remembers it: its rules' stages, by name, day, channel and reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyShape {
    pub rules: Vec<RuleShape>,
}

impl PolicyShape {
    /// The shape of `policy`.
    pub fn of(policy: &super::policy::Policy) -> PolicyShape {
        PolicyShape {
            rules: (policy.rules.iter())
                .map(|r| RuleShape {
                    name: r.name.clone(),
                    stages: (r.stages.iter())
                        .map(|s| StageShape {
                            name: s.name.clone(),
                            day: s.day,
                            channel: s.channel,
                            audience: s.audience,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// What changed from `before` to this shape, in words, with what it means for what is
    /// sent; empty when nothing did.
    pub fn changes_since(&self, before: &PolicyShape) -> Vec<String> {
        let stages = |shape: &PolicyShape| -> Vec<(String, String, StageShape)> {
            (shape.rules.iter())
                .flat_map(|r| {
                    r.stages
                        .iter()
                        .map(|s| (r.name.clone(), s.name.clone(), s.clone()))
                })
                .collect()
        };
        let (old, new) = (stages(before), stages(self));
        let reader = |s: &StageShape| match s.audience {
            Audience::Customer => "the customer".to_string(),
            Audience::Collector => format!("the collector by {}", s.channel.name()),
        };
        let slot = |s: &StageShape| {
            (
                s.audience,
                (s.audience == Audience::Collector).then_some(s.channel),
            )
        };
        let mut out = Vec::new();
        for (rule, name, s) in &new {
            let same_place =
                |(_, _, o): &&(String, String, StageShape)| slot(o) == slot(s) && o.day == s.day;
            match old.iter().find(same_place) {
                Some((old_rule, old_name, _)) if (old_rule, old_name) != (rule, name) => {
                    out.push(format!(
                        "stage '{old_rule}/{old_name}' is now '{rule}/{name}' (day {}, to {}): a name only, invoices that had it do not get it again",
                        s.day,
                        reader(s)
                    ));
                }
                Some(_) => {}
                None => {
                    let earlier = (old.iter())
                        .filter(|(_, _, o)| slot(o) == slot(s) && o.day < s.day)
                        .map(|(_, _, o)| o.day)
                        .max();
                    let effect = match earlier {
                        Some(d) => format!(
                            "invoices that had the day-{d} stage or an earlier one get this one when {} days past due, even if it replaces a stage they had",
                            s.day
                        ),
                        None => format!("invoices get it when {} days past due", s.day),
                    };
                    out.push(format!(
                        "new stage '{rule}/{name}' at day {} to {}: {effect}",
                        s.day,
                        reader(s)
                    ));
                }
            }
        }
        for (rule, name, o) in &old {
            if !new
                .iter()
                .any(|(_, _, s)| slot(s) == slot(o) && s.day == o.day)
            {
                out.push(format!(
                    "stage '{rule}/{name}' (day {}, to {}) is gone: nothing goes out at that day any more",
                    o.day,
                    reader(o)
                ));
            }
        }
        out
    }
}

/// One rule of a [`PolicyShape`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleShape {
    pub name: String,
    pub stages: Vec<StageShape>,
}

/// One stage of a [`RuleShape`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageShape {
    pub name: String,
    pub day: i32,
    pub channel: Channel,
    pub audience: Audience,
}

/// Where a message stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Recorded, not yet accepted; `waiting` is the last transient failure, if any.
    Pending {
        waiting: Option<String>,
    },
    Sent {
        via: String,
        at: DateTime<Utc>,
    },
    Failed {
        reason: String,
    },
    /// Dropped while pending (everything in it was paid or disputed meanwhile).
    Skipped {
        reason: String,
    },
    /// Decided again when it could go out, instead of going out as it was made.
    Dropped {
        reason: String,
    },
}

impl Status {
    /// Whether the message was never handed to a server: it failed before any attempt, or
    /// every attempt failed before the server took it (a waiting record follows each).
    pub fn undelivered(&self) -> bool {
        matches!(self, Status::Pending { waiting: Some(_) })
    }
}

/// A message and where it stands.
#[derive(Debug, Clone)]
pub struct Entry {
    pub message: Message,
    pub status: Status,
}

/// The ledger, loaded, with its file open for appending.
pub struct Ledger {
    path: PathBuf,
    file: Option<File>,
    _lock: Option<File>,
    messages: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// (rule, invoice) → the stages recorded for it, of records from before stages were kept
    /// by day.
    stages: HashMap<(String, String), Vec<String>>,
    /// (invoice, slot) → the latest stage day a message to that reader was about it.
    levels: HashMap<(String, Slot), i32>,
    /// (day, customer, slot) that already have their message.
    written: HashSet<(NaiveDate, String, Slot)>,
    skips: Vec<Skip>,
    /// (invoice, stage key, reason) of every skip recorded.
    skip_keys: HashSet<(String, String, String)>,
    /// The policy of the last send, as recorded.
    policy: Option<(PolicyShape, DateTime<Utc>)>,
    /// channel → the server its messages last went to or were made for (`smtp`, `http`).
    routes: HashMap<Channel, String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Ledger {
    /// An empty ledger in memory only (previews of days not yet sent, replays).
    pub fn in_memory() -> Ledger {
        Ledger {
            path: PathBuf::new(),
            file: None,
            _lock: None,
            messages: Vec::new(),
            by_id: HashMap::new(),
            stages: HashMap::new(),
            levels: HashMap::new(),
            written: HashSet::new(),
            skips: Vec::new(),
            skip_keys: HashSet::new(),
            policy: None,
            routes: HashMap::new(),
        }
    }

    /// The ledger of `folder`, read only (for `log` and `preview`): nothing is locked or
    /// written. A folder with no ledger yet reads as empty.
    pub fn read(folder: &Path) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::in_memory();
        ledger.path = folder.join("ledger.jsonl");
        ledger.load()?;
        Ok(ledger)
    }

    /// The ledger of `folder` for sending: locked against other senders, loaded, open for
    /// appending.
    pub fn open(folder: &Path) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        let lock_path = folder.join("ledger.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock_exclusive(&lock, &lock_path)?;
        let mut ledger = Ledger::in_memory();
        ledger.path = folder.join("ledger.jsonl");
        let complete = ledger.load()?;
        ledger._lock = Some(lock);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger.path)
            .map_err(io(&ledger.path))?;
        // Cut a torn last line off, so that what is appended next starts a line of its own.
        if file.metadata().map_err(io(&ledger.path))?.len() > complete {
            file.set_len(complete).map_err(io(&ledger.path))?;
        }
        ledger.file = Some(file);
        Ok(ledger)
    }

    /// Read the file; returns the length of its complete lines (a last line torn by a crash
    /// while it was written is left out: its message was never sent, as a pending record is
    /// durable before sending).
    fn load(&mut self) -> Result<u64, LedgerError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let mut complete = 0usize;
        let mut line_number = 0usize;
        let mut dropped = false;
        while complete < text.len() {
            line_number += 1;
            let Some(end) = text[complete..].iter().position(|&b| b == b'\n') else {
                tracing::warn!(
                    "outreach ledger {}: its last line was cut short (a crash while writing it); dropped",
                    self.path.display()
                );
                break;
            };
            let line = &text[complete..complete + end];
            complete += end + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record =
                serde_json::from_slice::<Record>(line).map_err(|e| LedgerError::Corrupt {
                    path: self.path.display().to_string(),
                    line: line_number,
                    message: e.to_string(),
                })?;
            dropped |= self.apply(record);
        }
        if dropped {
            self.reindex();
        }
        Ok(complete as u64)
    }

    /// Take `message`'s entries into the indexes.
    fn index(&mut self, message: &Message) {
        let slot = message.slot();
        for item in &message.items {
            match item.level {
                Some(level) => {
                    let at = (self.levels)
                        .entry((item.invoice_id.clone(), slot))
                        .or_insert(level);
                    *at = (*at).max(level);
                }
                // Recorded before stages were kept by day: known by name only.
                None => (self.stages)
                    .entry((item.rule.clone(), item.invoice_id.clone()))
                    .or_default()
                    .push(item.stage.clone()),
            }
        }
        self.written
            .insert((message.day, message.customer_id.clone(), slot));
    }

    /// Make the indexes again from the messages that were not dropped (a dropped message's
    /// entries are free again).
    fn reindex(&mut self) {
        self.stages.clear();
        self.levels.clear();
        self.written.clear();
        let kept: Vec<Message> = (self.messages.iter())
            .filter(|e| !matches!(e.status, Status::Dropped { .. }))
            .map(|e| e.message.clone())
            .collect();
        for message in &kept {
            self.index(message);
        }
    }

    /// Take `record` into the in-memory view; true when it dropped a message (the indexes
    /// are then to be made again, [`Ledger::reindex`]).
    fn apply(&mut self, record: Record) -> bool {
        fn status_of<'a>(ledger: &'a mut Ledger, id: &str) -> Option<&'a mut Status> {
            let i = ledger.by_id.get(id).copied()?;
            Some(&mut ledger.messages[i].status)
        }
        match record {
            Record::Pending(message) => {
                self.index(&message);
                if let Some(via) = message.via.as_ref().filter(|v| *v != "outbox") {
                    self.routes.insert(message.channel, via.clone());
                }
                match self.by_id.get(&message.id) {
                    // Recorded again (a crash before its first record was read back): the
                    // first stands.
                    Some(_) => {}
                    None => {
                        self.by_id.insert(message.id.clone(), self.messages.len());
                        self.messages.push(Entry {
                            message,
                            status: Status::Pending { waiting: None },
                        });
                    }
                }
            }
            Record::Sent { id, via, at } => {
                if via != "outbox"
                    && let Some(&i) = self.by_id.get(&id)
                {
                    self.routes
                        .insert(self.messages[i].message.channel, via.clone());
                }
                if let Some(s) = status_of(self, &id) {
                    *s = Status::Sent { via, at };
                }
            }
            Record::Waiting { id, reason, .. } => {
                if let Some(s) = status_of(self, &id)
                    && matches!(s, Status::Pending { .. })
                {
                    *s = Status::Pending {
                        waiting: Some(reason),
                    };
                }
            }
            Record::Failed { id, reason, .. } => {
                if let Some(s) = status_of(self, &id) {
                    *s = Status::Failed { reason };
                }
            }
            Record::Skipped(skip) => {
                if let Some(id) = &skip.message_id
                    && let Some(s) = status_of(self, id)
                    && matches!(s, Status::Pending { .. })
                {
                    *s = Status::Skipped {
                        reason: skip.reason.clone(),
                    };
                }
                let key = (skip.invoice_id.clone(), skip.key(), skip.reason.clone());
                self.skip_keys.insert(key);
                self.skips.push(skip);
            }
            Record::Dropped { id, reason, .. } => {
                // Its id is free: the message decided again may have the same one.
                if let Some(i) = self.by_id.remove(&id) {
                    self.messages[i].status = Status::Dropped { reason };
                    return true;
                }
            }
            Record::Policy { shape, at } => self.policy = Some((shape, at)),
        }
        false
    }

    /// Append `records` and take them in; `durable`: flushed to disk before returning (a
    /// pending message before it is sent, a mark before the next message goes out).
    pub fn append(&mut self, records: Vec<Record>, durable: bool) -> Result<(), LedgerError> {
        if let Some(file) = &mut self.file {
            let mut text = String::new();
            for record in &records {
                text.push_str(&serde_json::to_string(record).expect("a record serializes"));
                text.push('\n');
            }
            file.write_all(text.as_bytes()).map_err(io(&self.path))?;
            if durable {
                file.sync_data().map_err(io(&self.path))?;
            }
        }
        let mut dropped = false;
        for record in records {
            dropped |= self.apply(record);
        }
        if dropped {
            self.reindex();
        }
        Ok(())
    }

    /// Make everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        if let Some(file) = &mut self.file {
            file.sync_data().map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// The stages of `rule` in a message for `invoice` recorded before stages were kept by
    /// day ([`Ledger::level`] knows the others).
    pub fn stages_of(&self, rule: &str, invoice: &str) -> &[String] {
        self.stages
            .get(&(rule.to_string(), invoice.to_string()))
            .map_or(&[], |v| v.as_slice())
    }

    /// The latest stage day of a message to `slot` about `invoice`, if any: a stage of that
    /// day or earlier has gone to that reader about it, whatever its rule's or its own name.
    pub fn level(&self, invoice: &str, slot: Slot) -> Option<i32> {
        self.levels.get(&(invoice.to_string(), slot)).copied()
    }

    /// The server `channel`'s messages last went to or were made for (`smtp`, `http`), if
    /// any: such a channel does not fall back to the outbox when its server is not set.
    pub fn route(&self, channel: Channel) -> Option<&str> {
        self.routes.get(&channel).map(String::as_str)
    }

    /// The policy of the last send, and when it was recorded.
    pub fn policy(&self) -> Option<&(PolicyShape, DateTime<Utc>)> {
        self.policy.as_ref()
    }

    /// Whether this skip is recorded already (a suppressed entry is recorded once per
    /// reason): by the stage's key ([`stage_key`]), or by its names for skips recorded
    /// before stages had keys.
    pub fn has_skip(&self, skip: &Skip) -> bool {
        let named = format!("{}/{}", skip.rule, skip.stage);
        [skip.key(), named].into_iter().any(|key| {
            (self.skip_keys).contains(&(skip.invoice_id.clone(), key, skip.reason.clone()))
        })
    }

    /// Whether `customer` already has its message of `day` in `slot`.
    pub fn has_written(&self, day: NaiveDate, customer: &str, slot: Slot) -> bool {
        self.written.contains(&(day, customer.to_string(), slot))
    }

    /// Every message, in the order recorded.
    pub fn messages(&self) -> &[Entry] {
        &self.messages
    }

    /// Every skip, in the order recorded.
    pub fn skips(&self) -> &[Skip] {
        &self.skips
    }

    /// The messages recorded and not yet sent, failed, skipped or dropped, with where each
    /// stands.
    pub fn pending_entries(&self) -> Vec<Entry> {
        (self.messages.iter())
            .filter(|e| matches!(e.status, Status::Pending { .. }))
            .cloned()
            .collect()
    }
}

/// Take an exclusive lock on `file`, or say who holds it.
fn lock_exclusive(file: &File, path: &Path) -> Result<(), LedgerError> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns; released when the file is closed.
    let done = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if done == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Err(LedgerError::Locked(path.display().to_string())),
        _ => Err(io(path)(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, invoice: &str) -> Message {
        Message {
            id: id.into(),
            day: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            customer_id: "C1".into(),
            audience: Audience::Customer,
            channel: Channel::Email,
            rule: "overdue".into(),
            stage: "first".into(),
            to: "a@example.com".into(),
            language: "en".into(),
            subject: "s".into(),
            body: "b".into(),
            items: vec![Item {
                rule: "overdue".into(),
                stage: "first".into(),
                level: Some(1),
                invoice_id: invoice.into(),
                due_date: NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
                days_past_due: 30,
                open_amount: 10.0,
                currency: "USD".into(),
            }],
            recorded_at: Utc::now(),
            via: Some("smtp".into()),
        }
    }

    #[test]
    fn a_ledger_reads_back_what_it_recorded_and_its_lock_keeps_a_second_sender_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ledger = Ledger::open(dir.path()).unwrap();
            assert!(matches!(
                Ledger::open(dir.path()),
                Err(LedgerError::Locked(_))
            ));
            ledger
                .append(vec![Record::Pending(message("m1", "I1"))], true)
                .unwrap();
            ledger
                .append(vec![Record::Pending(message("m2", "I2"))], true)
                .unwrap();
            let at = Utc::now();
            let sent = Record::Sent {
                id: "m1".into(),
                via: "smtp".into(),
                at,
            };
            ledger.append(vec![sent], true).unwrap();
        }
        // A crash while the next line was written leaves it torn: it is dropped.
        let path = dir.path().join("ledger.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t\":\"sent\",\"id\":\"m2\",\"v").unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let at = Utc::now();
        let failed = Record::Failed {
            id: "m2".into(),
            reason: "550".into(),
            at,
        };
        ledger.append(vec![failed], true).unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path()).unwrap();
        // Both invoices had the day-1 stage, neither a later one, whatever became of them.
        let customer = Slot {
            audience: Audience::Customer,
            channel: None,
        };
        assert_eq!(ledger.level("I1", customer), Some(1));
        assert_eq!(ledger.level("I2", customer), Some(1));
        assert!(ledger.pending_entries().is_empty());
        assert_eq!(
            ledger.messages()[1].status,
            Status::Failed {
                reason: "550".into()
            }
        );
    }
}
