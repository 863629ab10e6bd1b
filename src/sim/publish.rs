//! The simulator as Lambda's EventBridge rule would feed an SQS queue: every execution's
//! status changes (RUNNING, then its end) published as `Durable Execution Status Change`
//! envelopes, the message body being the whole envelope (`simulate --status-events-queue`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use super::server::SimHandle;

/// SQS's most messages per batch.
const BATCH: usize = 10;

/// Publishes until `stop`, looking every `every`; the number of events sent. A batch SQS
/// refuses is sent again at the next look (a queue delivers at least once anyway).
pub async fn status_events(
    handle: SimHandle,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let mut seen = Vec::new();
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return sent,
        }
        let now = crate::clock::now_ms();
        let events = handle.with_simulation(|s| {
            s.advance(now);
            s.status_events(&mut seen, now)
        });
        pending.extend(events.iter().map(|e| e.to_string()));
        while !pending.is_empty() {
            let n = pending.len().min(BATCH);
            let entries: Vec<_> = pending
                .iter()
                .take(n)
                .enumerate()
                .filter_map(|(i, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .ok()
                })
                .collect();
            match client
                .send_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if out.failed.is_empty() => {
                    pending.drain(..n);
                    sent += n as u64;
                }
                Ok(out) => {
                    tracing::warn!(
                        failed = out.failed.len(),
                        "SQS refused some status events; sending the batch again"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot publish status events; trying again");
                    break;
                }
            }
        }
    }
}
