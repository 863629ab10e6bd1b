//! More of `durable-exporter run` against the fake durable API and a real OTLP/gRPC receiver:
//! discovery by function, following chained invokes, wait-aware polling, a corrupt checkpoint,
//! a graceful stop while the collector is down, and checkpoint retention at start-up.
//!
//! The harness (config writer, daemon process, HTTP client, span comparison) is shared with
//! tests/it/daemon.rs, in tests/it/common/daemon.rs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::daemon::*;
use crate::common::http::free_port;
use durable_exporter::history::{Event, EventDetails, OperationRef};
use durable_exporter::sim::scripted::{
    GET_EXECUTION, GET_HISTORY, LIST_BY_FUNCTION, RecordedRequest, ScriptedApi, ScriptedExecution,
};
use durable_exporter::synth::{SynthSpec, history};
use durable_exporter::time::Timestamp;
use serde_json::Value;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Executions.

fn exec_arn(function: &str, qualifier: &str, name: &str, i: usize) -> String {
    format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{function}:{qualifier}/durable-execution/{name}/6a1f0b2c-3d4e-5f60-7182-93a4b5c6d7{i:02}"
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A synthetic finished history starting at `start_ms`, from the first seed at or after `seed`
/// whose terminal event is ExecutionSucceeded (`succeeded`) or ExecutionFailed (`!succeeded`).
fn synth_ending(ops: usize, seed: u64, start_ms: i64, succeeded: bool) -> Vec<Event> {
    for s in seed.. {
        let events = history(&SynthSpec {
            operations: ops,
            seed: s,
            start: Timestamp::from_millis(start_ms),
            include_payloads: true,
            finished: true,
        });
        let ok = matches!(
            events.last().map(|e| &e.details),
            Some(EventDetails::ExecutionSucceeded { .. })
        );
        if ok == succeeded {
            return events;
        }
    }
    unreachable!()
}

/// Builds a history by hand: EventIds 1, 2, 3 ... in push order.
#[derive(Default)]
struct Hist(Vec<Event>);

impl Hist {
    fn push(&mut self, ms: i64, operation: Option<OperationRef>, details: EventDetails) {
        let id = self.0.len() as u64 + 1;
        self.0.push(Event {
            id,
            timestamp: Timestamp::from_millis(ms),
            operation,
            details,
        });
    }

    fn invocation(&mut self, ms: i64, start: i64, end: i64, request: &str) {
        self.push(
            ms,
            None,
            EventDetails::InvocationCompleted {
                start: Some(Timestamp::from_millis(start)),
                end: Some(Timestamp::from_millis(end)),
                request_id: Some(request.to_owned()),
                error: None,
            },
        );
    }
}

fn op(id: &str, name: &str, sub_type: Option<&str>) -> Option<OperationRef> {
    Some(OperationRef {
        id: id.into(),
        name: Some(name.into()),
        parent_id: None,
        sub_type: sub_type.map(Into::into),
    })
}

/// Requests of `op` (any operation when None) for `target`.
fn requests_for(fake: &ScriptedApi, op: Option<&str>, target: &str) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| op.is_none_or(|o| r.op == o) && r.target == target)
        .collect()
}

