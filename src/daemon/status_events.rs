//! `track.status_events`: Lambda's `Durable Execution Status Change` events, from the SQS queue
//! an EventBridge rule fills (deploy/cloudformation, deploy/terraform). The queue is long-polled
//! with aws-sdk-sqs; each event goes to the coordinator, which tracks a new execution (writing
//! its cursor) or reads an ended one at once. A message is deleted only once what it said is
//! on disk; a message that is not an event (a poison message) is counted, logged and deleted;
//! one refused for want of room stays, so the queue delivers it again (and, with a redrive
//! policy, moves it to its dead-letter queue in the end).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::coordinator::{Command, EventOutcome};
use super::metrics::{ExporterMetrics, OperationLabel, ResultLabel};
use crate::status_event::StatusEvent;

/// SQS's longest long poll.
const WAIT_SECONDS: i32 = 20;
/// SQS's most messages per receive (and per batch delete).
const BATCH: i32 = 10;
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Receives until `stop`.
pub async fn run(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    commands: mpsc::Sender<Command>,
    metrics: ExporterMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = RETRY_MIN;
    tracing::info!(queue = %queue_url, "receiving status-change events");
    loop {
        if *stop.borrow() {
            return;
        }
        let receive = client
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(WAIT_SECONDS)
            .send();
        let answer = tokio::select! {
            a = receive => a,
            _ = stop.changed() => return,
        };
        let messages = match answer {
            Ok(a) => {
                wait = RETRY_MIN;
                a.messages.unwrap_or_default()
            }
            Err(e) => {
                failed(&metrics, "ReceiveMessage");
                tracing::warn!(queue = %queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), retry_in = ?wait, "cannot receive status events");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                wait = (wait * 2).min(RETRY_MAX);
                continue;
            }
        };
        let Some(done) = handle(messages, &commands, &metrics).await else {
            return;
        };
        delete(&client, &queue_url, done, &metrics).await;
    }
}

/// What the coordinator made of `messages`; the receipt handles of those that may go. None:
/// the coordinator has stopped.
async fn handle(
    messages: Vec<aws_sdk_sqs::types::Message>,
    commands: &mpsc::Sender<Command>,
    metrics: &ExporterMetrics,
) -> Option<Vec<String>> {
    let mut done = Vec::new();
    let mut events = Vec::new();
    let mut receipts = Vec::new();
    for m in messages {
        let Some(receipt) = m.receipt_handle else {
            continue;
        };
        match StatusEvent::parse(m.body.as_deref().unwrap_or("")) {
            Ok(e) => {
                events.push(e);
                receipts.push(receipt);
            }
            Err(reason) => {
                count(metrics, "poison");
                tracing::warn!(message_id = m.message_id.as_deref().unwrap_or(""), %reason, "a queue message that is not a durable execution status event: dropped");
                done.push(receipt);
            }
        }
    }
    if events.is_empty() {
        return Some(done);
    }
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::StatusEvents { events, reply: tx })
        .await
        .ok()?;
    let (outcomes, persisted) = rx.await.ok()?;
    // Until the new executions' cursors are on disk, none of their messages goes.
    let on_disk = match persisted {
        Some(p) => p.await.is_ok(),
        None => true,
    };
    for (outcome, receipt) in outcomes.into_iter().zip(receipts) {
        count(metrics, outcome.as_str());
        let keep =
            outcome == EventOutcome::Refused || (outcome == EventOutcome::Tracked && !on_disk);
        if !keep {
            done.push(receipt);
        }
    }
    Some(done)
}

/// Deletes what was handled, ten at a time. A failed delete is only counted: the message comes
/// back and, tracking being idempotent, does nothing twice.
async fn delete(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: Vec<String>,
    metrics: &ExporterMetrics,
) {
    for chunk in receipts.chunks(BATCH as usize) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect();
        match client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed.is_empty() => {}
            Ok(out) => {
                failed(metrics, "DeleteMessageBatch");
                tracing::warn!(
                    failed = out.failed.len(),
                    "some status events could not be deleted; they come back and are harmless"
                );
            }
            Err(e) => {
                failed(metrics, "DeleteMessageBatch");
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot delete status events; they come back and are harmless");
            }
        }
    }
}

fn count(metrics: &ExporterMetrics, outcome: &'static str) {
    metrics
        .status_events
        .get_or_create(&ResultLabel { result: outcome })
        .inc();
}

fn failed(metrics: &ExporterMetrics, operation: &'static str) {
    metrics
        .sqs_errors
        .get_or_create(&OperationLabel { operation })
        .inc();
}
