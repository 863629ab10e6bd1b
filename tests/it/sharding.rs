//! Replicas splitting the work (`shard.*`): the real binary, two replicas against one API and
//! one collector, then a change of `shard.count`.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition::parse;
use durable_exporter::shard::owner;
use durable_exporter::sim::scripted::ScriptedApi;

fn shard_yaml(index: u32, count: u32) -> String {
    format!("shard:\n  index: {index}\n  count: {count}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_the_executions_and_export_each_span_once() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(24, 6);
    add_all(&fake, &execs);
    let all = arns(&execs);
    let owned = |i: u32, count: u32| -> BTreeSet<String> {
        all.iter()
            .filter(|a| owner(a, count) == i)
            .cloned()
            .collect()
    };
    assert!(!owned(0, 2).is_empty() && !owned(1, 2).is_empty());

    // Both replicas are given every execution; each takes its own. Replica 1 finds its index
    // in its pod's name, as in a StatefulSet.
    let budget = "aws:\n  max_requests_per_second: 200\n";
    let s0 = setup(
        &fake,
        receiver.addr,
        &all,
        &format!("{budget}{}", shard_yaml(0, 2)),
    );
    let s1 = setup(
        &fake,
        receiver.addr,
        &all,
        &format!("{budget}shard:\n  count: 2\n  from_pod_name: true\n"),
    );
    let d0 = Daemon::start(&s0, 1).await;
    let d1 = Daemon::start_with_env(
        &s1,
        1,
        LogFormat::Text,
        &[("POD_NAME", "durable-exporter-1")],
    )
    .await;
    for (d, s, i) in [(&d0, &s0, 0), (&d1, &s1, 1)] {
        let mine: Vec<(String, Vec<durable_exporter::history::Event>)> = execs
            .iter()
            .filter(|(a, _)| owner(a, 2) == i)
            .cloned()
            .collect();
        let v = wait_for(
            d,
            s.api,
            Duration::from_secs(30),
            "the replica's executions to end",
            all_finished(&mine),
        )
        .await;
        let tracked: BTreeSet<String> = v.keys().cloned().collect();
        assert_eq!(tracked, owned(i, 2), "replica {i} tracks exactly its share");
    }
    // Together they exported every span, each once.
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);

    // Each says which shard it is, spends half the budget and counts what it left alone.
    for (s, i) in [(&s0, 0u32), (&s1, 1)] {
        let m = parse(&scrape(s.http).await);
        assert_eq!(m.value("durable_exporter_shard_index", &[]), f64::from(i));
        assert_eq!(m.value("durable_exporter_shard_count", &[]), 2.0);
        assert_eq!(
            m.value("durable_exporter_api_rate_limit_requests_per_second", &[]),
            100.0
        );
        assert_eq!(
            m.value(
                "durable_exporter_other_shard_executions_total",
                &[("source", "config")]
            ),
            owned(1 - i, 2).len() as f64
        );
    }

    // A registration at the wrong replica is refused with the owner's index.
    let theirs = owned(1, 2).into_iter().next().unwrap();
    let body = format!("{{\"DurableExecutionArn\": \"{theirs}\"}}");
    let (status, answer) = http(s0.api, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 421, "{answer}");
    assert_eq!(answer["Shard"], 1, "{answer}");
    assert_eq!(answer["ShardCount"], 2, "{answer}");
    let (status, _) = http(s1.api, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 200, "the owner has it already");
    assert!(d1.terminate(Duration::from_secs(25)).await.success());

    // Three replicas now: replica 0 lets go of what hashes elsewhere (its checkpoints go) and
    // reads what became its own from the start. The ids being derived, what it exports again
    // repeats the same spans.
    write_config(
        &s0,
        &fake,
        receiver.addr,
        &all,
        &format!("{budget}{}", shard_yaml(0, 3)),
    );
    assert!(d0.terminate(Duration::from_secs(25)).await.success());
    let before = s0.checkpoint_files().len();
    let d0 = Daemon::start(&s0, 2).await;
    let mine: Vec<(String, Vec<durable_exporter::history::Event>)> = execs
        .iter()
        .filter(|(a, _)| owner(a, 3) == 0)
        .cloned()
        .collect();
    let v = wait_for(
        &d0,
        s0.api,
        Duration::from_secs(30),
        "the new share to end",
        all_finished(&mine),
    )
    .await;
    let tracked: BTreeSet<String> = v.keys().cloned().collect();
    assert_eq!(tracked, owned(0, 3));
    let on_disk: HashSet<String> = s0
        .checkpoint_files()
        .iter()
        .filter_map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            v["arn"].as_str().map(str::to_owned)
        })
        .collect();
    assert!(
        on_disk.iter().all(|a| owner(a, 3) == 0),
        "only its own checkpoints stay ({before} before): {on_disk:?}"
    );
    assert!(d0.logs().contains("hash to another replica now are let go"));
    let (got, _) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert!(d0.terminate(Duration::from_secs(25)).await.success());
}

#[test]
fn the_shard_command_prints_each_arns_owner() {
    let execs: Vec<String> = (1..=5).map(arn).collect();
    let out = std::process::Command::new(BIN)
        .args(["shard", "--count", "3"])
        .args(&execs)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    for (line, a) in lines.iter().zip(&execs) {
        assert_eq!(*line, format!("{} {a}", owner(a, 3)));
    }
    let out = std::process::Command::new(BIN)
        .args(["shard", "--count", "0", &execs[0]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