/// Polls (every 50 ms) until the wall clock passes `at_ms`.
async fn wall_clock_past(at_ms: i64) {
    while now_ms() <= at_ms {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Discovery.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_recent_executions_of_the_listed_function() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let now = now_ms();
    let recent = now - 60_000;
    let o1 = (
        exec_arn("orders", "$LATEST", "order-1", 1),
        synth_ending(12, 11, recent, true),
    );
    let o2 = (
        exec_arn("orders", "$LATEST", "order-2", 2),
        synth_ending(12, 2_000, recent + 1_500, true),
    );
    // Not to be followed: another function, started too long ago, a status not asked for,
    // another qualifier.
    let other_function = (
        exec_arn("billing", "$LATEST", "bill-1", 3),
        synth_ending(8, 30, recent, true),
    );
    let too_old = (
        exec_arn("orders", "$LATEST", "order-old", 4),
        synth_ending(8, 40, now - 3 * 3_600_000, true),
    );
    let failed = (
        exec_arn("orders", "$LATEST", "order-failed", 5),
        synth_ending(8, 50, recent, false),
    );
    let other_qualifier = (
        exec_arn("orders", "live", "order-live", 6),
        synth_ending(8, 60, recent, true),
    );
    let followed = vec![o1.clone(), o2.clone()];
    let ignored = [other_function, too_old, failed, other_qualifier];
    add_all(&fake, &followed);
    add_all(&fake, &ignored);

    let s = setup(
        &fake,
        receiver.addr,
        &[],
        "track:\n  discovery_interval: 1s\n  functions:\n    - name: orders\n      qualifier: \"$LATEST\"\n      statuses: [RUNNING, SUCCEEDED]\n      lookback: 1h\n",
    );
    let d = Daemon::start(&s, 1).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the two recent orders executions to be discovered and end",
        all_finished(&followed),
    )
    .await;
    let tracked: HashSet<&String> = v.keys().collect();
    assert_eq!(
        tracked,
        followed.iter().map(|(a, _)| a).collect::<HashSet<_>>(),
        "exactly the recent orders executions are tracked: {v:#?}"
    );
    for (a, _) in &followed {
        assert_eq!(v[a].source, "discovered", "{a}");
    }

    // The listing asked for what the config says.
    let lists = requests_for(&fake, Some(LIST_BY_FUNCTION), "orders");
    assert!(!lists.is_empty(), "{:?}", fake.requests());
    for r in &lists {
        assert_eq!(r.param("Qualifier"), Some("$LATEST"), "{r:?}");
        let statuses: HashSet<&str> = r
            .params("Statuses")
            .into_iter()
            .flat_map(|v| v.split(','))
            .collect();
        assert_eq!(statuses, HashSet::from(["RUNNING", "SUCCEEDED"]), "{r:?}");
        let after = r
            .param("StartedAfter")
            .expect("StartedAfter (the lookback)");
        let after = aws_sdk_lambda::primitives::DateTime::from_str(
            after,
            aws_sdk_lambda::primitives::DateTimeFormat::DateTime,
        )
        .unwrap();
        let lookback = now_ms() - after.to_millis().unwrap();
        assert!(
            (3_600_000..3_600_000 + 60_000).contains(&lookback),
            "StartedAfter {lookback} ms ago, the lookback is 1h"
        );
    }
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.op == LIST_BY_FUNCTION && r.target != "orders")
            .count(),
        0,
        "only the configured function is listed"
    );

    // A new execution of the function is discovered at a later interval.
    let lists_before = fake.count(LIST_BY_FUNCTION);
    let o3 = (
        exec_arn("orders", "$LATEST", "order-3", 7),
        synth_ending(10, 70, now_ms() - 30_000, true),
    );
    add_all(&fake, std::slice::from_ref(&o3));
    let all = vec![o1, o2, o3.clone()];
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(10),
        "the third execution to be discovered and end",
        all_finished(&all),
    )
    .await;
    assert_eq!(v.len(), 3, "{v:#?}");
    assert_eq!(v[&o3.0].source, "discovered");
    assert!(fake.count(LIST_BY_FUNCTION) > lists_before);
    // Listings come at the discovery interval, not faster.
    let times: Vec<Instant> = requests_for(&fake, Some(LIST_BY_FUNCTION), "orders")
        .iter()
        .map(|r| r.arrived)
        .collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(950),
            "two listings {:?} apart (discovery_interval 1s)",
            w[1] - w[0]
        );
    }

    // Nothing else was read or exported.
    for (a, _) in &ignored {
        assert!(
            requests_for(&fake, None, a).is_empty(),
            "{a} was read: {:?}",
            requests_for(&fake, None, a)
        );
    }
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&all), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_tracks_each_listing_page_as_it_arrives_across_functions() {
    let fake = ScriptedApi::start().await;
    // Listings of two executions a page: five orders executions are three pages.
    fake.set_list_page_limit(Some(2));
    let receiver = crate::common::otlp::grpc().await;
    let recent = now_ms() - 60_000;
    let orders: Vec<(String, Vec<Event>)> = (0..5)
        .map(|i| {
            (
                exec_arn("orders", "$LATEST", &format!("order-p{i}"), 10 + i),
                synth_ending(6, 100 + i as u64 * 10, recent + i as i64 * 1_000, true),
            )
        })
        .collect();
    let billing: Vec<(String, Vec<Event>)> = (0..2)
        .map(|i| {
            (
                exec_arn("billing", "$LATEST", &format!("bill-p{i}"), 20 + i),
                synth_ending(6, 200 + i as u64 * 10, recent + i as i64 * 1_000, true),
            )
        })
        .collect();
    let all: Vec<_> = orders.iter().chain(&billing).cloned().collect();
    add_all(&fake, &all);

    let s = setup(
        &fake,
        receiver.addr,
        &[],
        "track:\n  discovery_interval: 1h\n  functions:\n    - name: orders\n      statuses: [SUCCEEDED]\n      lookback: 1h\n    - name: billing\n      statuses: [SUCCEEDED]\n      lookback: 1h\n",
    );
    let d = Daemon::start(&s, 1).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the executions of both functions to be discovered and end",
        all_finished(&all),
    )
    .await;
    assert_eq!(v.len(), all.len(), "{v:#?}");
    for (a, _) in &all {
        assert_eq!(v[a].source, "discovered", "{a}");
    }

    // One pass (the interval is an hour): orders in three pages, each after the one before
    // with its marker, then billing in one.
    let order_lists = requests_for(&fake, Some(LIST_BY_FUNCTION), "orders");
    assert_eq!(order_lists.len(), 3, "{order_lists:#?}");
    assert_eq!(order_lists[0].param("Marker"), None);
    assert!(order_lists[1].param("Marker").is_some());
    assert!(order_lists[2].param("Marker").is_some());
    assert_ne!(
        order_lists[1].param("Marker"),
        order_lists[2].param("Marker")
    );
    let billing_lists = requests_for(&fake, Some(LIST_BY_FUNCTION), "billing");
    assert_eq!(billing_lists.len(), 1, "{billing_lists:#?}");
    assert!(billing_lists[0].arrived >= order_lists[2].arrived);

    // A page's executions are tracked, and read, as the page arrives: the first page's
    // executions are described before the pass reaches its last page.
    for (a, _) in &orders[..2] {
        let first = requests_for(&fake, Some(GET_EXECUTION), a)
            .first()
            .map(|r| r.arrived)
            .unwrap_or_else(|| panic!("{a} never described"));
        assert!(
            first < order_lists[2].arrived,
            "{a} described {:?} after the last page was asked for",
            first - order_lists[2].arrived
        );
    }

    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&all), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// 2. Chained invokes.

