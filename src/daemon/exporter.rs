//! The export stage: spans from every execution go out in batches through one
//! [`OtlpClient`] (one request per distinct resource in a batch), in the order they were
//! produced. A job is acknowledged only after the collector answered for every span of it and
//! of every job before it; only then may the execution's cursor move. A collector that is down
//! (or answers with a retryable error) is retried with back-off, forever: nothing is dropped
//! (the coordinator stops polling while the buffer is full). Spans the collector answers as
//! rejected (OTLP `partial_success`), or refuses with a non-retryable error, are counted as
//! rejected, logged, and not sent again: sending them again would not change the answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::Health;
use super::metrics::ExporterMetrics;
use crate::otlp::{ExportError, OtlpClient};
use crate::trace::{Resource, Span};

/// Spans of one execution produced by applying its events through `through_event_id`.
#[derive(Debug)]
pub struct ExportJob {
    pub arn: Arc<str>,
    pub resource: Arc<Resource>,
    pub spans: Vec<Span>,
    pub through_event_id: u64,
    /// The marker of the page that held `through_event_id`.
    pub marker: Option<String>,
    /// The job carries the span of this invocation, settled at `through_event_id`
    /// (`Pipeline::settle`): once acknowledged, a restart must not draw it again.
    pub settled: Option<u32>,
}

/// The collector accepted every span up to and including this job.
#[derive(Debug)]
pub struct Ack {
    pub arn: Arc<str>,
    pub through_event_id: u64,
    pub marker: Option<String>,
    pub settled: Option<u32>,
    pub spans: usize,
    /// On a batch's last ack: answered once the coordinator wrote the checkpoints the batch
    /// moved. The next batch waits for it, so a crash repeats at most the batch in flight.
    pub persisted: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What the export stage counts and reports: the exporter's metrics, and the health
/// `/readyz` reads.
#[derive(Clone)]
pub struct ExportCounters {
    pub metrics: ExporterMetrics,
    pub health: Arc<Health>,
}

/// Where spans go.
pub enum Sink {
    Otlp(OtlpClient),
    /// One OTLP/JSON `ExportTraceServiceRequest` per line and resource, as the OpenTelemetry
    /// Collector's file exporter writes them (the demo without a collector).
    JsonLines(std::io::BufWriter<std::fs::File>),
    /// OTLP disabled: spans are acknowledged without being sent.
    Discard,
}

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The longest wait a collector's Retry-After (or gRPC RetryInfo) is honoured for.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// Runs until the job channel closes (then flushes what is queued) or, once `shutdown` is set,
/// until the collector refuses a batch (unsent jobs stay unacknowledged: their events are read
/// again after the restart).
pub async fn run(
    mut jobs: mpsc::UnboundedReceiver<ExportJob>,
    acks: mpsc::UnboundedSender<Ack>,
    mut sink: Sink,
    max_batch_size: usize,
    counters: ExportCounters,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_batch_size = max_batch_size.max(1);
    let mut held: Option<ExportJob> = None;
    loop {
        let first = match held.take() {
            Some(j) => j,
            None => match jobs.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        // Whole jobs up to the batch size: a crash repeats at most this one batch.
        let mut count = first.spans.len();
        let mut batch = vec![first];
        while count < max_batch_size {
            match jobs.try_recv() {
                Ok(j) if count + j.spans.len() <= max_batch_size => {
                    count += j.spans.len();
                    batch.push(j);
                }
                Ok(j) => {
                    held = Some(j);
                    break;
                }
                Err(_) => break,
            }
        }
        let counts: Vec<usize> = batch.iter().map(|j| j.spans.len()).collect();
        if let Sink::JsonLines(file) = &mut sink
            && let Err(e) = write_lines(file, &batch, &counters)
        {
            tracing::error!(error = %e, "cannot write spans to the file; stopping the export");
            return;
        }
        if let Sink::Otlp(client) = &sink {
            // Group by resource, keeping production order within each resource.
            let mut groups: Vec<(String, Arc<Resource>, Vec<Span>)> = Vec::new();
            for j in &mut batch {
                if j.spans.is_empty() {
                    continue;
                }
                let key = j.resource.key();
                let spans = std::mem::take(&mut j.spans);
                match groups.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, g)) => g.extend(spans),
                    None => groups.push((key, j.resource.clone(), spans)),
                }
            }
            for (_, resource, spans) in groups {
                for chunk in spans.chunks(max_batch_size) {
                    if !send_with_retry(client, &resource, chunk, &counters, &mut shutdown).await {
                        tracing::warn!(
                            pending_jobs = counts.len(),
                            "shutting down with spans the collector has not accepted; they will be read and sent again after the restart"
                        );
                        return;
                    }
                }
            }
        }
        let (persisted, written) = tokio::sync::oneshot::channel();
        let mut persisted = Some(persisted);
        let last = batch.len().saturating_sub(1);
        for (i, (j, spans)) in batch.into_iter().zip(counts).enumerate() {
            let _ = acks.send(Ack {
                spans,
                arn: j.arn,
                through_event_id: j.through_event_id,
                marker: j.marker,
                settled: j.settled,
                persisted: if i == last { persisted.take() } else { None },
            });
        }
        // No answer: the coordinator could not write the checkpoints (shutting down with a
        // failing disk) or is gone. Sending more would export what a restart exports again.
        if written.await.is_err() {
            tracing::warn!("the checkpoints of the last batch were not written; exporting stops");
            return;
        }
    }
}

