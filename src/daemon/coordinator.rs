//! The one task that owns every tracked execution: it decides what to poll and when, folds what
//! the polls bring (the pure core), hands spans to the exporter, and moves read positions when
//! the collector acknowledged them. Polls, describes and discoveries run as tasks that only do
//! I/O and report back; HTTP requests arrive as commands.

use foldhash::{HashMap, HashSet};
use foldhash::{HashMapExt as _, HashSetExt as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Health;
use super::checkpoint::{CheckpointStore, Cursor, Forgotten, TrackingChanges, Writer};
use super::exporter::{Ack, ExportJob};
use super::lambda::{ApiError, Description, ErrorKind, Lambda, Listed, Pages};
use super::metrics::{
    ExporterMetrics, OperationLabel, PollLabel, ResultLabel, SourceLabel, StateLabel,
};
use super::schedule::{Mode, Ms, Policy, Reason, Scheduler, Waiting};
use crate::arn::{ExecutionArn, FunctionParts};
use crate::clock::now_ms;
use crate::config::Config;
use crate::history::{Anomaly, AnomalyKind, Event, EventDetails};
use crate::pipeline::{Found, MetricsTarget, Pipeline, Summary};
use crate::state::{Details, Execution, ExecutionStatus, FoldOptions};
use crate::status_event::StatusEvent;
use crate::time::Timestamp;
use crate::trace::ids::TraceHeader;
use crate::trace::{Resource, TraceOptions};

/// A look at an execution whose read position sits this many events into its page probes the
/// newest events first (`ReverseOrder=true`, [`PROBE_ITEMS`] of them) instead of reading the
/// page again from its start: news that fits in the probe is taken from it, more news is read
/// forward as before, and no news cost one small answer instead of a page.
const PROBE_ABOVE: usize = 64;
const PROBE_ITEMS: u32 = 16;
/// Answers and acknowledgements taken at once after a wake-up, before the next dispatch.
const DRAIN_AT_ONCE: usize = 64;
/// Upper bound on pages read by one poll (1000 events each): a bound, not a limit anyone meets.
const MAX_PAGES_PER_POLL: usize = 1000;
/// Spans one event can complete, at most in practice (a step's last attempt and the step).
const SPANS_PER_EVENT: usize = 2;
/// How often finished executions are checked against `checkpoint.retention`.
const RETENTION_SWEEP: Duration = Duration::from_secs(60);
/// The service resumes an execution a moment after its wait ended or its retry came due (the
/// timer fires, then the function is invoked and checkpoints): the read comes this long after.
const RESUME_GRACE: Duration = Duration::from_secs(1);
/// Fresh mode: the time scale of a suspended execution's target interval, `poll.interval` ×
/// √(1 + suspended / HAZARD) (callbacks are mostly answered within a minute or two).
const HAZARD: Duration = Duration::from_secs(60);
/// An invocation is settled (drawn as having suspended the execution, `Pipeline::settle`) by
/// a read that started at least this long after the end of the read that first found the
/// history ending at its InvocationCompleted. The service writes the terminal event within
/// milliseconds of the InvocationCompleted of the invocation that ends the execution (3.3 ms at
/// most in every captured history), so a history still ending there a read later suspended.
/// Read against the daemon's own clock only: the service's clock is never compared with it.
const INVOCATION_SETTLE: Duration = Duration::from_secs(2);

/// When the invocation first found pending at `seen` may be settled.
fn settle_time(seen: Ms) -> Ms {
    seen + INVOCATION_SETTLE.as_millis() as Ms
}

/// Where a tracked execution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config,
    Api,
    Discovered,
    ChainedInvoke,
    /// Known only from a checkpoint (tracked in an earlier run).
    Checkpoint,
    /// A status-change event (`track.status_events`).
    StatusEvent,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Config,
        Source::Api,
        Source::Discovered,
        Source::ChainedInvoke,
        Source::Checkpoint,
        Source::StatusEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
            Source::Discovered => "discovered",
            Source::ChainedInvoke => "chained_invoke",
            Source::Checkpoint => "checkpoint",
            Source::StatusEvent => "status_event",
        }
    }
}

/// What the HTTP API sees of an execution.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionView {
    pub durable_execution_arn: String,
    pub status: String,
    pub source: &'static str,
    /// The last EventId the collector acknowledged.
    pub last_event_id: u64,
    /// The last EventId read and folded (ahead of `LastEventId` while spans are in flight).
    pub read_event_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_since_last_read: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_poll_in_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The `function` metric label.
    pub function_name: String,
    pub qualifier: String,
    /// `EXEC_NAME` of the ARN, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ISO 8601, from the history (or GetDurableExecution before the history is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    /// Operations seen so far (the EXECUTION operation aside); with `Retries` and
    /// `LastFailure`, counted over what this daemon has folded since it started.
    pub operations: u32,
    pub retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureView>,
    /// The trace the execution's spans are in (32 hex digits), once its start is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The latest failure of an operation (or of a step's attempt).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureView {
    pub operation: String,
    pub error: String,
}

/// What the tracked set keeps of an execution while its fold is not in memory: it ended, or it
/// is dormant (suspended, every span acknowledged, the fold on disk in its cursor until a read
/// brings news). Enough for the list, the gauges and the scheduler.
#[derive(Debug, Clone)]
struct Brief {
    status: ExecutionStatus,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    operations: u32,
    summary: Summary,
    trace_id: Option<crate::trace::ids::TraceId>,
    /// [`Execution::next_change`] (dormant).
    next_change: Option<Timestamp>,
    /// [`Execution::waits_only_for_known_times`] (dormant).
    known_times_only: bool,
    /// When each open callback started (dormant): the pending-callback gauges.
    callbacks: Box<[Timestamp]>,
}

impl Brief {
    fn of(p: &Pipeline) -> Self {
        let fold = p.execution();
        let info = fold.info();
        let callbacks = open_callbacks(fold).collect();
        Brief {
            status: info.status,
            start: info.start,
            end: info.end,
            operations: info.operations,
            summary: p.summary().clone(),
            trace_id: p.tracer().trace_id(),
            next_change: fold.next_change(),
            known_times_only: fold.waits_only_for_known_times(),
            callbacks,
        }
    }
}

/// When each open callback of the fold started.
fn open_callbacks(fold: &Execution) -> impl Iterator<Item = Timestamp> + '_ {
    fold.open_operations()
        .into_iter()
        .filter(|op| matches!(op.details, Details::Callback { .. }))
        .map(|op| op.start)
}

/// Why a registration was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `track.max_executions` executions are tracked already.
    Full { max: usize },
    /// `tracked.json` could not be written: the registration would not survive a restart.
    NotPersisted(String),
    /// The ARN hashes to another replica (`shard.*`): `owner` of `count` tracks it.
    OtherShard { owner: u32, count: u32 },
}

/// Requests from the HTTP API.
pub enum Command {
    /// Ok(true): tracked now; Ok(false): tracked already.
    Add {
        arn: ExecutionArn,
        reply: oneshot::Sender<Result<bool, Refused>>,
    },
    /// Ok(true): no longer tracked; Ok(false): was not tracked.
    Remove {
        arn: String,
        reply: oneshot::Sender<Result<bool, Refused>>,
    },
    List {
        reply: oneshot::Sender<Vec<ExecutionView>>,
    },
    Get {
        arn: String,
        reply: oneshot::Sender<Option<ExecutionView>>,
    },
    /// How the daemon draws an execution's spans (the browser draws them the same way).
    Trace {
        arn: String,
        reply: oneshot::Sender<Option<(TraceOptions, Arc<Resource>)>>,
    },
    /// Set the state gauges (running executions, pending callbacks, ...) before a scrape.
    RefreshGauges { reply: oneshot::Sender<()> },
    /// A reloaded configuration (SIGHUP): `track.*` and `poll.*` apply from now on.
    Reconfigure { config: Arc<Config> },
    /// Status-change events from the queue (`track.status_events`): what became of each, and a
    /// receiver answered once the tracking of every new one is on disk (None: nothing to wait
    /// for).
    StatusEvents {
        events: Vec<StatusEvent>,
        reply: oneshot::Sender<(Vec<EventOutcome>, Option<oneshot::Receiver<()>>)>,
    },
}

/// What a status event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// A new execution, tracked now (and on disk once the batch's receiver is answered).
    Tracked,
    /// A tracked one ended: read at once instead of at its next planned read.
    ReadNow,
    /// Nothing to do: tracked and running already, finished, forgotten after its retention,
    /// filtered out by `track.status_events`, or another replica's.
    Ignored,
    /// Not tracked for want of room (`track.max_executions`): the message stays in the queue.
    Refused,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Tracked => "tracked",
            EventOutcome::ReadNow => "read_now",
            EventOutcome::Ignored => "ignored",
            EventOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// GetDurableExecution has not answered yet.
    Describe,
    Live,
    /// Ended, and every span acknowledged: nothing more to read.
    Finished,
}

struct Tracked {
    arn: Arc<str>,
    source: Source,
    phase: Phase,
    /// The fold and the span builder; dropped once finished, and while dormant (see
    /// [`Brief`]). Boxed: a finished, dormant or unread execution (most of a large tracked
    /// set) would otherwise carry its 1.2 KB inline.
    fold: Option<Box<Pipeline>>,
    resource: Arc<Resource>,
    /// Persisted position: acknowledged by the collector.
    cursor: Cursor,
    last_read: Option<Instant>,
    last_error: Option<String>,
    /// The `function` and `qualifier` metric labels (one copy per function).
    labels: Arc<crate::metrics::Fq>,
    /// Kept from the fold when it ended or went dormant.
    brief: Option<Box<Brief>>,
    /// What reading it needs; dropped once it finished (see [`Tracked::let_go`]).
    reading: Option<Box<Reading>>,
}