/// A parent whose chained invoke started the durable execution `child`.
fn parent_with_chained_invoke(child: &str) -> Vec<Event> {
    let t = 1_795_248_229_000;
    let exec = op("0f4c9a52-parent", "checkout-7", None);
    let charge = op("ci-charge", "charge", Some("ChainedInvoke"));
    let mut h = Hist::default();
    h.push(
        t,
        exec.clone(),
        EventDetails::ExecutionStarted {
            input: None,
            execution_timeout_seconds: Some(900),
        },
    );
    h.push(
        t + 400,
        charge.clone(),
        EventDetails::ChainedInvokeStarted {
            function_name: Some("payments".into()),
            tenant_id: None,
            input: None,
            executed_version: Some("$LATEST".into()),
            durable_execution_arn: Some(child.to_owned()),
        },
    );
    h.invocation(t + 450, t + 150, t + 440, "req-parent-1");
    h.push(
        t + 2_000,
        charge,
        EventDetails::ChainedInvokeSucceeded { result: None },
    );
    let step = op("st-receipt", "send-receipt", Some("Step"));
    h.push(t + 2_100, step.clone(), EventDetails::StepStarted);
    h.push(
        t + 2_180,
        step,
        EventDetails::StepSucceeded {
            result: None,
            retry: None,
        },
    );
    h.invocation(t + 2_200, t + 2_050, t + 2_190, "req-parent-2");
    h.push(
        t + 2_201,
        exec,
        EventDetails::ExecutionSucceeded { result: None },
    );
    h.0
}

