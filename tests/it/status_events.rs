//! Account-wide intake from status-change events (`track.status_events`): the simulator
//! publishes its executions' status changes to a real SQS (moto's server), as an EventBridge
//! rule would; the real daemon, told no function and no ARN, follows them from the queue.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition::parse;
use crate::common::moto::Moto;
use durable_exporter::sim::server::{Faults, SimHandle};
use durable_exporter::sim::{SimSpec, Simulation};

/// The simulator's executions that have started, and those of them that have ended.
fn started_and_ended(sim: &SimHandle) -> (BTreeSet<String>, BTreeSet<String>) {
    let now = durable_exporter::clock::now_ms();
    sim.with_simulation(|s| {
        s.advance(now);
        let started: BTreeSet<String> = s
            .arns()
            .filter(|a| s.visible_events(a, now).is_some_and(|e| !e.is_empty()))
            .map(str::to_owned)
            .collect();
        let ended = started
            .iter()
            .filter(|a| s.status(a, now).is_some_and(|st| st != "RUNNING"))
            .cloned()
            .collect();
        (started, ended)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_followed_from_the_queue_and_read_when_they_end() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let sqs = moto.sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name("durable-status")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // Short executions at 30x: most end within seconds; new ones keep arriving.
    let spec = SimSpec {
        seed: 5,
        executions: 12,
        spread: Duration::from_secs(5),
        arrivals_per_minute: 60.0,
        max_executions: 30,
        speed: 30.0,
        min_operations: 3,
        max_operations: 8,
        ..SimSpec::default()
    };
    let sim = Simulation::new(spec, durable_exporter::clock::now_ms()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (handle, served) =
        durable_exporter::sim::server::serve(listener, sim, Faults::default(), stop_rx)
            .await
            .unwrap();
    let publisher = tokio::spawn(durable_exporter::sim::publish::status_events(
        handle.clone(),
        sqs.clone(),
        queue.clone(),
        Duration::from_millis(100),
        stop_tx.subscribe(),
    ));

    // A poison message among the events.
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{\"source\": \"aws.s3\"}")
        .send()
        .await
        .unwrap();

    let receiver = crate::common::otlp::grpc().await;
    // Polling alone would look at a running execution once a minute: an ended one is read
    // within seconds only because its event says so.
    let s = crate::common::daemon::setup_at(
        &handle.endpoint_url(),
        receiver.addr,
        &[],
        &format!(
            "poll:\n  interval: 60s\n  max_interval: 5m\n  mode: economy\n\
             track:\n  status_events:\n    queue_url: \"{queue}\"\n    endpoint_url: \"{}\"\n",
            moto.url
        ),
    );
    let d = Daemon::start(&s, 1).await;

    // Wait for a moment when every execution that has started is tracked and every one that
    // has ended is finished with all its events acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let (started, ended) = loop {
        let (started, ended) = started_and_ended(&handle);
        let v = views(s.api).await.unwrap_or_default();
        let tracked: BTreeSet<String> = v.keys().cloned().collect();
        let all_done = ended.iter().all(|a| {
            v.get(a).is_some_and(|x| {
                x.status != "RUNNING" && x.status != "PENDING" && {
                    let n = handle.with_simulation(|sim| {
                        sim.visible_events(a, durable_exporter::clock::now_ms())
                            .map_or(0, |e| e.len())
                    });
                    x.last == n as u64
                }
            })
        });
        if started.len() >= 20 && ended.len() >= 10 && started.is_subset(&tracked) && all_done {
            // Nothing but what the events announced.
            assert!(tracked.is_subset(&started), "{tracked:?} vs {started:?}");
            assert!(v.values().all(|x| x.source == "status_event"), "{v:#?}");
            break (started, ended);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not followed within 40 s (a minute of polling is not enough: the events must prompt the reads): {} started, {} tracked, {} ended\n{}",
            started.len(),
            tracked.len(),
            ended.len(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, repeats) = received(&receiver);
    assert_eq!(repeats, 0, "no span exported twice");

    // Every execution was heard of once as new; the poison message was counted and dropped.
    // An event is counted once its tracking is on disk, a moment after the list shows it.
    let m = d
        .eventually(Duration::from_secs(10), "every new one counted", || async {
            let m = parse(&scrape(s.http).await);
            let tracked = m.value(
                "durable_exporter_status_events_total",
                &[("result", "tracked")],
            );
            (tracked >= started.len() as f64).then_some(m)
        })
        .await;
    assert_eq!(
        m.value(
            "durable_exporter_status_events_total",
            &[("result", "poison")]
        ),
        1.0
    );
    assert!(
        m.value(
            "durable_exporter_status_events_total",
            &[("result", "read_now")]
        ) >= 1.0
    );
    // Each is on disk: a restart would know it without the queue.
    for a in &started {
        assert!(s.cursor(a).is_some(), "no checkpoint for {a}");
    }

    // A duplicate of an ended execution's event does nothing.
    let (dup_arn, before) = {
        let a = ended.iter().next().unwrap().clone();
        (a, received(&receiver).0.len())
    };
    let body = durable_exporter::status_event::envelope(
        &dup_arn,
        "dup",
        "f",
        durable_exporter::status_event::Status::Succeeded,
        "2026-01-01T00:00:00.000Z",
        Some("2026-01-01T00:00:01.000Z"),
        "dup",
    );
    let _ = stop_tx.send(true);
    let _ = publisher.await;
    sqs.send_message()
        .queue_url(&queue)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
    // Handled messages are deleted: the queue drains.
    let drained = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let count = |k: aws_sdk_sqs::types::QueueAttributeName| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < drained,
            "{left} messages never deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert!(got.len() >= before);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    let _ = served.await;
}

/// `durable-exporter simulate --status-events-queue`: the CLI publishes what an EventBridge rule
/// would deliver, one message per status change, and says how many at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_each_status_change_to_the_queue() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let Some(moto) = Moto::start() else {
        return;
    };
    let sqs = moto.sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name("simulate-status")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["simulate", "--listen", "127.0.0.1:0", "--executions", "8"])
        .args([
            "--status-events-queue",
            &queue,
            "--sqs-endpoint-url",
            &moto.url,
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("8 executions"), "{first}");

    // One RUNNING event per started execution (at least), each a well-formed status event.
    let mut running = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while running.len() < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} RUNNING events",
            running.len()
        );
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            let e = durable_exporter::status_event::StatusEvent::parse(m.body().unwrap())
                .unwrap_or_else(|e| panic!("{e}: {:?}", m.body()));
            if e.status == durable_exporter::status_event::Status::Running {
                running.insert(e.arn.as_str().to_owned());
            }
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    let published = rest
        .iter()
        .find_map(|l| l.split("status events published: ").nth(1))
        .unwrap_or_else(|| panic!("{rest:?}"));
    assert!(published.trim().parse::<u64>().unwrap() >= 8, "{rest:?}");
}