/// What only an execution still read needs: most of a large tracked set has ended, and kept
/// inline this was a quarter of each entry.
#[derive(Debug)]
struct Reading {
    /// Events folded so far (>= cursor.last_event_id once the replay after a start is done).
    read_through: u64,
    /// The marker to read from next: the page that held `read_through`.
    read_marker: Option<String>,
    in_flight: bool,
    /// Why the read in flight (or the last one) was scheduled, for the debug log of reads that
    /// found nothing.
    reason: Reason,
    /// When (the scheduler's clock) the last read that brought new events ended: what the
    /// execution has waited for since is "since".
    last_news: Ms,
    /// Spans handed to the exporter and not acknowledged yet.
    unacked_jobs: usize,
    /// Buffer room set aside for the poll in flight.
    reserved: usize,
    /// A ChainedInvokeStarted held back because it named no child execution yet: its EventId
    /// and how many reads held it (see `CHAINED_INVOKE_HOLD_READS`).
    held: Option<(u64, u32)>,
    /// The highest EventId any read brought (held-back events are read again).
    fetched_through: u64,
    /// Events the page at `read_marker` holds up to `read_through`: what a look from the
    /// marker reads again.
    page_events: usize,
    /// The endpoint answers `ReverseOrder` (probing the tail works).
    probe: bool,
    /// The pending invocation (its index) and when (the scheduler's clock) the read that first
    /// found the history ending at its InvocationCompleted ended: [`INVOCATION_SETTLE`].
    pending_seen: Option<(u32, Ms)>,
}

impl Reading {
    fn new(read_through: u64, read_marker: Option<String>) -> Self {
        Reading {
            read_through,
            read_marker,
            in_flight: false,
            reason: Reason::New,
            last_news: 0,
            unacked_jobs: 0,
            reserved: 0,
            held: None,
            fetched_through: 0,
            page_events: 0,
            probe: true,
            pending_seen: None,
        }
    }
}

impl Tracked {
    /// Lets go of what only reading needs, once the execution ended and every span was
    /// acknowledged (most of a large tracked set): its file keeps the whole cursor, and
    /// nothing writes it again. The trace header stays: the browser draws the trace with it.
    fn let_go(&mut self) {
        self.reading = None;
        self.cursor.marker = None;
        self.cursor.function_arn = None;
    }

    /// Events folded so far.
    fn read_through(&self) -> u64 {
        self.reading.as_ref().map_or(0, |r| r.read_through)
    }

    /// Suspended with its fold on disk only (see [`Brief`]).
    fn is_dormant(&self) -> bool {
        self.phase == Phase::Live && self.fold.is_none() && self.brief.is_some()
    }
}

/// How many reads a ChainedInvokeStarted without DurableExecutionArn is held back (with the
/// events after it) while its operation has nothing more in the history. AWS's local emulator
/// first serves the event without the child's ARN and adds it a moment later, when the child
/// execution exists; read at once, the child would never be followed and the chained-invoke
/// span would lack its link. A plain (not durable) target never gets one: after this many
/// reads the event is taken as it is.
const CHAINED_INVOKE_HOLD_READS: u32 = 3;
/// How soon a held-back ChainedInvokeStarted is read again (the emulator fills the ARN in
/// within about 100 ms; a plain target costs these few reads and this delay).
const CHAINED_INVOKE_HOLD: Duration = Duration::from_millis(300);

/// What a job reads.
enum Job {
    Describe(Arc<str>),
    Poll(Arc<str>),
    /// A discovery page of this function.
    List(String),
}

enum JobResult {
    Described(Arc<str>, Result<Description, ApiError>),
    Polled(Arc<str>, PollOutcome),
    /// One page of a discovery pass.
    Listed(Result<(Vec<Listed>, Option<String>), ApiError>),
}

/// A discovery pass: the configured functions listed one page at a time, each page's
/// executions tracked as it arrives (a whole pass of 100,000 listed executions held at once
/// was 11 MB at the daemon's peak).
struct DiscoveryPass {
    functions: Vec<crate::config::FunctionTrack>,
    /// The function being listed.
    index: usize,
    /// Its listing asks for executions started after this.
    after: Timestamp,
    pages: Pages,
    /// A page is being read; the next is asked for by `dispatch`, never while shutting down.
    in_flight: bool,
    added: usize,
    refused: usize,
    /// The configured functions changed during the pass: another starts when it ends.
    again: bool,
}

impl DiscoveryPass {
    fn new(functions: Vec<crate::config::FunctionTrack>) -> Option<Self> {
        let after = Self::after(functions.first()?);
        Some(DiscoveryPass {
            functions,
            index: 0,
            after,
            pages: Pages::default(),
            in_flight: false,
            added: 0,
            refused: 0,
            again: false,
        })
    }

    fn after(f: &crate::config::FunctionTrack) -> Timestamp {
        Timestamp::from_millis(now_ms() - f.lookback.as_millis() as i64)
    }

    /// On to the next function: false when this was the last.
    fn next_function(&mut self) -> bool {
        self.index += 1;
        self.pages = Pages::default();
        match self.functions.get(self.index) {
            Some(f) => {
                self.after = Self::after(f);
                true
            }
            None => false,
        }
    }
}

/// The message a panicking task ended with.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned()),
        Err(e) => e.to_string(),
    }
}

struct PollOutcome {
    /// When the poll began (its requests went out at or after this).
    started: Instant,
    /// New events in EventId order, each with the index of its page in `markers`.
    events: Vec<(Event, usize)>,
    /// The marker each page was read with (None: the first page).
    markers: Vec<Option<String>>,
    marker_fallback: bool,
    /// The page budget ran out before the last page.
    truncated: bool,
    /// Events of the last page read that were already read: how much the next look at that
    /// page re-reads (above [`PROBE_ABOVE`], the next look probes the tail first).
    reread: usize,
    /// The tail probe answered in forward order (the endpoint ignores `ReverseOrder`).
    probe_unsupported: bool,
    /// A dormant execution's fold, read back from its checkpoint when the poll brought news.
    restored: Option<Box<Execution>>,
    /// Pages that brought new events.
    new_pages: usize,
    skipped: Vec<String>,
    /// Copies of an event read again within this poll with other contents (the first copy
    /// read is the one in `events`).
    conflicts: Vec<Anomaly>,
    error: Option<ApiError>,
}

impl PollOutcome {
    fn new(started: Instant) -> Self {
        PollOutcome {
            started,
            events: Vec::new(),
            markers: Vec::new(),
            marker_fallback: false,
            truncated: false,
            reread: 0,
            probe_unsupported: false,
            restored: None,
            new_pages: 0,
            skipped: Vec::new(),
            conflicts: Vec::new(),
            error: None,
        }
    }

    /// A poll that read nothing and failed.
    fn failed(e: ApiError) -> Self {
        PollOutcome {
            error: Some(e),
            ..PollOutcome::new(Instant::now())
        }
    }
}

pub struct Coordinator {
    config: Arc<Config>,
    metrics: Arc<crate::metrics::Metrics>,
    exporter_metrics: ExporterMetrics,
    lambda: Lambda,
    store: CheckpointStore,
    /// Boxed: the table keeps a pointer per slot (it has up to twice as many slots as
    /// executions, and two tables while it grows), not a whole `Tracked`.
    tracked: HashMap<Arc<str>, Box<Tracked>>,
    /// Which execution to read next, and when (the policy, pure).
    schedule: Scheduler<Arc<str>>,
    /// The scheduler's clock starts here (its milliseconds are this instant's elapsed time).
    epoch: Instant,
    changes: TrackingChanges,
    jobs: JoinSet<JobResult>,
    /// What each job in `jobs` reads, so that one that panics is answered as a failed read
    /// (its execution read again later) instead of leaving its execution marked in flight and
    /// never read again.
    running: HashMap<tokio::task::Id, Job>,
    in_flight: usize,
    export_tx: Option<mpsc::UnboundedSender<ExportJob>>,
    buffered_spans: usize,
    /// Buffer room set aside for polls in flight.
    reserved_spans: usize,
    health: Arc<Health>,
    next_discovery: Instant,
    discovery: Option<DiscoveryPass>,
    /// Writes the cursors, off this task, in groups (None once shutting down).
    writer: Option<Writer>,
    writer_task: Option<tokio::task::JoinHandle<()>>,
    /// `tracked.json` could not be written and must be again.
    tracking_unsaved: bool,
    /// One resource per function (and qualifier): every execution of it shares it.
    resources: HashMap<String, Arc<Resource>>,
    /// One copy of each function's `function` and `qualifier` labels: every execution of it
    /// shares it.
    labels: HashSet<Arc<crate::metrics::Fq>>,
}

impl Coordinator {
    /// Loads checkpoints and tracking changes and builds the tracked set.
    pub fn new(
        config: Arc<Config>,
        lambda: Lambda,
        store: CheckpointStore,
        export_tx: mpsc::UnboundedSender<ExportJob>,
        health: Arc<Health>,
        metrics: Arc<crate::metrics::Metrics>,
        exporter_metrics: ExporterMetrics,
    ) -> Result<Self, super::checkpoint::NewerFile> {
        let reread = config.checkpoint.on_newer_version == crate::config::OnNewerVersion::Reread;
        // Both looked at before anything is changed on disk.
        let (cursors, corrupt_cursors) = store.load_all(reread)?;
        let (changes, corrupt) = store.load_tracking(reread)?;
        if let Some(c) = corrupt {
            tracing::error!(path = %c.path.display(), moved_to = ?c.moved_to, reason = %c.reason, "unreadable tracking file moved aside");
        }
        let mut me = Coordinator {
            config: config.clone(),
            metrics,
            exporter_metrics,
            lambda,
            store,
            tracked: HashMap::new(),
            schedule: Scheduler::new(policy(&config)),
            epoch: Instant::now(),
            changes,
            jobs: JoinSet::new(),
            running: HashMap::new(),
            in_flight: 0,
            export_tx: Some(export_tx),
            buffered_spans: 0,
            reserved_spans: 0,
            health,
            next_discovery: Instant::now(),
            discovery: None,
            writer: None,
            writer_task: None,
            tracking_unsaved: false,
            resources: HashMap::new(),
            labels: HashSet::new(),
        };
        let (writer, task) = Writer::spawn(
            me.store.clone(),
            me.exporter_metrics.clone(),
            me.health.clone(),
        );
        me.writer = Some(writer);
        me.writer_task = Some(task);
        for c in corrupt_cursors {
            tracing::error!(path = %c.path.display(), moved_to = ?c.moved_to, reason = %c.reason, "unreadable checkpoint moved aside; that execution is read again from the start if still tracked");
            me.exporter_metrics.checkpoint_failures.inc();
        }
        let mut expired = Vec::new();
        let shard = me.config.shard.shard();
        let mut moved = 0usize;
        for cursor in cursors {
            if me.changes.removed.iter().any(|r| **r == *cursor.arn) {
                let _ = me.store.remove(&cursor.arn);
                continue;
            }
            // shard.count changed: what hashes elsewhere now is read from the start by its
            // new owner; this replica lets it go.
            if me.owned(&cursor.arn, Source::Checkpoint).is_err() {
                let _ = me.store.remove(&cursor.arn);
                moved += 1;
                continue;
            }
            if me.retention_over(&cursor) {
                expired.push(cursor.arn.clone());
            }
            me.insert(cursor, Source::Checkpoint);
        }
        // Forget before the configuration and the API list are read: they must not bring a
        // forgotten execution back.
        for arn in expired {
            me.forget(&arn);
        }
        let from_config: Vec<String> = config
            .track
            .executions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        let mut refused = 0;
        for arn in from_config {
            if !me.changes.removed.contains(&arn)
                && let Err(Refused::Full { .. }) = me.track(&arn, Source::Config)
            {
                refused += 1;
            }
        }
        let registered = me.changes.added.len();
        let added = std::mem::take(&mut me.changes.added);
        me.changes.added = added
            .into_iter()
            .filter(|a| me.owned(a, Source::Api).is_ok())
            .collect();
        moved += registered - me.changes.added.len();
        if me.changes.added.len() < registered
            && let Err(e) = me.save_changes()
        {
            tracing::warn!(error = %e, "tracked.json: cannot drop the registrations of other replicas (tried again at the next change)");
        }
        if moved > 0 {
            tracing::info!(
                moved,
                shard = shard.index,
                shard_count = shard.count,
                "executions (checkpoints and registrations) that hash to another replica now are let go; their new owners read them from the start"
            );
        }
        for arn in me.changes.added.clone() {
            if me.track(&arn, Source::Api).is_err() {
                refused += 1;
            }
        }
        if refused > 0 {
            tracing::warn!(
                refused,
                max_executions = me.config.track.max_executions,
                "track.max_executions reached: executions of the configuration and of earlier registrations are not tracked"
            );
        }
        Ok(me)
    }