/// Appends each job's spans as one OTLP/JSON line and flushes.
fn write_lines(
    file: &mut std::io::BufWriter<std::fs::File>,
    batch: &[ExportJob],
    counters: &ExportCounters,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut spans = 0;
    for j in batch.iter().filter(|j| !j.spans.is_empty()) {
        file.write_all(crate::trace::otlp_json::to_string(&j.resource, &j.spans).as_bytes())?;
        file.write_all(b"\n")?;
        spans += j.spans.len();
    }
    file.flush()?;
    counters.metrics.spans_exported.inc_by(spans as u64);
    counters.metrics.export_batches.inc();
    Ok(())
}

/// Sends until the collector answered for the spans: accepted, rejected (partial success) or
/// refused for good (a non-retryable error), each counted. False when shutdown came while the
/// collector kept failing with retryable errors.
async fn send_with_retry(
    client: &OtlpClient,
    resource: &Resource,
    spans: &[Span],
    counters: &ExportCounters,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut wait = RETRY_MIN;
    counters
        .health
        .sending_since_ms
        .store(crate::clock::now_ms().max(1), Ordering::Relaxed);
    let delivered =
        |counters: &ExportCounters| counters.health.sending_since_ms.store(0, Ordering::Relaxed);
    loop {
        let started = std::time::Instant::now();
        let result = client.export(resource, spans).await;
        counters
            .metrics
            .export_latency
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcome) => {
                // Never more than were sent, whatever the collector says.
                let rejected = outcome.rejected.min(spans.len() as u64);
                counters
                    .metrics
                    .spans_exported
                    .inc_by(outcome.accepted as u64);
                counters.metrics.spans_rejected.inc_by(rejected);
                counters.metrics.export_batches.inc();
                let message = outcome.message.as_deref().unwrap_or("");
                if outcome.rejected > 0 {
                    tracing::warn!(
                        endpoint = client.endpoint(),
                        rejected = outcome.rejected,
                        spans = spans.len(),
                        collector_message = message,
                        "the collector rejected spans (OTLP partial success); they are not sent again"
                    );
                } else if !message.is_empty() {
                    tracing::warn!(
                        endpoint = client.endpoint(),
                        spans = spans.len(),
                        collector_message = message,
                        "the collector accepted every span with a warning"
                    );
                }
                delivered(counters);
                return true;
            }
            Err(e) if !e.retryable() => {
                refused(&e, spans.len(), counters);
                delivered(counters);
                return true;
            }
            Err(e) => {
                counters.metrics.export_failures.inc_by(spans.len() as u64);
                if *shutdown.borrow() {
                    return false;
                }
                let pause = e.retry_after().map_or(wait, |d| d.min(RETRY_AFTER_MAX));
                tracing::warn!(error = %e, retry_in = ?pause, spans = spans.len(), "export failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The collector refused the spans for good: counted as rejected, logged, not sent again (the
/// cursor moves on rather than waiting forever on data the collector will never take).
fn refused(e: &ExportError, spans: usize, counters: &ExportCounters) {
    counters.metrics.spans_rejected.inc_by(spans as u64);
    tracing::error!(
        error = %e,
        spans,
        "the collector refused the spans for good (a non-retryable answer); they are counted as rejected and not sent again"
    );
}
