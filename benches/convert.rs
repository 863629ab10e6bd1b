//! Throughput of the core on the largest history an execution can have.
//!
//! Input: a generated 3,000-operation finished history (`durable_exporter::synth`) written as one `GetDurableExecutionHistory` page by `history::json::to_wire_json`.
//! Throughput is in history events.
//!
//! - `bare_parse_value`: `serde_json::from_slice::<serde_json::Value>`, the floor any JSON reader
//!   is measured against.
//! - `bare_parse_sonic_value`: `sonic_rs::from_slice::<sonic_rs::Value>`, the SIMD reader
//!   `parse_history` uses, into its own tree: the floor for a reader that goes through it.
//! - `pipeline`: page bytes to OTLP protobuf bytes: `parse_history` → `convert` (fold keeping
//!   finished operations, as `convert` does, and spans) → `proto::encode_request`, the bytes the
//!   OTLP client (`durable_exporter::otlp`) sends.
//! - `pipeline_via_prost_structs`: the same with `proto::to_request` + prost's `encode_to_vec`
//!   (the same bytes, through the generated message types; no longer a product path).
//! - `stage_*`: the pipeline's stages alone, each from the previous stage's output prepared
//!   outside the timing.
//!
//! Both with payloads (IncludeExecutionData=true) and without (the daemon's default).
//!
//! Run: `cargo bench --bench convert`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::convert;
use durable_exporter::history::json::parse_history;
use durable_exporter::synth::{self, SynthSpec};
use durable_exporter::trace::{TraceOptions, proto};
use prost::Message as _;

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/bench/0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b";

fn bench_convert(c: &mut Criterion) {
    // With payloads (IncludeExecutionData=true) and without (the daemon's default).
    for include_payloads in [true, false] {
        bench_input(c, include_payloads);
    }
}

fn bench_input(c: &mut Criterion, include_payloads: bool) {
    let events = synth::history(&SynthSpec {
        operations: synth::MAX_OPERATIONS,
        seed: 7,
        include_payloads,
        finished: true,
        ..SynthSpec::default()
    });
    let bytes = durable_exporter::history::json::to_wire_json(&events, None).into_bytes();
    let arn = ExecutionArn::parse(ARN).expect("a valid ARN");

    // The input is what it claims to be, and the pipeline does all its work on it.
    let parsed = parse_history(&bytes).expect("the generated page parses");
    assert_eq!(parsed.events, events);
    let conversion = convert(&events, &arn, None, TraceOptions::default());
    assert!(conversion.anomalies.is_empty());
    let encoded = proto::encode_request(&conversion.resource, &conversion.spans);
    assert_eq!(
        encoded,
        proto::to_request(&conversion.resource, &conversion.spans).encode_to_vec()
    );
    eprintln!(
        "convert bench input (payloads: {include_payloads}): {} operations, {} events, {} bytes of JSON; {} spans, {} bytes of OTLP protobuf",
        synth::MAX_OPERATIONS,
        events.len(),
        bytes.len(),
        conversion.spans.len(),
        encoded.len()
    );

    let name = if include_payloads {
        "convert/with_payloads"
    } else {
        "convert/without_payloads"
    };
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(events.len() as u64));

    g.bench_function("bare_parse_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
    });

    g.bench_function("bare_parse_sonic_value", |b| {
        b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&bytes)).unwrap())
    });

    g.bench_function("pipeline", |b| {
        b.iter(|| {
            let parsed = parse_history(black_box(&bytes)).unwrap();
            let conversion = convert(&parsed.events, &arn, None, TraceOptions::default());
            proto::encode_request(&conversion.resource, &conversion.spans)
        })
    });

    g.bench_function("pipeline_via_prost_structs", |b| {
        b.iter(|| {
            let parsed = parse_history(black_box(&bytes)).unwrap();
            let conversion = convert(&parsed.events, &arn, None, TraceOptions::default());
            proto::to_request(&conversion.resource, &conversion.spans).encode_to_vec()
        })
    });

    g.bench_function("stage_parse", |b| {
        b.iter(|| parse_history(black_box(&bytes)).unwrap())
    });

    g.bench_function("stage_fold_spans", |b| {
        b.iter(|| convert(black_box(&events), &arn, None, TraceOptions::default()))
    });

    g.bench_function("stage_encode", |b| {
        b.iter(|| {
            proto::encode_request(
                black_box(&conversion.resource),
                black_box(&conversion.spans),
            )
        })
    });

    g.bench_function("stage_encode_via_prost_structs", |b| {
        b.iter(|| {
            proto::to_request(
                black_box(&conversion.resource),
                black_box(&conversion.spans),
            )
            .encode_to_vec()
        })
    });

    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    targets = bench_convert
}
criterion_main!(benches);