fn chained_pair() -> ((String, Vec<Event>), (String, Vec<Event>)) {
    let child_arn = exec_arn("payments", "$LATEST", "pay-7", 20);
    let child = synth_ending(10, 77, 1_795_248_229_400, true);
    let parent_arn = exec_arn("checkout", "$LATEST", "checkout-7", 21);
    let parent = parent_with_chained_invoke(&child_arn);
    ((parent_arn, parent), (child_arn, child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_invokes_are_followed_when_asked() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let (parent, child) = chained_pair();
    let both = vec![parent.clone(), child.clone()];
    add_all(&fake, &both);
    let s = setup(
        &fake,
        receiver.addr,
        std::slice::from_ref(&parent.0),
        "track:\n  follow_chained_invokes: true\n",
    );
    let d = Daemon::start(&s, 1).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the parent and its child to end",
        all_finished(&both),
    )
    .await;
    assert_eq!(v[&parent.0].source, "config");
    assert_eq!(v[&child.0].source, "chained_invoke");
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(!requests_for(&fake, Some(GET_HISTORY), &child.0).is_empty());
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&both), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_invokes_are_not_followed_by_default() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let (parent, child) = chained_pair();
    add_all(&fake, &[parent.clone(), child.clone()]);
    let s = setup(&fake, receiver.addr, std::slice::from_ref(&parent.0), "");
    let d = Daemon::start(&s, 1).await;
    // The child would be tracked the moment ChainedInvokeStarted is folded, long before the
    // parent's end is acknowledged.
    let only_parent = std::slice::from_ref(&parent);
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the parent to end",
        all_finished(only_parent),
    )
    .await;
    assert_eq!(v.len(), 1, "only the parent is tracked: {v:#?}");
    assert!(
        requests_for(&fake, None, &child.0).is_empty(),
        "the child was read: {:?}",
        requests_for(&fake, None, &child.0)
    );
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(only_parent), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// 3. Wait-aware scheduling.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_polled_at_its_end_and_a_callback_with_back_off() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let wait_arn = exec_arn("orders", "$LATEST", "order-wait", 30);
    let cb_arn = exec_arn("orders", "$LATEST", "order-callback", 31);
    // Wall clock and monotonic clock together, to place the wait's end on the fake's log.
    let (t0, i0) = (now_ms(), Instant::now());
    let instant_of = |ms: i64| i0 + Duration::from_millis((ms - t0).max(0) as u64);
    let wait_end = t0 + 3_000;

    let exec = op("exec-wait", "order-wait", None);
    let mut w = Hist::default();
    w.push(
        t0 - 2_000,
        exec.clone(),
        EventDetails::ExecutionStarted {
            input: None,
            execution_timeout_seconds: None,
        },
    );
    let s1 = op("s1", "reserve-stock", Some("Step"));
    w.push(t0 - 1_900, s1.clone(), EventDetails::StepStarted);
    w.push(
        t0 - 1_850,
        s1,
        EventDetails::StepSucceeded {
            result: None,
            retry: None,
        },
    );
    let w1 = op("w1", "cool-off", Some("Wait"));
    w.push(
        t0 - 1_800,
        w1.clone(),
        EventDetails::WaitStarted {
            duration_seconds: Some(5),
            scheduled_end: Some(Timestamp::from_millis(wait_end)),
        },
    );
    w.invocation(t0 - 1_750, t0 - 1_990, t0 - 1_760, "req-w-1");
    let visible_at_first = w.0.len();
    w.push(
        wait_end,
        w1,
        EventDetails::WaitSucceeded {
            duration_seconds: Some(5),
        },
    );
    let s2 = op("s2", "ship", Some("Step"));
    w.push(wait_end + 100, s2.clone(), EventDetails::StepStarted);
    w.push(
        wait_end + 150,
        s2,
        EventDetails::StepSucceeded {
            result: None,
            retry: None,
        },
    );
    w.invocation(wait_end + 200, wait_end + 50, wait_end + 190, "req-w-2");
    w.push(
        wait_end + 201,
        exec,
        EventDetails::ExecutionSucceeded { result: None },
    );
    let wait_events = w.0;

    let mut c = Hist::default();
    c.push(
        t0 - 2_000,
        op("exec-cb", "order-callback", None),
        EventDetails::ExecutionStarted {
            input: None,
            execution_timeout_seconds: None,
        },
    );
    c.push(
        t0 - 1_900,
        op("c1", "approval", Some("Callback")),
        EventDetails::CallbackStarted {
            callback_id: Some("Y2FsbGJhY2stMQ==".into()),
            timeout_seconds: None,
            heartbeat_timeout_seconds: None,
        },
    );
    c.invocation(t0 - 1_850, t0 - 1_990, t0 - 1_860, "req-c-1");
    let cb_events = c.0;

    fake.add_execution(
        ScriptedExecution::from_events(&wait_arn, &wait_events).with_visible(visible_at_first),
    );
    fake.add_execution(ScriptedExecution::from_events(&cb_arn, &cb_events));
    let s = setup(
        &fake,
        receiver.addr,
        &[wait_arn.clone(), cb_arn.clone()],
        "poll:\n  interval: 100ms\n  max_interval: 10s\n  mode: economy\n",
    );
    let d = Daemon::start(&s, 1).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(10),
        "every visible event read",
        |v| {
            v.get(&wait_arn)
                .is_some_and(|x| x.read == visible_at_first as u64)
                && v.get(&cb_arn)
                    .is_some_and(|x| x.read == cb_events.len() as u64)
        },
    )
    .await;
    let window_start = Instant::now();
    // The next read of the wait-suspended execution is planned for just after the wait's end
    // (the daemon gives the service 1 s to resume it).
    let planned = v[&wait_arn].next_poll_in.expect("a next poll is planned");
    let until_end = (wait_end - now_ms()) as f64 / 1000.0;
    assert!(
        (planned - (until_end + 1.0)).abs() < 0.4,
        "next poll in {planned:.2}s, the wait ends in {until_end:.2}s"
    );

    // A rate over time: two real seconds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window_end = window_start + Duration::from_secs(2);
    let in_window = |arn: &str| {
        requests_for(&fake, Some(GET_HISTORY), arn)
            .into_iter()
            .filter(|r| r.arrived >= window_start && r.arrived < window_end)
            .count()
    };
    let wait_polls = in_window(&wait_arn);
    assert!(
        wait_polls <= 1,
        "{wait_polls} reads of the execution waiting until its wait's end"
    );
    // The callback's reads back off from poll.interval: 100, 200, 400, 800 ms ...
    let cb_times: Vec<Instant> = requests_for(&fake, Some(GET_HISTORY), &cb_arn)
        .iter()
        .map(|r| r.arrived)
        .collect();
    let first = cb_times[0];
    let early = cb_times
        .iter()
        .filter(|t| **t < first + Duration::from_secs(2))
        .count();
    assert!(
        early >= 4,
        "{early} reads of the callback execution within 2 s of its first: {:?}",
        cb_times.iter().map(|t| *t - first).collect::<Vec<_>>()
    );
    assert!(in_window(&cb_arn) >= 2, "the callback execution is polled");
    let gaps: Vec<Duration> = cb_times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "in 2 s: {wait_polls} reads of the wait-suspended execution, {} of the callback one; callback gaps {gaps:?}; next poll planned in {planned:.3}s, wait ends in {until_end:.3}s",
        in_window(&cb_arn)
    );
    // Each wait at least doubles: 100, 200, 400, 800 ms (a gap is the wait plus latencies,
    // so these lower bounds hold under load).
    assert!(gaps.len() >= 3, "{gaps:?}");
    for (k, g) in gaps.iter().take(4).enumerate() {
        let least = Duration::from_millis((100 << k) - 10);
        assert!(*g >= least, "gap {k} is {g:?}, below {least:?}: {gaps:?}");
    }

    let wait_exec = vec![(wait_arn.clone(), wait_events.clone())];
    // The rest appears; the daemon reads it at the wait's end, not before, and soon after.
    let revealed_at = Instant::now();
    fake.reveal_all(&wait_arn);
    let deadline = instant_of(wait_end)
        + Duration::from_secs(1)
        + Duration::from_millis(100)
        + Duration::from_secs(1);
    wait_for(
        &d,
        s.api,
        deadline.saturating_duration_since(Instant::now()),
        "the rest read within the 1 s resume grace + poll.interval + 1 s of the wait's end",
        |v| {
            v.get(&wait_arn)
                .is_some_and(|x| x.read == wait_events.len() as u64)
        },
    )
    .await;
    if revealed_at + Duration::from_millis(300) < instant_of(wait_end) {
        let early_reads: Vec<Duration> = requests_for(&fake, Some(GET_HISTORY), &wait_arn)
            .iter()
            .filter(|r| {
                r.arrived >= revealed_at
                    && r.arrived + Duration::from_millis(150) < instant_of(wait_end)
            })
            .map(|r| instant_of(wait_end) - r.arrived)
            .collect();
        assert!(
            early_reads.is_empty(),
            "read before the wait's end (by {early_reads:?})"
        );
    } else {
        eprintln!("the reveal came too late to check that nothing was read early");
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(10),
        "the wait execution to end",
        all_finished(&wait_exec),
    )
    .await;
    let (got, _) = received(&receiver);
    assert_contains_all(&expected(&wait_exec), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// 4. A corrupt checkpoint.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_moved_aside_and_the_execution_read_again() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let exec = (
        exec_arn("orders", "$LATEST", "order-corrupt", 40),
        synth_ending(30, 400, 1_795_248_229_114, true),
    );
    let execs = vec![exec.clone()];
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, std::slice::from_ref(&exec.0), "");
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(d.terminate(Duration::from_secs(25)).await.success());

    let (path, cursor) = s.cursor(&exec.0).expect("a checkpoint for the execution");
    assert_eq!(cursor["last_event_id"], exec.1.len() as u64, "{cursor}");
    assert_eq!(s.checkpoint_files(), vec![path.clone()]);
    let garbage = b"\x00\x17{\"version\":\"1\",\"arn\": not json at all";
    std::fs::write(&path, garbage).unwrap();
    fake.reset_log();
    let sent_before = receiver.requests().len();

    let d = Daemon::start(&s, 2).await;
    // The cursor is gone: the execution starts over (PENDING, nothing acknowledged) and ends.
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution read again to its end",
        all_finished(&execs),
    )
    .await;
    let logs = d.logs();
    assert!(
        logs.contains("ERROR")
            && logs.contains("unreadable checkpoint")
            && logs.contains(&*path.file_name().unwrap().to_string_lossy()),
        "no error about the corrupt checkpoint:\n{logs}"
    );
    let files = s.checkpoint_files();
    let aside: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(aside[0]).unwrap(), garbage, "moved as it was");
    // Where the garbage was, there is now a valid cursor of the re-read (or nothing).
    if let Ok(now) = std::fs::read(&path) {
        assert_ne!(now, garbage, "the garbage is still in place");
        let v: Value = serde_json::from_slice(&now).expect("a valid cursor");
        assert_eq!(v["arn"], exec.0.as_str());
    }
    // Read again from the start.
    let reads = requests_for(&fake, Some(GET_HISTORY), &exec.0);
    assert!(!reads.is_empty(), "not read again");
    assert_eq!(
        reads[0].param("Marker"),
        None,
        "the re-read starts at the start"
    );
    assert!(!requests_for(&fake, Some(GET_EXECUTION), &exec.0).is_empty());
    // The re-read exported every span again, and nothing is missing overall.
    let want = expected(&execs);
    let (again, _) = spans_of(&receiver.requests()[sent_before..]);
    assert_contains_all(&want, &again);
    let (got, _) = received(&receiver);
    assert_exact(&want, &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// 5. Graceful stop while the collector is down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_with_the_collector_down_loses_nothing() {
    let fake = ScriptedApi::start().await;
    let exec = (
        exec_arn("orders", "$LATEST", "order-down", 50),
        synth_ending(25, 500, 1_795_248_229_114, true),
    );
    let execs = vec![exec.clone()];
    add_all(&fake, &execs);
    // Nothing listens here during the first run.
    let otlp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let s = setup(&fake, otlp, std::slice::from_ref(&exec.0), "");
    let d = Daemon::start(&s, 1).await;
    let n = exec.1.len() as u64;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution read",
        |v| v.get(&exec.0).is_some_and(|x| x.read == n),
    )
    .await;
    assert_eq!(
        v[&exec.0].last, 0,
        "acknowledged by a collector that is down"
    );
    let stopping = Instant::now();
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status:?}");
    eprintln!("stopped in {:?}", stopping.elapsed());
    // The cursor did not move without an acknowledgement.
    let (_, cursor) = s
        .cursor(&exec.0)
        .expect("the cursor (written when described)");
    assert_eq!(cursor["last_event_id"], 0, "{cursor}");
    assert!(cursor.get("finished_at_ms").is_none(), "{cursor}");

    let receiver = crate::common::otlp::grpc_on(otlp).await;
    let d = Daemon::start(&s, 2).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// 6. Retention.