    /// Starts tracking an ARN not known yet (nor forgotten after its retention); Ok(true) when
    /// it was new, Err when `track.max_executions` are tracked already (counted).
    fn track(&mut self, arn: &str, source: Source) -> Result<bool, Refused> {
        self.owned(arn, source)?;
        if self.changes.forgotten.iter().any(|f| f.arn == arn) {
            return Ok(false);
        }
        if let Some(t) = self.tracked.get_mut(arn) {
            if t.source == Source::Checkpoint {
                t.source = source;
            }
            return Ok(false);
        }
        let max = self.config.track.max_executions;
        if self.tracked.len() >= max {
            self.exporter_metrics
                .tracking_rejected
                .get_or_create(&SourceLabel {
                    source: source.as_str(),
                })
                .inc();
            return Err(Refused::Full { max });
        }
        self.insert(
            Cursor {
                arn: arn.into(),
                ..Cursor::default()
            },
            source,
        );
        Ok(true)
    }

    /// One status-change event: a new execution is tracked (its cursor written), an ended one
    /// is read at once. Duplicates and any order are harmless: tracking is idempotent and a
    /// read finds what is there.
    fn on_status_event(&mut self, e: &StatusEvent) -> EventOutcome {
        let arn = e.arn.as_str();
        let wanted = FunctionParts::from_execution_arn(arn).is_some_and(|f| {
            self.config
                .track
                .status_events
                .wants(&f.name, f.qualifier.as_deref())
        });
        if !wanted {
            return EventOutcome::Ignored;
        }
        if let Some(t) = self.tracked.get(arn) {
            if t.phase == Phase::Finished || !e.status.is_terminal() {
                return EventOutcome::Ignored;
            }
            let key = t.arn.clone();
            let now = self.mono(Instant::now());
            return if self.schedule.news(&key, now) {
                tracing::debug!(execution = %arn, status = e.status.as_str(), "status event: read at once");
                EventOutcome::ReadNow
            } else {
                EventOutcome::Ignored
            };
        }
        match self.track(arn, Source::StatusEvent) {
            Ok(true) => {
                if let (Some(w), Some(t)) = (&self.writer, self.tracked.get(arn)) {
                    w.save(t.cursor.clone());
                }
                tracing::info!(execution = %arn, status = e.status.as_str(), "tracking an execution a status event announced");
                EventOutcome::Tracked
            }
            Ok(false) | Err(Refused::OtherShard { .. }) => EventOutcome::Ignored,
            Err(_) => EventOutcome::Refused,
        }
    }

    /// Err when the ARN is another replica's (counted by where it was heard of).
    fn owned(&self, arn: &str, source: Source) -> Result<(), Refused> {
        let shard = self.config.shard.shard();
        if shard.owns(arn) {
            return Ok(());
        }
        self.exporter_metrics
            .other_shard
            .get_or_create(&SourceLabel {
                source: source.as_str(),
            })
            .inc();
        Err(Refused::OtherShard {
            owner: shard.owner(arn),
            count: shard.count,
        })
    }

    fn insert(&mut self, mut cursor: Cursor, source: Source) {
        let arn = cursor.arn.clone();
        let finished = cursor.finished_at_ms.is_some();
        let phase = if finished {
            Phase::Finished
        } else if cursor.execution_start_ms.is_some() {
            Phase::Live
        } else {
            Phase::Describe
        };
        let resource = self.resource_for(&cursor);
        let labels = self.labels_for(&arn, cursor.function_arn.as_deref());
        // Resume from the snapshot when it sits exactly at the acknowledged position. Kept on
        // disk only: in memory the live fold is the state (a JSON tree per execution would
        // cost more than the fold itself).
        let restored = match (cursor.fold.take(), finished) {
            (Some(snapshot), false) => Execution::restore(*snapshot)
                .filter(|f| f.last_event_id() == cursor.last_event_id && f.arn() == &*arn),
            _ => None,
        };
        let (fold, read_through, read_marker) = match restored {
            Some(f) => (
                Some(Box::new(self.resume(f, &cursor, Summary::default()))),
                cursor.last_event_id,
                cursor.marker.clone(),
            ),
            None => (None, 0, None),
        };
        let t = Tracked {
            arn: arn.clone(),
            source,
            phase,
            fold,
            resource,
            cursor,
            last_read: None,
            last_error: None,
            labels,
            brief: None,
            // An ended one is never read again: nothing to allocate only to let go of.
            reading: (!finished).then(|| Box::new(Reading::new(read_through, read_marker))),
        };
        let mut t = Box::new(t);
        if finished {
            t.let_go();
        }
        self.tracked.insert(arn.clone(), t);
        if !finished {
            let now = self.mono(Instant::now());
            self.schedule.add(arn, now);
        }
    }

    /// The pipeline of a fold read back from `cursor` (it sits at the acknowledged position).
    fn resume(&self, fold: Execution, cursor: &Cursor, summary: Summary) -> Pipeline {
        let options = self.trace_options(cursor.trace_header.as_deref());
        let mut p = Pipeline::resume(fold, options, summary);
        if let Some(ms) = cursor.execution_start_ms {
            p.set_execution_start(Timestamp::from_millis(ms));
        }
        p.resettle(cursor.settled_invocation);
        p
    }

    /// A read brought news to a dormant execution, or is to settle the invocation that suspended
    /// it: its fold is back from the checkpoint. When
    /// it did not come back (the file is unreadable, or not at the acknowledged position), the
    /// history is read again from the start, what was exported replayed, not drawn again, and
    /// this returns false.
    fn wake(&mut self, arn: &Arc<str>, restored: Option<Box<Execution>>) -> bool {
        let Some(t) = self.tracked.get(arn) else {
            return false;
        };
        let summary = t
            .brief
            .as_ref()
            .map(|b| b.summary.clone())
            .unwrap_or_default();
        let fold = restored
            .filter(|f| f.last_event_id() == t.read_through() && f.arn() == &**arn)
            .map(|f| Box::new(self.resume(*f, &t.cursor, summary)));
        let woken = fold.is_some();
        let t = self.tracked.get_mut(arn).expect("present");
        t.brief = None;
        t.fold = fold;
        if !woken {
            tracing::warn!(arn = %arn, last_event_id = t.cursor.last_event_id, "the dormant execution's fold did not read back from its checkpoint: reading its history again from the start");
            if let Some(r) = t.reading.as_mut() {
                r.read_through = 0;
                r.read_marker = None;
                r.page_events = 0;
            }
        }
        let result = if woken { "checkpoint" } else { "reread" };
        self.exporter_metrics
            .wakes
            .get_or_create(&ResultLabel { result })
            .inc();
        woken
    }

    /// The execution's resource: its ARN's function, else (emulator ARNs) the function ARN
    /// GetDurableExecution gave; one `Arc` shared by every execution with the same attributes.
    fn resource_for(&mut self, cursor: &Cursor) -> Arc<Resource> {
        let resource = self.new_resource(cursor);
        self.resources
            .entry(resource.key())
            .or_insert_with(|| Arc::new(resource))
            .clone()
    }

    /// An execution's metric labels, sharing the strings of the other executions of its
    /// function.
    fn labels_for(&mut self, arn: &str, function_arn: Option<&str>) -> Arc<crate::metrics::Fq> {
        let fq = crate::metrics::Fq::of(arn, function_arn);
        if let Some(shared) = self.labels.get(&fq) {
            return shared.clone();
        }
        let fq = Arc::new(fq);
        self.labels.insert(fq.clone());
        fq
    }

    fn new_resource(&self, cursor: &Cursor) -> Resource {
        let service = self.config.trace.service_name.as_deref();
        let from_arn = FunctionParts::from_execution_arn(&cursor.arn);
        let function = from_arn.or_else(|| {
            cursor
                .function_arn
                .as_deref()
                .and_then(FunctionParts::from_execution_arn)
        });
        Resource::for_function(function.as_ref(), service)
    }

    fn trace_options(&self, header: Option<&str>) -> TraceOptions {
        TraceOptions {
            id_scheme: self.config.trace.id_scheme,
            trace_header: header.and_then(|h| TraceHeader::parse(h).ok()),
            include_payloads: self.config.trace.include_payloads,
            max_attribute_length: self.config.trace.max_attribute_length,
        }
    }

    /// The scheduler's clock at `at`.
    fn mono(&self, at: Instant) -> Ms {
        at.saturating_duration_since(self.epoch).as_millis() as Ms
    }

    /// The scheduler's clock at a history time (wall clock).
    fn mono_at_wall(&self, t: Timestamp) -> Ms {
        let now = self.mono(Instant::now()) as i64;
        (now + (t.millis() - now_ms())).max(0) as Ms
    }

    fn instant(&self, at: Ms) -> Instant {
        self.epoch + Duration::from_millis(at)
    }

