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
        assert_eq!(m.value("durable_exporter_shards", &[]), 2.0);
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
    let let_go = parse(&scrape(s0.http).await).value(
        "durable_exporter_other_shard_executions_total",
        &[("source", "checkpoint")],
    );
    let had = owned(0, 2);
    let kept = owned(0, 3);
    assert_eq!(
        let_go,
        had.difference(&kept).count() as f64,
        "each let-go checkpoint counted"
    );
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

/// The evidence docs/SCALING.md reports: three replicas with their own checkpoint directories
/// against one API while the executions progress, then four from the middle of the run. The
/// union of what they export is what `convert` draws from the final histories, the replicas
/// keep their shares of the budget, and what the change of count read and sent again is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_then_four_export_the_final_histories() {
    const RATE: f64 = 240.0;
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(60, 10);
    // The first 6 events of each are there at the start; the rest come mid-run.
    add_all_visible(&fake, &execs, 6);
    let all = arns(&execs);
    let budget = format!("aws:\n  max_requests_per_second: {RATE}\n");
    let sets: Vec<Setup> = (0..4)
        .map(|i| {
            setup(
                &fake,
                receiver.addr,
                &all,
                &format!("{budget}{}", shard_yaml(i.min(2), 3)),
            )
        })
        .collect();

    let mut ds = Vec::new();
    for s in sets.iter().take(3) {
        ds.push(Daemon::start(s, 1).await);
    }
    for (i, (d, s)) in ds.iter().zip(&sets).enumerate() {
        let mine: BTreeSet<String> = all
            .iter()
            .filter(|a| owner(a, 3) == i as u32)
            .cloned()
            .collect();
        wait_for(
            d,
            s.api,
            Duration::from_secs(30),
            "the first events read",
            |v| mine.iter().all(|a| v.get(a).is_some_and(|x| x.last >= 6)),
        )
        .await;
        let m = parse(&scrape(s.http).await);
        assert_eq!(
            m.value("durable_exporter_api_rate_limit_requests_per_second", &[]),
            RATE / 3.0,
            "replica {i} spends a third of the budget"
        );
    }
    let (by_three, repeats_by_three) = received(&receiver);
    assert_eq!(repeats_by_three, 0, "three replicas export no span twice");
    let exported_by_three = by_three.len();
    for d in ds {
        assert!(d.terminate(Duration::from_secs(25)).await.success());
    }

    // Four replicas from here on; the histories go on.
    for (i, s) in sets.iter().enumerate() {
        write_config(
            s,
            &fake,
            receiver.addr,
            &all,
            &format!("{budget}{}", shard_yaml(i as u32, 4)),
        );
    }
    let moved: BTreeSet<String> = all
        .iter()
        .filter(|a| owner(a, 3) != owner(a, 4))
        .cloned()
        .collect();
    let reads_before = fake.count(durable_exporter::sim::scripted::GET_HISTORY);
    let moved_reads_before: usize = fake
        .requests()
        .iter()
        .filter(|r| {
            r.op == durable_exporter::sim::scripted::GET_HISTORY && moved.contains(&r.target)
        })
        .count();
    let restarted = tokio::time::Instant::now();
    let mut ds = Vec::new();
    for s in &sets {
        ds.push(Daemon::start(s, 2).await);
    }
    for a in &all {
        fake.reveal_all(a);
    }
    for (i, (d, s)) in ds.iter().zip(&sets).enumerate() {
        let mine: Vec<(String, Vec<durable_exporter::history::Event>)> = execs
            .iter()
            .filter(|(a, _)| owner(a, 4) == i as u32)
            .cloned()
            .collect();
        let v = wait_for(
            d,
            s.api,
            Duration::from_secs(40),
            "the share to end",
            all_finished(&mine),
        )
        .await;
        let tracked: BTreeSet<String> = v.keys().cloned().collect();
        let want: BTreeSet<String> = mine.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(tracked, want, "replica {i} of 4");
        let m = parse(&scrape(s.http).await);
        assert_eq!(
            m.value("durable_exporter_api_rate_limit_requests_per_second", &[]),
            RATE / 4.0
        );
    }
    // The union is exactly what convert draws from the final histories.
    let (got, repeats) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    // Only moved executions were sent again, and never more than once more.
    let moved_spans: usize = expected(
        &execs
            .iter()
            .filter(|(a, _)| moved.contains(a))
            .cloned()
            .collect::<Vec<_>>(),
    )
    .len();
    assert!(
        repeats <= moved_spans,
        "{repeats} repeats, {moved_spans} spans moved"
    );
    let moved_reads: usize = fake
        .requests()
        .iter()
        .filter(|r| {
            r.op == durable_exporter::sim::scripted::GET_HISTORY && moved.contains(&r.target)
        })
        .count()
        - moved_reads_before;
    // Four replicas together within the budget (the three before stopped first).
    let mut arrivals: Vec<tokio::time::Instant> = fake
        .requests()
        .iter()
        .map(|r| r.arrived)
        .filter(|t| *t >= restarted)
        .collect();
    arrivals.sort();
    let peak = (0..arrivals.len())
        .map(|i| arrivals[i..].partition_point(|t| *t < arrivals[i] + Duration::from_secs(1)))
        .max()
        .unwrap_or(0);
    assert!(
        peak as f64 <= RATE,
        "{peak} requests in a second, the budget is {RATE}"
    );
    eprintln!(
        "scale 3 -> 4: {} of {} executions moved ({:.0}%); {} spans exported by three before, {} in all; {repeats} span copies sent again (of {moved_spans} spans of moved executions); {moved_reads} history reads of moved executions and {} in all after the change; peak {peak}/s",
        moved.len(),
        all.len(),
        100.0 * moved.len() as f64 / all.len() as f64,
        exported_by_three,
        got.len(),
        fake.count(durable_exporter::sim::scripted::GET_HISTORY) - reads_before,
    );
    for d in ds {
        assert!(d.terminate(Duration::from_secs(25)).await.success());
    }
}