/// Waits (polling the wall clock) until the finished cursor of `arn` is older than `retention`.
async fn retention_passes(s: &Setup, arn: &str, retention: Duration) {
    let (_, cursor) = s.cursor(arn).expect("a finished cursor");
    let at = cursor["finished_at_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("not finished: {cursor}"));
    wall_clock_past(at + retention.as_millis() as i64 + 50).await;
}

/// An execution known only from its checkpoint (no longer configured), finished longer ago than
/// `checkpoint.retention`: the start-up forgets it. A running one known the same way is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_a_finished_checkpoint_at_start_up() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let done = (
        exec_arn("orders", "$LATEST", "order-done", 60),
        synth_ending(15, 600, 1_795_248_229_114, true),
    );
    let running = (
        exec_arn("orders", "$LATEST", "order-running", 61),
        synth_ending(15, 610, 1_795_248_229_114, true),
    );
    add_all(&fake, std::slice::from_ref(&done));
    fake.add_execution(ScriptedExecution::from_events(&running.0, &running.1).with_visible(10));
    let arns = [done.0.clone(), running.0.clone()];
    let retention = "checkpoint:\n  retention: 1s\n";
    let s = setup(&fake, receiver.addr, &arns, retention);
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "one ended, the other read",
        |v| {
            all_finished(std::slice::from_ref(&done))(v)
                && v.get(&running.0).is_some_and(|x| x.last == 10)
        },
    )
    .await;
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    retention_passes(&s, &done.0, Duration::from_secs(1)).await;

    // Neither is configured any more: both are known only from their checkpoints.
    write_config(&s, &fake, receiver.addr, &[], retention);
    fake.reset_log();
    fake.reveal(&running.0, 20);
    let d = Daemon::start(&s, 2).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the running one read further",
        |v| v.get(&running.0).is_some_and(|x| x.last == 20),
    )
    .await;
    assert_eq!(v[&running.0].source, "checkpoint");
    assert!(
        !v.contains_key(&done.0),
        "the finished execution is still tracked: {v:#?}"
    );
    assert!(s.cursor(&done.0).is_none(), "its checkpoint is still there");
    assert!(s.cursor(&running.0).is_some());
    assert!(requests_for(&fake, None, &done.0).is_empty());
    let (_, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

/// How a finished execution came to be tracked in the first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// POST /v1/executions: remembered in tracked.json.
    Api,
    /// `track.executions`, in both runs.
    Config,
    /// `track.functions` (statuses [SUCCEEDED], lookback 1h), in both runs.
    Discovery,
}