    /// Runs until `shutdown` turns true, then stops polling, flushes and persists.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        mut shutdown: watch::Receiver<bool>,
        exporter: tokio::task::JoinHandle<()>,
        grace: Duration,
    ) {
        let mut sweep = tokio::time::interval(RETENTION_SWEEP);
        // One timer for the next due read, moved only when that time changes (a new timer per
        // turn of the loop was a fifth of the daemon's CPU, in timer and waker churn).
        let far = || Instant::now() + Duration::from_secs(86_400);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let stop = shutdown.changed();
        tokio::pin!(stop);
        loop {
            self.dispatch();
            let next_due = self.next_due();
            if next_due != armed {
                timer.as_mut().reset(next_due.unwrap_or_else(far));
                armed = next_due;
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(ack) = acks.recv() => self.on_ack(ack),
                Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => self.on_joined(done),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                _ = sweep.tick() => {
                    if self.tracking_unsaved {
                        let _ = self.save_changes();
                    }
                    self.sweep_retention();
                }
                _ = &mut timer, if armed.is_some() => armed = None,
            }
            // Take what else is ready before deciding what to read next: one dispatch for a
            // burst of answers instead of one each.
            for _ in 0..DRAIN_AT_ONCE {
                if let Ok(ack) = acks.try_recv() {
                    self.on_ack(ack);
                } else if let Some(done) = self.jobs.try_join_next_with_id() {
                    self.on_joined(done);
                } else {
                    break;
                }
            }
        }
        tracing::info!("shutting down: no new polls; flushing spans and checkpoints");
        let deadline = Instant::now() + grace;
        // Let running polls finish so what they read is exported.
        while !self.jobs.is_empty() {
            match tokio::time::timeout_at(deadline, self.jobs.join_next_with_id()).await {
                Ok(Some(done)) => self.on_joined(done),
                Ok(None) | Err(_) => break,
            }
        }
        self.jobs.abort_all();
        // Closing the channel makes the exporter flush and end.
        self.export_tx = None;
        while let Ok(Some(ack)) = tokio::time::timeout_at(deadline, acks.recv()).await {
            self.on_ack(ack);
        }
        if tokio::time::timeout_at(deadline, exporter).await.is_err() {
            tracing::warn!(
                "the exporter did not finish in time; unacknowledged spans will be sent again after the restart"
            );
        }
        // The writer writes what is left (once more if writes fail) and ends.
        self.writer = None;
        if let Some(task) = self.writer_task.take()
            && tokio::time::timeout_at(deadline, task).await.is_err()
        {
            tracing::warn!("the checkpoint writer did not finish in time");
        }
        let pending: usize = self
            .tracked
            .values()
            .filter_map(|t| t.reading.as_ref())
            .map(|r| r.unacked_jobs)
            .sum();
        let m = &self.exporter_metrics;
        let polls = |result| {
            Reason::ALL
                .iter()
                .map(|r| {
                    let reason = r.as_str();
                    m.polls.get_or_create(&PollLabel { result, reason }).get()
                })
                .sum::<u64>()
        };
        tracing::info!(
            tracked = self.tracked.len(),
            unacknowledged_jobs = pending,
            history_calls = m.api_requests_to(super::lambda::OP_HISTORY),
            polls = polls("new_events") + polls("idle"),
            polls_with_new_events = polls("new_events"),
            pages_with_new_events = m.pages.get(),
            events = m.events.get(),
            "stopped"
        );
    }

    fn next_due(&mut self) -> Option<Instant> {
        // While no read could start (every slot taken, or the span buffer full), only a job's
        // end or an acknowledgement changes that: no timer, or the loop would spin on a due
        // read it cannot start.
        let blocked = self.in_flight >= self.config.aws.max_concurrency
            || self.buffered_spans + self.reserved_spans >= self.config.otlp.max_buffered_spans;
        let now = self.mono(Instant::now());
        let mut due = if blocked {
            None
        } else {
            self.schedule.next_wake(now).map(|at| self.instant(at))
        };
        // A pass under way needs no timer: dispatch asked for its next page, whose end wakes
        // the loop.
        let discovery = (self.discovery.is_none() && !self.config.track.functions.is_empty())
            .then_some(self.next_discovery);
        if let Some(at) = discovery {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        due
    }

    /// Starts due polls while there is room: concurrency and the span buffer.
    fn dispatch(&mut self) {
        let now = Instant::now();
        if self.discovery.is_none() && self.next_discovery <= now {
            self.discovery = DiscoveryPass::new(self.config.track.functions.clone());
        }
        self.list_next_page();
        let cap = self.config.otlp.max_buffered_spans;
        let mono_now = self.mono(now);
        while self.in_flight < self.config.aws.max_concurrency {
            // Room in the span buffer, counting what polls in flight may still bring.
            let used = self.buffered_spans + self.reserved_spans;
            if used >= cap {
                break;
            }
            let Some((arn, reason)) = self.schedule.next(mono_now) else {
                break;
            };
            let per_page = self.config.poll.page_size as usize * SPANS_PER_EVENT;
            let max_pages = ((cap - used) / per_page).clamp(1, MAX_PAGES_PER_POLL);
            let Some(t) = self.tracked.get_mut(&arn) else {
                self.schedule.remove(&arn);
                continue;
            };
            let dormant = t.is_dormant();
            let Some(r) = t.reading.as_deref_mut().filter(|r| !r.in_flight) else {
                continue;
            };
            // This read can settle the pending invocation (see `settle_if_quiet`).
            let settles = r
                .pending_seen
                .is_some_and(|(_, seen)| mono_now >= settle_time(seen));
            r.reason = reason;
            r.in_flight = true;
            let lambda = self.lambda.clone();
            match t.phase {
                Phase::Describe => {
                    self.spawn_job(Job::Describe(arn.clone()), async move {
                        let r = lambda.describe(&arn).await;
                        JobResult::Described(arn, r)
                    });
                }
                Phase::Live => {
                    let look = Look {
                        marker: r.read_marker.clone(),
                        after: r.read_through,
                        page_size: self.config.poll.page_size,
                        include_data: self.config.poll.include_execution_data,
                        max_pages,
                        probe: r.probe && r.page_events > PROBE_ABOVE,
                    };
                    let reserve = max_pages * per_page;
                    r.reserved = reserve;
                    self.reserved_spans += reserve;
                    let folds = self
                        .writer
                        .as_ref()
                        .filter(|_| dormant)
                        .map(Writer::downgrade);
                    self.spawn_job(Job::Poll(arn.clone()), async move {
                        let mut o = poll(&lambda, &arn, look).await;
                        // Parsed here, off the coordinator: for news, or to settle.
                        let wakes = !o.events.is_empty() || (settles && o.error.is_none());
                        if let Some(w) = folds.filter(|_| wakes) {
                            o.restored = w.load_fold::<Execution>(arn.clone()).await.map(Box::new);
                        }
                        JobResult::Polled(arn, o)
                    });
                }
                Phase::Finished => {}
            }
        }
    }

    /// Asks for the discovery pass's next page, unless one is being read.
    fn list_next_page(&mut self) {
        let Some(pass) = self.discovery.as_mut().filter(|p| !p.in_flight) else {
            return;
        };
        pass.in_flight = true;
        let f = pass.functions[pass.index].clone();
        let (after, marker) = (pass.after, pass.pages.marker().map(str::to_owned));
        let lambda = self.lambda.clone();
        let job = Job::List(f.name.clone());
        self.spawn_job(job, async move {
            let r = lambda
                .list_by_function(
                    &f.name,
                    f.qualifier.as_deref(),
                    &f.statuses,
                    Some(after),
                    marker.as_deref(),
                )
                .await;
            JobResult::Listed(r)
        });
    }

    /// Runs a job (it counts against `aws.max_concurrency` until it ends).
    fn spawn_job(
        &mut self,
        job: Job,
        task: impl std::future::Future<Output = JobResult> + Send + 'static,
    ) {
        let id = self.jobs.spawn(task).id();
        self.running.insert(id, job);
        self.in_flight += 1;
    }

    /// A page of the discovery pass: its executions tracked, then the next page, the next
    /// function, or the end of the pass.
    fn on_listed(&mut self, r: Result<(Vec<Listed>, Option<String>), ApiError>) {
        let Some(mut pass) = self.discovery.take() else {
            return;
        };
        pass.in_flight = false;
        let more = match r {
            Ok((items, next)) => {
                let n = items.len();
                for l in items.iter().filter(|l| l.start >= pass.after) {
                    match self.track(&l.arn, Source::Discovered) {
                        Ok(true) => pass.added += 1,
                        Ok(false) | Err(Refused::OtherShard { .. }) => {}
                        Err(_) => pass.refused += 1,
                    }
                }
                pass.pages.advance(next, n) || pass.next_function()
            }
            Err(e) => {
                tracing::warn!(error = %e, function = %pass.functions[pass.index].name, "discovery failed; trying again at the next interval");
                pass.next_function()
            }
        };
        if more {
            self.discovery = Some(pass);
            return;
        }
        self.next_discovery = match pass.again {
            true => Instant::now(),
            false => Instant::now() + self.config.track.discovery_interval,
        };
        if pass.added > 0 {
            tracing::info!(added = pass.added, "discovered executions");
        }
        if pass.refused > 0 {
            tracing::warn!(
                skipped = pass.refused,
                max_executions = self.config.track.max_executions,
                "track.max_executions reached: discovered executions skipped (listed again at the next discovery)"
            );
        }
    }

    /// A job's task ended: its result, or the panic it ended with (answered as the job's read
    /// failing, so that what it read is read again later).
    fn on_joined(&mut self, done: Result<(tokio::task::Id, JobResult), tokio::task::JoinError>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let e = match done {
            Ok((id, r)) => {
                self.running.remove(&id);
                return self.on_job(r);
            }
            Err(e) => e,
        };
        let Some(job) = self.running.remove(&e.id()) else {
            return;
        };
        if e.is_cancelled() {
            return;
        }
        let (operation, target) = match &job {
            Job::Describe(arn) => (super::lambda::OP_DESCRIBE, arn.to_string()),
            Job::Poll(arn) => (super::lambda::OP_HISTORY, arn.to_string()),
            Job::List(function) => (super::lambda::OP_LIST, function.clone()),
        };
        let why = panic_message(e);
        tracing::error!(operation, target = %target, panic = %why, "a read task panicked (a bug: please report it with this message); read again later");
        self.exporter_metrics
            .task_panics
            .get_or_create(&OperationLabel { operation })
            .inc();
        let failed = ApiError {
            operation,
            target,
            kind: ErrorKind::Other,
            message: format!("the read task panicked: {why}"),
            retry_after: None,
        };
        match job {
            Job::Describe(arn) => self.on_described(arn, Err(failed)),
            Job::Poll(arn) => self.on_polled(arn, PollOutcome::failed(failed)),
            Job::List(_) => self.on_listed(Err(failed)),
        }
    }

    fn on_job(&mut self, r: JobResult) {
        match r {
            JobResult::Described(arn, r) => self.on_described(arn, r),
            JobResult::Polled(arn, o) => self.on_polled(arn, o),
            JobResult::Listed(r) => self.on_listed(r),
        }
    }

    fn on_described(&mut self, arn: Arc<str>, r: Result<Description, ApiError>) {
        let Some(t) = self.tracked.get_mut(&arn) else {
            return;
        };
        if let Some(r) = t.reading.as_mut() {
            r.in_flight = false;
        }
        match r {
            Ok(d) => {
                t.last_error = None;
                t.cursor.execution_start_ms = Some(d.start.millis());
                t.cursor.trace_header = d.trace_header;
                t.cursor.function_arn = d.function_arn;
                t.phase = Phase::Live;
                let cursor = t.cursor.clone();
                let resource = self.resource_for(&cursor);
                let labels = self.labels_for(&arn, cursor.function_arn.as_deref());
                let t = self.tracked.get_mut(&arn).expect("present");
                t.resource = resource;
                t.labels = labels;
                self.persist(&cursor);
                // Its first history read, at once.
                let now = self.mono(Instant::now());
                self.schedule.again_at(&arn, now, Reason::New);
            }
            Err(e) => self.on_api_error(&arn, e),
        }
    }

    fn on_api_error(&mut self, arn: &Arc<str>, e: ApiError) {
        if e.kind == ErrorKind::NotFound {
            tracing::warn!(arn = %arn, error = %e, "execution not found: no longer tracked");
            self.untrack(arn);
            return;
        }
        tracing::warn!(arn = %arn, error = %e, "read failed; trying again later");
        let retry = self
            .config
            .poll
            .interval
            .max(e.retry_after.unwrap_or_default());
        if let Some(t) = self.tracked.get_mut(arn) {
            t.last_error = Some(e.to_string());
        }
        let now = self.mono(Instant::now());
        self.schedule.failed(arn, now, retry.as_millis() as Ms);
    }

    /// The reading state of a tracked execution that is still read.
    fn reading_mut(&mut self, arn: &str) -> Option<&mut Reading> {
        self.tracked.get_mut(arn)?.reading.as_deref_mut()
    }

    fn untrack(&mut self, arn: &str) -> bool {
        let existed = self.tracked.remove(arn).is_some();
        self.schedule.remove(&Arc::from(arn));
        if let Some(w) = &self.writer {
            w.remove(arn);
        }
        existed
    }

    fn on_polled(&mut self, arn: Arc<str>, mut o: PollOutcome) {
        let Some(t) = self.tracked.get_mut(&arn) else {
            return;
        };
        if o.error.is_none() {
            t.last_read = Some(Instant::now());
        }
        let Some(r) = t.reading.as_mut() else {
            return;
        };
        r.in_flight = false;
        self.reserved_spans = self
            .reserved_spans
            .saturating_sub(std::mem::take(&mut r.reserved));
        if o.probe_unsupported {
            r.probe = false;
            tracing::info!(arn = %arn, "the API ignores ReverseOrder: looks read the position's page again");
        }
        // A tail answer keeps the page, which now holds the news too.
        r.page_events = match o.reread {
            usize::MAX => r.page_events + o.events.len(),
            n => n,
        };
        if o.marker_fallback {
            self.exporter_metrics.marker_fallbacks.inc();
            tracing::info!(arn = %arn, "marker rejected or expired: read again from the start");
        }
        for s in &o.skipped {
            tracing::warn!(arn = %arn, error = %s, "event skipped");
        }
        let new_events = !o.events.is_empty();
        let completed = o.error.is_none() || new_events;
        // Events held back and read again are not new to the counters.
        let fetched_through = o.events.iter().map(|(e, _)| e.id).max().unwrap_or(0);
        let first_seen = match self.reading_mut(&arn) {
            Some(r) if fetched_through > r.fetched_through => {
                r.fetched_through = fetched_through;
                true
            }
            _ => false,
        };
        if completed {
            let result = if first_seen { "new_events" } else { "idle" };
            let reason = self.reading_mut(&arn).map_or(Reason::New, |r| r.reason);
            let reason = reason.as_str();
            self.exporter_metrics
                .polls
                .get_or_create(&PollLabel { result, reason })
                .inc();
        }
        if first_seen {
            self.exporter_metrics.pages.inc_by(o.new_pages as u64);
        }
        // A dormant execution wakes for news, or to settle its pending invocation (the poll
        // read its fold back for that).
        let dormant = self.tracked.get(&arn).is_some_and(|t| t.is_dormant());
        let wakes = dormant && (new_events || o.restored.is_some());
        let reread = wakes && !self.wake(&arn, o.restored.take());
        if reread {
            o.events.clear();
        }
        let held = !o.events.is_empty() && self.apply(&arn, o.events, &o.markers, &o.conflicts);
        if !self.tracked.contains_key(&arn) {
            return;
        }
        if let Some(e) = o.error {
            self.on_api_error(&arn, e);
            return;
        }
        let now = self.mono(Instant::now());
        // Cut short by the buffer's room, or a held-back event, or a fold to rebuild from the
        // start: the read did not see (or take) the end.
        let cut_short = (o.truncated && new_events) || reread;
        if !(cut_short || held) {
            self.settle_if_quiet(&arn, self.mono(o.started), now);
        }
        if first_seen {
            if let Some(r) = self.reading_mut(&arn) {
                r.last_news = now;
            }
        } else if let Some(r) = self.tracked.get(&arn).and_then(|t| t.reading.as_ref()) {
            tracing::debug!(execution = %arn, scheduled_as = r.reason.as_str(), "read found nothing new");
        }
        let Some(t) = self.tracked.get(&arn) else {
            return;
        };
        if cut_short {
            // Go on as soon as there is room again.
            self.schedule.again_at(&arn, now, Reason::Running);
        } else if held {
            // Read the held-back event again soon, whatever the fold waits for.
            let at = now + CHAINED_INVOKE_HOLD.as_millis() as Ms;
            self.schedule.again_at(&arn, at, Reason::Running);
        } else {
            let waiting = self.waiting(t, now);
            self.schedule.read(&arn, now, first_seen, waiting);
        }
    }

    /// What the execution waits for now, as its fold says: the scheduler's input.
    fn waiting(&self, t: &Tracked, now: Ms) -> Waiting {
        // (suspended, its next change, whether only known times can bring it)
        let (suspended, next, known_times_only) = match (t.fold.as_deref(), t.brief.as_deref()) {
            (Some(p), _) => {
                let fold = p.execution();
                if fold.is_finished() {
                    // No more reading: the end is persisted when its spans are acknowledged.
                    return Waiting::Done;
                }
                (
                    fold.is_suspended(),
                    fold.next_change(),
                    fold.waits_only_for_known_times(),
                )
            }
            // Dormant: only a suspended execution goes dormant.
            (None, Some(b)) if t.phase == Phase::Live => (true, b.next_change, b.known_times_only),
            // Read, but no event yet (an execution that has not started).
            _ => return Waiting::Running,
        };
        if !self.config.poll.adaptive || !suspended {
            return Waiting::Running;
        }
        let next = next.map(|at| self.mono_at_wall(at));
        // Fresh mode reads again to settle a pending invocation, at the first moment it can
        // (a known time is read a grace after it, so it is given a grace earlier), before a
        // known time still ahead and instead of the back-off from one already past; economy
        // settles it at whatever read comes next.
        let grace = RESUME_GRACE.as_millis() as Ms;
        let reading = t.reading.as_deref();
        let settle = match (self.config.poll.mode, reading.and_then(|r| r.pending_seen)) {
            (Mode::Fresh, Some((_, seen))) => Some(settle_time(seen).saturating_sub(grace)),
            _ => None,
        };
        let sooner = |a: Option<Ms>| match (a, settle) {
            (Some(a), Some(s)) if a.saturating_add(grace) > now => Some(a.min(s)),
            (a, s) => s.or(a),
        };
        match next {
            Some(at) if known_times_only => Waiting::At(sooner(Some(at)).unwrap_or(at)),
            until => Waiting::Unknown {
                since: reading.map_or(0, |r| r.last_news),
                until: sooner(until),
            },
        }
    }

    /// After a read that reached the end of the history: settles the pending invocation when
    /// the read started at least [`INVOCATION_SETTLE`] after the end of the read that first
    /// found the history ending at its InvocationCompleted, and sends its span; otherwise
    /// remembers when it was first found.
    fn settle_if_quiet(&mut self, arn: &Arc<str>, started: Ms, now: Ms) {
        let Some(t) = self.tracked.get_mut(arn) else {
            return;
        };
        // Dormant: the fold on disk keeps its pending invocation for the read that settles it.
        let (Some(r), Some(pipeline)) = (t.reading.as_deref_mut(), t.fold.as_deref()) else {
            return;
        };
        let pending = pipeline.execution().pending_invocation().map(|i| i.index);
        let Some(index) = pending else {
            r.pending_seen = None;
            return;
        };
        match r.pending_seen {
            Some((i, seen)) if i == index && started >= settle_time(seen) => {}
            Some((i, _)) if i == index => return,
            _ => {
                r.pending_seen = Some((index, now));
                return;
            }
        }
        r.pending_seen = None;
        let pipeline = t.fold.as_mut().expect("pending");
        let mut found = Found::default();
        let target = MetricsTarget {
            metrics: &self.metrics,
            labels: &t.labels,
        };
        let settled = pipeline.settle(Some(target), &mut found);
        for a in &found.anomalies {
            report_anomaly(&self.exporter_metrics, arn, a);
        }
        let job = ExportJob {
            arn: arn.clone(),
            resource: t.resource.clone(),
            spans: pipeline.take_spans(),
            through_event_id: r.read_through,
            marker: r.read_marker.clone(),
            settled,
        };
        r.unacked_jobs += 1;
        self.buffered_spans += job.spans.len();
        self.exporter_metrics
            .buffered
            .set(self.buffered_spans as i64);
        if let Some(tx) = &self.export_tx {
            let _ = tx.send(job);
        }
    }

    /// Folds new events. Spans go to the exporter in jobs of at most `otlp.max_batch_size`
    /// (cut between events), each with the position it reaches and that page's marker. Returns
    /// true when it held back a ChainedInvokeStarted (and what follows it) to read it again.
    fn apply(
        &mut self,
        arn: &Arc<str>,
        mut events: Vec<(Event, usize)>,
        markers: &[Option<String>],
        conflicts: &[Anomaly],
    ) -> bool {
        let follow = self.config.track.follow_chained_invokes;
        let max_batch = self.config.otlp.max_batch_size.max(1);
        let options = {
            let t = &self.tracked[arn];
            self.trace_options(t.cursor.trace_header.as_deref())
        };
        let Some(t) = self.tracked.get_mut(arn) else {
            return false;
        };
        let Some(r) = t.reading.as_deref_mut() else {
            return false;
        };
        let hold = hold_from(&events, r.read_through, r.held);
        r.held = hold;
        if let Some((id, _)) = hold {
            events.retain(|(e, _)| e.id < id);
        }
        let pipeline = t.fold.get_or_insert_with(|| {
            let mut p = Pipeline::new(arn.clone(), FoldOptions::default(), options);
            if let Some(ms) = t.cursor.execution_start_ms {
                p.set_execution_start(Timestamp::from_millis(ms));
            }
            Box::new(p)
        });
        let acked = t.cursor.last_event_id;
        // Conflicts about events applied now: not about a replay of exported ones (reported
        // before the restart) nor about held-back ones (read again, both copies, next time).
        for a in conflicts {
            if a.event_id > acked.max(r.read_through) && hold.is_none_or(|(id, _)| a.event_id < id)
            {
                report_anomaly(&self.exporter_metrics, arn, a);
            }
        }
        let mut found = Found::default();
        let mut children: Vec<String> = Vec::new();
        let mut jobs: Vec<ExportJob> = Vec::new();
        let counters = self.exporter_metrics.clone();
        let resource = t.resource.clone();
        let job = |spans, through_event_id, marker: &Option<String>| ExportJob {
            arn: arn.clone(),
            resource: resource.clone(),
            spans,
            through_event_id,
            marker: marker.clone(),
            settled: None,
        };
        for (e, page) in events {
            if e.id <= r.read_through {
                continue;
            }
            r.read_through = e.id;
            r.read_marker = markers.get(page).cloned().flatten();
            found.clear();
            if e.id <= acked {
                // Replaying what was exported before a restart: rebuild open operations (and
                // find the chained-invoke children again), nothing else.
                pipeline.replay(&e, &mut found);
            } else {
                // An invocation settled before a restart is not drawn again by this event.
                pipeline.resettle(t.cursor.settled_invocation);
                counters.events.inc();
                let target = MetricsTarget {
                    metrics: &self.metrics,
                    labels: &t.labels,
                };
                pipeline.apply(&e, Some(target), &mut found);
                for a in &found.anomalies {
                    report_anomaly(&counters, arn, a);
                }
                // Cut before the next event could take the job past a batch: an export
                // batch is whole jobs, and a crash repeats at most the batch in flight.
                if pipeline.spans().len() + SPANS_PER_EVENT > max_batch {
                    jobs.push(job(pipeline.take_spans(), r.read_through, &r.read_marker));
                }
            }
            if follow {
                children.append(&mut found.children);
            }
        }
        pipeline.resettle(t.cursor.settled_invocation);
        // The rest, and the position itself (events that drew no span still move it).
        let cut = jobs.last().map_or(acked, |j| j.through_event_id);
        if r.read_through > cut {
            jobs.push(job(pipeline.take_spans(), r.read_through, &r.read_marker));
        }
        r.unacked_jobs += jobs.len();
        for job in jobs {
            self.buffered_spans += job.spans.len();
            if let Some(tx) = &self.export_tx {
                let _ = tx.send(job);
            }
        }
        self.exporter_metrics
            .buffered
            .set(self.buffered_spans as i64);
        for child in children {
            let Ok(a) = ExecutionArn::parse(&child) else {
                continue;
            };
            match self.track(a.as_str(), Source::ChainedInvoke) {
                Ok(true) => {
                    tracing::info!(parent = %arn, child = %child, "following a chained invoke")
                }
                Ok(false) => {}
                Err(Refused::OtherShard { owner, .. }) => tracing::debug!(
                    parent = %arn,
                    child = %child,
                    owner,
                    "the chained invoke's child execution is another replica's"
                ),
                Err(_) => tracing::warn!(
                    parent = %arn,
                    child = %child,
                    max_executions = self.config.track.max_executions,
                    "track.max_executions reached: the chained invoke's child execution is not followed"
                ),
            }
        }
        hold.is_some()
    }

    /// The exporter waits for a batch's `persisted` before it sends the next one; while
    /// checkpoints cannot be written it is held, so nothing is exported that a crash would
    /// export again.
    fn on_ack(&mut self, mut ack: Ack) {
        let persisted = ack.persisted.take();
        self.record_ack(ack);
        // Answered once the positions the batch moved are on disk.
        if let (Some(p), Some(w)) = (persisted, &self.writer) {
            w.barrier(p);
        }
    }

    fn record_ack(&mut self, ack: Ack) {
        self.buffered_spans = self.buffered_spans.saturating_sub(ack.spans);
        self.exporter_metrics
            .buffered
            .set(self.buffered_spans as i64);
        let Some(t) = self.tracked.get_mut(&ack.arn) else {
            return;
        };
        let Some(r) = t.reading.as_deref_mut() else {
            return;
        };
        r.unacked_jobs = r.unacked_jobs.saturating_sub(1);
        let settled = ack
            .settled
            .filter(|s| t.cursor.settled_invocation.is_none_or(|c| *s > c));
        if ack.through_event_id <= t.cursor.last_event_id && settled.is_none() {
            return;
        }
        if ack.through_event_id > t.cursor.last_event_id {
            t.cursor.last_event_id = ack.through_event_id;
            t.cursor.marker = ack.marker;
        }
        if settled.is_some() {
            t.cursor.settled_invocation = settled;
        }
        let quiescent = r.unacked_jobs == 0 && r.read_through == t.cursor.last_event_id;
        let idle = !r.in_flight && r.held.is_none();
        let finished = quiescent && t.fold.as_ref().is_some_and(|p| p.execution().is_finished());
        let snapshot = match &t.fold {
            Some(p) if quiescent && !finished => Some(p.execution().snapshot()),
            _ => None,
        };
        if finished {
            let pipeline = t.fold.take().expect("checked");
            t.brief = Some(Box::new(Brief::of(&pipeline)));
            let fold = pipeline.into_execution();
            t.cursor.finished_status = Some(fold.info().status.as_str().into());
            t.cursor.finished_at_ms = Some(now_ms());
            t.phase = Phase::Finished;
            tracing::info!(arn = %ack.arn, status = fold.info().status.as_str(), "execution ended; stopped polling it");
        }
        // A suspended execution whose fold is going to disk with this cursor need not keep it
        // in memory until a read brings news (most of a large tracked set waits like this), or
        // settles the invocation that suspended it (that read takes the fold back from disk).
        let dormant = snapshot.is_some()
            && self.writer.is_some()
            && idle
            && t.fold
                .as_ref()
                .is_some_and(|p| p.execution().is_suspended());
        if dormant {
            let pipeline = t.fold.take().expect("checked");
            t.brief = Some(Box::new(Brief::of(&pipeline)));
        }
        // The snapshot goes to disk with the cursor; memory keeps the live fold only.
        let cursor = Cursor {
            fold: snapshot.map(Box::new),
            ..t.cursor.clone()
        };
        if finished {
            t.let_go();
        }
        self.persist(&cursor);
    }

    fn persist(&mut self, cursor: &Cursor) {
        if let Some(w) = &self.writer {
            w.save(cursor.clone());
        }
    }

    /// Writes `tracked.json` (a registration is answered only once it is on disk); a failure
    /// is counted, said by /readyz, and written again at the next sweep.
    fn save_changes(&mut self) -> Result<(), String> {
        let written = tokio::task::block_in_place(|| self.store.save_tracking(&self.changes));
        let mut error = self
            .health
            .tracking_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match written {
            Ok(()) => {
                self.tracking_unsaved = false;
                *error = None;
                Ok(())
            }
            Err(e) => {
                self.exporter_metrics.checkpoint_failures.inc();
                if error.replace(e.to_string()).is_none() {
                    tracing::error!(error = %e, "cannot write tracked.json: run-time registrations are refused (503) until it can be written");
                }
                self.tracking_unsaved = true;
                Err(e.to_string())
            }
        }
    }

    fn retention_over(&self, cursor: &Cursor) -> bool {
        let retention = self.config.checkpoint.retention.as_millis() as i64;
        cursor
            .finished_at_ms
            .is_some_and(|at| now_ms() - at > retention)
    }

    /// Drops a finished execution whose retention is over, and remembers that it was exported
    /// so that neither the configuration, the API list nor discovery tracks it again.
    fn forget(&mut self, arn: &str) {
        tracing::info!(arn, "retention over: forgetting the finished execution");
        let started_ms = self
            .tracked
            .get(arn)
            .and_then(|t| t.cursor.execution_start_ms);
        self.untrack(arn);
        self.changes.added.retain(|a| a != arn);
        let configured = self
            .config
            .track
            .executions
            .iter()
            .any(|a| a.as_str() == arn);
        if configured || self.discoverable(started_ms) {
            self.changes.forgotten.push(Forgotten {
                arn: arn.to_owned(),
                started_ms,
            });
        }
        let _ = self.save_changes();
    }

    /// Could discovery still list an execution that started then?
    fn discoverable(&self, started_ms: Option<i64>) -> bool {
        let Some(lookback) = self.config.track.functions.iter().map(|f| f.lookback).max() else {
            return false;
        };
        started_ms.is_none_or(|s| s >= now_ms() - lookback.as_millis() as i64)
    }

    fn sweep_retention(&mut self) {
        let expired: Vec<Arc<str>> = self
            .tracked
            .values()
            .filter(|t| self.retention_over(&t.cursor))
            .map(|t| t.arn.clone())
            .collect();
        for arn in expired {
            self.forget(&arn);
        }
        // Records that nothing can bring back any more.
        let before = self.changes.forgotten.len();
        let forgotten = std::mem::take(&mut self.changes.forgotten);
        self.changes.forgotten = forgotten
            .into_iter()
            .filter(|f| {
                self.config
                    .track
                    .executions
                    .iter()
                    .any(|a| a.as_str() == f.arn)
                    || self.discoverable(f.started_ms)
            })
            .collect();
        if self.changes.forgotten.len() != before {
            let _ = self.save_changes();
        }
    }

    /// The gauges that describe the tracked set now, recomputed from it (so they are right
    /// after a restart too).
    fn refresh_gauges(&self) {
        let m = &self.metrics;
        m.executions_running.clear();
        m.callbacks_pending.clear();
        m.callback_oldest_pending_age.clear();
        m.execution_operations_max.clear();
        let now = now_ms();
        let mut states = [0i64; 3];
        let mut lag = 0f64;
        let mut dormant = 0;
        for t in self.tracked.values() {
            dormant += i64::from(t.is_dormant());
            match t.phase {
                Phase::Describe => states[0] += 1,
                Phase::Finished => states[2] += 1,
                Phase::Live => states[1] += 1,
            }
            if t.phase == Phase::Finished {
                continue;
            }
            if let Some(r) = t.last_read {
                lag = lag.max(r.elapsed().as_secs_f64());
            }
            let fq = &t.labels;
            let pending = |start: Timestamp| {
                m.callbacks_pending.get_or_create(fq).inc();
                let age = (now - start.millis()) as f64 / 1000.0;
                let oldest = m.callback_oldest_pending_age.get_or_create(fq);
                if age > oldest.get() {
                    oldest.set(age);
                }
            };
            let operations = match (t.fold.as_deref(), t.brief.as_deref()) {
                (Some(p), _) => {
                    let fold = p.execution();
                    if fold.is_finished() {
                        continue;
                    }
                    open_callbacks(fold).for_each(pending);
                    fold.info().operations
                }
                (None, Some(b)) => {
                    b.callbacks.iter().copied().for_each(pending);
                    b.operations
                }
                (None, None) => {
                    if t.phase == Phase::Live {
                        m.executions_running.get_or_create(fq).inc();
                    }
                    continue;
                }
            };
            m.executions_running.get_or_create(fq).inc();
            let max = m.execution_operations_max.get_or_create(fq);
            if i64::from(operations) > max.get() {
                max.set(i64::from(operations));
            }
        }
        let em = &self.exporter_metrics;
        for (state, n) in ["describing", "running", "finished"]
            .into_iter()
            .zip(states)
        {
            em.tracked.get_or_create(&StateLabel { state }).set(n);
        }
        em.read_lag.set(lag);
        em.dormant.set(dormant);
    }

    fn view(&self, t: &Tracked) -> ExecutionView {
        let now = Instant::now();
        let status = match (&t.phase, &t.fold, &t.brief) {
            (Phase::Finished, _, _) => t
                .cursor
                .finished_status
                .as_deref()
                .unwrap_or("FINISHED")
                .to_owned(),
            (_, Some(p), _) => p.execution().info().status.as_str().to_owned(),
            (_, None, Some(b)) => b.status.as_str().to_owned(),
            (Phase::Describe, None, None) => "PENDING".to_owned(),
            (Phase::Live, None, None) => "RUNNING".to_owned(),
        };
        let (start, end, operations, summary, trace_id) = match (&t.fold, &t.brief) {
            (Some(p), _) => {
                let info = p.execution().info();
                let trace_id = p.tracer().trace_id();
                (
                    info.start,
                    info.end,
                    info.operations,
                    Some(p.summary()),
                    trace_id,
                )
            }
            (None, Some(e)) => (e.start, e.end, e.operations, Some(&e.summary), e.trace_id),
            (None, None) => (
                t.cursor.execution_start_ms.map(Timestamp::from_millis),
                None,
                0,
                None,
                None,
            ),
        };
        ExecutionView {
            durable_execution_arn: t.arn.to_string(),
            status,
            source: t.source.as_str(),
            last_event_id: t.cursor.last_event_id,
            read_event_id: t.read_through().max(t.cursor.last_event_id),
            seconds_since_last_read: t.last_read.map(|r| (now - r).as_secs_f64()),
            next_poll_in_seconds: self
                .schedule
                .next_read_at(&t.arn)
                .map(|at| self.instant(at))
                .map(|d| d.saturating_duration_since(now).as_secs_f64()),
            last_error: t.last_error.clone(),
            function_name: t.labels.function.to_string(),
            qualifier: t.labels.qualifier.to_string(),
            name: crate::arn::execution_name(&t.arn).map(str::to_owned),
            start_timestamp: start.map(Timestamp::to_iso8601),
            end_timestamp: end.map(Timestamp::to_iso8601),
            operations,
            retries: summary.map_or(0, |s| s.retries),
            last_failure: summary
                .and_then(|s| s.last_failure.as_ref())
                .map(|f| FailureView {
                    operation: f.operation.clone(),
                    error: f.error.clone(),
                }),
            trace_id: trace_id.map(|id| id.to_string()),
        }
    }

    /// New executions of the configuration are tracked (ones no longer listed are read until
    /// they end), new functions are listed at once, and the schedule follows the new `poll.*`.
    fn reconfigure(&mut self, config: Arc<Config>) {
        self.schedule.set_policy(policy(&config));
        let functions_changed = config.track.functions != self.config.track.functions;
        let interval = config.track.discovery_interval;
        self.config = config;
        let listed: Vec<String> = self
            .config
            .track
            .executions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        let (mut added, mut refused) = (0, 0);
        for arn in listed {
            if self.changes.removed.contains(&arn) {
                continue;
            }
            match self.track(&arn, Source::Config) {
                Ok(true) => added += 1,
                Ok(false) | Err(Refused::OtherShard { .. }) => {}
                Err(_) => refused += 1,
            }
        }
        if added > 0 {
            tracing::info!(
                added,
                "tracking the executions the reloaded configuration lists"
            );
        }
        if refused > 0 {
            tracing::warn!(
                refused,
                max_executions = self.config.track.max_executions,
                "track.max_executions reached: executions of the reloaded configuration are not tracked"
            );
        }
        let now = Instant::now();
        if let Some(pass) = self.discovery.as_mut() {
            pass.again |= functions_changed;
        }
        self.next_discovery = if functions_changed {
            now
        } else {
            self.next_discovery.min(now + interval)
        };
    }

    /// A run-time registration: tracked only when there is room and once it is on disk (a 201
    /// that a restart forgets would be a lie).
    fn register(&mut self, arn: &str) -> Result<bool, Refused> {
        self.owned(arn, Source::Api)?;
        let known = self.tracked.contains_key(arn);
        let max = self.config.track.max_executions;
        if !known && self.tracked.len() >= max {
            self.exporter_metrics
                .tracking_rejected
                .get_or_create(&SourceLabel { source: "api" })
                .inc();
            return Err(Refused::Full { max });
        }
        let (before, was_unsaved) = (self.changes.clone(), self.tracking_unsaved);
        self.changes.removed.retain(|r| r != arn);
        // Asked for explicitly: even a forgotten execution is read (and exported) again.
        self.changes.forgotten.retain(|f| f.arn != arn);
        if !self.changes.added.iter().any(|a| a == arn) {
            self.changes.added.push(arn.to_owned());
        }
        if before != self.changes
            && let Err(e) = self.save_changes()
        {
            self.changes = before;
            self.tracking_unsaved = was_unsaved;
            return Err(Refused::NotPersisted(e));
        }
        self.track(arn, Source::Api)
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Add { arn, reply } => {
                let _ = reply.send(self.register(arn.as_str()));
            }
            Command::Remove { arn, reply } => {
                let (before, was_unsaved) = (self.changes.clone(), self.tracking_unsaved);
                self.changes.added.retain(|a| *a != arn);
                if !self.changes.removed.contains(&arn) {
                    self.changes.removed.push(arn.clone());
                }
                // Answered only once it is on disk: else a restart would bring it back.
                let result = match self.save_changes() {
                    Ok(()) => Ok(self.untrack(&arn)),
                    Err(e) => {
                        self.changes = before;
                        self.tracking_unsaved = was_unsaved;
                        Err(Refused::NotPersisted(e))
                    }
                };
                let _ = reply.send(result);
            }
            Command::List { reply } => {
                let mut v: Vec<ExecutionView> =
                    self.tracked.values().map(|t| self.view(t)).collect();
                v.sort_by(|a, b| a.durable_execution_arn.cmp(&b.durable_execution_arn));
                let _ = reply.send(v);
            }
            Command::Get { arn, reply } => {
                let _ = reply.send(self.tracked.get(arn.as_str()).map(|t| self.view(t)));
            }
            Command::Trace { arn, reply } => {
                let v = self.tracked.get(arn.as_str()).map(|t| {
                    let options = self.trace_options(t.cursor.trace_header.as_deref());
                    (options, t.resource.clone())
                });
                let _ = reply.send(v);
            }
            Command::Reconfigure { config } => self.reconfigure(config),
            Command::StatusEvents { events, reply } => {
                let outcomes: Vec<EventOutcome> =
                    events.iter().map(|e| self.on_status_event(e)).collect();
                let persisted = match (&self.writer, outcomes.contains(&EventOutcome::Tracked)) {
                    (Some(w), true) => {
                        let (tx, rx) = oneshot::channel();
                        w.barrier(tx);
                        Some(rx)
                    }
                    _ => None,
                };
                let _ = reply.send((outcomes, persisted));
            }
            Command::RefreshGauges { reply } => {
                self.refresh_gauges();
                let _ = reply.send(());
            }
        }
    }
}