/// An execution tracked `via` ends and is exported; the daemon stops; `checkpoint.retention`
/// (1s) passes; the daemon starts again with the same tracking. Returns what went wrong: the
/// execution must not be read or exported a second time (nor, unless configured, be tracked).
async fn finished_execution_after_retention(via: Via, i: usize) -> Vec<String> {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let start = now_ms() - 60_000;
    let done = (
        exec_arn("orders", "$LATEST", "order-done", i),
        synth_ending(15, 700 + i as u64, start, true),
    );
    let control = (
        exec_arn("control", "$LATEST", "control", i + 1),
        synth_ending(15, 800 + i as u64, start, true),
    );
    add_all(&fake, &[done.clone(), control.clone()]);
    let mut extra = "checkpoint:\n  retention: 1s\n".to_owned();
    if via == Via::Discovery {
        extra.push_str(
            "track:\n  discovery_interval: 1s\n  functions:\n    - name: orders\n      statuses: [SUCCEEDED]\n      lookback: 1h\n",
        );
    }
    let configured: Vec<String> = match via {
        Via::Config => vec![done.0.clone()],
        _ => vec![],
    };
    let s = setup(&fake, receiver.addr, &configured, &extra);
    let d = Daemon::start(&s, 1).await;
    if via == Via::Api {
        let body = format!("{{\"DurableExecutionArn\": \"{}\"}}", done.0);
        let (status, _) = http(s.api, "POST", "/v1/executions", Some(&body))
            .await
            .unwrap();
        assert_eq!(status, 201);
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(std::slice::from_ref(&done)),
    )
    .await;
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(std::slice::from_ref(&done)), &got);
    retention_passes(&s, &done.0, Duration::from_secs(1)).await;

    // The next start, with a configured execution to know when the daemon is well under way.
    let mut with_control = configured.clone();
    with_control.push(control.0.clone());
    write_config(&s, &fake, receiver.addr, &with_control, &extra);
    fake.reset_log();
    let sent_before = receiver.requests().len();
    let d = Daemon::start(&s, 2).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the control execution to end (and a second listing)",
        |v| {
            all_finished(std::slice::from_ref(&control))(v)
                && (via != Via::Discovery || fake.count_status(LIST_BY_FUNCTION, 200) >= 2)
        },
    )
    .await;
    let mut wrong = Vec::new();
    if let Some(x) = v.get(&done.0).filter(|_| via != Via::Config) {
        wrong.push(format!("tracked again: {x:?}"));
    }
    let reads = requests_for(&fake, None, &done.0);
    if !reads.is_empty() {
        wrong.push(format!(
            "read again: {} GetDurableExecution, {} GetDurableExecutionHistory requests",
            reads.iter().filter(|r| r.op == GET_EXECUTION).count(),
            reads.iter().filter(|r| r.op == GET_HISTORY).count(),
        ));
    }
    let (again, _) = spans_of(&receiver.requests()[sent_before..]);
    let done_spans = expected(std::slice::from_ref(&done));
    let re_exported = done_spans
        .keys()
        .filter(|id| again.contains_key(*id))
        .count();
    if re_exported > 0 {
        wrong.push(format!(
            "{re_exported} of its {} spans exported again",
            done_spans.len()
        ));
    }
    if via != Via::Config && s.cursor(&done.0).is_some() {
        wrong.push("its checkpoint is back".into());
    }
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    wrong
}

/// An execution added over the API (so remembered in tracked.json) ends; its retention passes;
/// at the next start it must stay forgotten: not tracked, not read, not exported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_does_not_bring_back_an_execution_added_over_the_api() {
    let wrong = finished_execution_after_retention(Via::Api, 70).await;
    assert!(
        wrong.is_empty(),
        "a finished execution added over the API came back after its retention: {}",
        wrong.join("; ")
    );
}

/// A configured execution ends; its retention passes; the next start must not export it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_does_not_export_a_configured_execution_twice() {
    let wrong = finished_execution_after_retention(Via::Config, 72).await;
    assert!(
        wrong.is_empty(),
        "a finished configured execution was exported again after its retention: {}",
        wrong.join("; ")
    );
}

/// A discovered execution ends; its retention passes; the next start (whose discovery lists it
/// again: it is within the lookback and its status is listed) must not export it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_does_not_export_a_discovered_execution_twice() {
    let wrong = finished_execution_after_retention(Via::Discovery, 74).await;
    assert!(
        wrong.is_empty(),
        "a finished discovered execution was exported again after its retention: {}",
        wrong.join("; ")
    );
}