/// The scheduling policy the configuration asks for.
fn policy(config: &Config) -> Policy {
    Policy {
        mode: config.poll.mode,
        interval: config.poll.interval.as_millis() as Ms,
        max_interval: config.poll.max_interval.as_millis() as Ms,
        grace: RESUME_GRACE.as_millis() as Ms,
        hazard: HAZARD.as_millis() as Ms,
    }
}

/// The first new ChainedInvokeStarted that names no child execution while its operation (and
/// the execution) has nothing after it in `events` and that was held fewer than
/// `CHAINED_INVOKE_HOLD_READS` times: its EventId and how many reads held it now.
fn hold_from(
    events: &[(Event, usize)],
    read_through: u64,
    held: Option<(u64, u32)>,
) -> Option<(u64, u32)> {
    for (i, (e, _)) in events.iter().enumerate() {
        if e.id <= read_through {
            continue;
        }
        let (
            EventDetails::ChainedInvokeStarted {
                durable_execution_arn: None,
                ..
            },
            Some(op),
        ) = (&e.details, &e.operation)
        else {
            continue;
        };
        let settled = events[i + 1..].iter().any(|(later, _)| {
            later.operation.as_ref().is_some_and(|o| o.id == op.id)
                || later.details.terminal_status().is_some()
        });
        if settled {
            continue;
        }
        let reads = match held {
            Some((id, n)) if id == e.id => n + 1,
            _ => 1,
        };
        if reads <= CHAINED_INVOKE_HOLD_READS {
            return Some((e.id, reads));
        }
        // Held long enough: taken as it is (a plain target); look further.
    }
    None
}

/// Counts and logs one anomaly (the fold's or the poll's).
fn report_anomaly(metrics: &ExporterMetrics, arn: &str, a: &Anomaly) {
    if a.kind == AnomalyKind::UnknownEventType {
        metrics.unknown_events.inc();
    }
    metrics.anomalies.inc();
    tracing::warn!(arn = %arn, event_id = a.event_id, kind = a.kind.as_str(), "{}", a.message);
}

/// One look at an execution's history.
struct Look {
    /// The marker of the page that holds `after` (None: the first page).
    marker: Option<String>,
    /// The last EventId read.
    after: u64,
    page_size: u32,
    include_data: bool,
    max_pages: usize,
    /// Probe the newest events first (the page at `marker` is large).
    probe: bool,
}

/// Reads every page from `marker` on and returns the events after `after`. A rejected or
/// expired marker falls back to a read from the start (skipping by EventId); an empty page ends
/// the read even when it carries a NextMarker.
async fn poll(lambda: &Lambda, arn: &str, look: Look) -> PollOutcome {
    let Look {
        marker: start_marker,
        after,
        page_size,
        include_data,
        max_pages,
        probe,
    } = look;
    let mut out = PollOutcome::new(Instant::now());
    if probe && after > 0 {
        match lambda
            .history_tail(super::limiter::Class::Read, arn, PROBE_ITEMS, include_data)
            .await
        {
            Ok(tail) => {
                out.skipped.extend(tail.skipped);
                let ids: Vec<u64> = tail.events.iter().map(|e| e.id).collect();
                if ids.windows(2).all(|w| w[0] > w[1]) {
                    let newest = ids.first().copied().unwrap_or(0);
                    let oldest = ids.last().copied().unwrap_or(0);
                    if newest <= after {
                        // Nothing new: one small answer instead of the page again.
                        out.markers.push(start_marker);
                        out.reread = usize::MAX;
                        return out;
                    }
                    if oldest <= after + 1 {
                        // All the news is in the tail: the position's page stays the same.
                        let mut news: Vec<Event> =
                            tail.events.into_iter().filter(|e| e.id > after).collect();
                        news.sort_by_key(|e| e.id);
                        out.events = news.into_iter().map(|e| (e, 0)).collect();
                        out.markers.push(start_marker);
                        out.new_pages = 1;
                        out.reread = usize::MAX;
                        return out;
                    }
                    // More news than the tail holds: read forward as usual.
                } else {
                    out.probe_unsupported = true;
                }
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
    let mut walk = Pages::from(start_marker);
    let mut newest = after;
    // Pages that brought new events: the re-read of the cursor's own page does not count.
    let mut pages = 0;
    loop {
        if pages == max_pages {
            out.truncated = true;
            break;
        }
        // The first read of an execution has its own share of the budget.
        let class = if after == 0 {
            super::limiter::Class::New
        } else {
            super::limiter::Class::Read
        };
        let page = match lambda
            .history_page(class, arn, walk.marker(), page_size, include_data)
            .await
        {
            Ok(p) => p,
            // Once per poll: a fresh marker refused as well is an error, not a loop.
            Err(e)
                if e.kind == ErrorKind::InvalidParameter
                    && walk.marker().is_some()
                    && !out.marker_fallback =>
            {
                out.marker_fallback = true;
                walk.restart();
                continue;
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        };
        out.skipped.extend(page.skipped);
        let count = page.events.len();
        let page_index = out.markers.len();
        let mut events = page.events;
        events.sort_by_key(|e| e.id);
        let before = out.events.len();
        for e in events {
            // Already read (the page re-read from its marker, or an overlap): skipped by id.
            if e.id > newest {
                newest = e.id;
                out.events.push((e, page_index));
            } else if e.id > after {
                // Read earlier in this poll (older events are not kept): compared with the copy
                // kept, as `history::normalize` does for saved histories.
                if let Ok(i) = out.events.binary_search_by_key(&e.id, |(k, _)| k.id) {
                    out.conflicts
                        .extend(crate::history::conflicting_duplicate(&out.events[i].0, &e));
                }
            }
        }
        if out.events.len() > before {
            pages += 1;
        }
        out.markers.push(walk.marker().map(str::to_owned));
        // The next look re-reads this page from its start.
        out.reread = count;
        if !walk.advance(page.next_marker, count) {
            break;
        }
    }
    out.new_pages = pages;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OperationRef;

    fn ev(id: u64, op: &str, details: EventDetails) -> (Event, usize) {
        let event = Event {
            id,
            timestamp: Timestamp::from_millis(1_000 * id as i64),
            operation: (!op.is_empty()).then(|| OperationRef {
                id: op.into(),
                ..OperationRef::default()
            }),
            details,
        };
        (event, 0)
    }

    fn invoke_started(id: u64, op: &str, child: Option<&str>) -> (Event, usize) {
        ev(
            id,
            op,
            EventDetails::ChainedInvokeStarted {
                function_name: Some("target".into()),
                tenant_id: None,
                input: None,
                executed_version: None,
                durable_execution_arn: child.map(str::to_owned),
            },
        )
    }

    fn invocation_completed(id: u64) -> (Event, usize) {
        ev(id, "", EventDetails::empty("InvocationCompleted"))
    }

    #[test]
    fn a_chained_invoke_without_its_child_is_held_for_a_few_reads() {
        let events = vec![
            ev(1, "exec", EventDetails::empty("ExecutionStarted")),
            invoke_started(2, "op", None),
            invocation_completed(3),
        ];
        let mut held = None;
        for reads in 1..=CHAINED_INVOKE_HOLD_READS {
            held = hold_from(&events, 0, held);
            assert_eq!(held, Some((2, reads)));
        }
        // A plain target: after that it is taken as it is.
        assert_eq!(hold_from(&events, 0, held), None);
    }

    #[test]
    fn nothing_is_held_once_the_child_is_named_or_the_invoke_moved_on() {
        let named = vec![
            invoke_started(2, "op", Some("child/1")),
            invocation_completed(3),
        ];
        assert_eq!(hold_from(&named, 0, None), None);
        let ended = vec![
            invoke_started(2, "op", None),
            invocation_completed(3),
            ev(4, "op", EventDetails::empty("ChainedInvokeSucceeded")),
        ];
        assert_eq!(hold_from(&ended, 0, None), None);
        let execution_ended = vec![
            invoke_started(2, "op", None),
            ev(3, "exec", EventDetails::empty("ExecutionTimedOut")),
        ];
        assert_eq!(hold_from(&execution_ended, 0, None), None);
        // Already read: not considered again.
        assert_eq!(hold_from(&[invoke_started(2, "op", None)], 2, None), None);
    }

    #[test]
    fn a_later_invoke_is_held_when_the_first_was_held_long_enough() {
        let events = vec![invoke_started(2, "a", None), invoke_started(3, "b", None)];
        let first = Some((2, CHAINED_INVOKE_HOLD_READS));
        assert_eq!(hold_from(&events, 0, first), Some((3, 1)));
    }

    /// A coordinator on a checkpoint folder of its own, with a Lambda client that is never
    /// called (nothing dispatches in these tests).
    async fn coordinator(dir: &std::path::Path) -> (Coordinator, ExporterMetrics) {
        let mut config = Config::default();
        config.checkpoint.dir = dir.to_path_buf();
        let config = Arc::new(config);
        let health = Arc::new(Health::default());
        let mut metrics = crate::metrics::Metrics::new(config.metrics.name_label());
        let em = ExporterMetrics::register(metrics.registry_mut());
        let credentials = aws_sdk_lambda::config::Credentials::new("t", "t", None, None, "test");
        let sdk =
            crate::aws::sdk_config(Some("us-east-1"), Duration::from_secs(1), Some(credentials))
                .await;
        let client = super::super::lambda::lambda_client(&sdk, Some("http://127.0.0.1:9"));
        let limiter = super::super::limiter::RateLimiter::new(10.0);
        let lambda = Lambda::new(client, limiter, em.clone(), health.clone());
        let store = CheckpointStore::open(dir).unwrap();
        let (tx, _) = mpsc::unbounded_channel();
        let c = Coordinator::new(
            config,
            lambda,
            store,
            tx,
            health,
            Arc::new(metrics),
            em.clone(),
        )
        .unwrap();
        (c, em)
    }

    #[tokio::test]
    async fn an_execution_whose_read_task_panics_is_read_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, em) = coordinator(dir.path()).await;
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/run-1/5a0c7e8e-1f0b-4c4f-9d38-2a3b1f6f7a10";
        assert_eq!(c.track(arn, Source::Api), Ok(true));
        let now = c.mono(Instant::now());
        // Taken for a read as dispatch takes it, and the read's task panics.
        let (key, _) = c
            .schedule
            .next(now)
            .expect("a new execution is read at once");
        c.reading_mut(&key).unwrap().in_flight = true;
        c.spawn_job(Job::Describe(key.clone()), async { panic!("boom") });
        assert_eq!(c.in_flight, 1);
        let done = c.jobs.join_next_with_id().await.expect("one job");
        c.on_joined(done);

        assert_eq!(
            c.in_flight, 0,
            "the job no longer counts against the concurrency"
        );
        assert!(c.running.is_empty());
        let t = &c.tracked[&key];
        assert!(!t.reading.as_ref().unwrap().in_flight);
        let view = c.view(t);
        assert!(
            view.last_error
                .as_deref()
                .is_some_and(|e| e.contains("panicked: boom")),
            "{view:?}"
        );
        let again = c
            .schedule
            .next_read_at(&key)
            .expect("a read is planned again");
        assert!(again > now && again <= now + c.config.poll.interval.as_millis() as Ms + 1_000);
        assert_eq!(c.schedule.next(again), Some((key.clone(), Reason::Retry)));
        let panics = em.task_panics.get_or_create(&OperationLabel {
            operation: super::super::lambda::OP_DESCRIBE,
        });
        assert_eq!(panics.get(), 1);
    }
}
