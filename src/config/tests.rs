use std::path::Path;

use super::tree::{parse_header_list, percent_decode};
use super::*;

const ARN1: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-42/6a1f0b2c";
const ARN2: &str = "c9d0ddd5-4e8b-4da5-ba01-445cf9e50869/b5601dd1-2043-4852-8088-c1ff0fa7bf73";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads `text` as a config file, with only `vars` in the environment. Returns the file's
/// path too (the file is gone by then; errors still name it).
fn load_yaml_env(text: &str, vars: &[(&str, &str)]) -> (Result<Config, ConfigError>, PathBuf) {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    let path = file.path().to_path_buf();
    (Config::load_with_env(Some(&path), env(vars)), path)
}

fn load_yaml(text: &str) -> Config {
    let (result, _) = load_yaml_env(text, &[]);
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_with_env(None, env(vars))
}

/// Asserts `text` is rejected, the error naming the file, `key`, and containing `fragment`.
#[track_caller]
fn assert_rejected(text: &str, key: &str, fragment: &str) {
    let (result, path) = load_yaml_env(text, &[]);
    let e = result.expect_err(text);
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
    let line = e.to_string();
    assert!(
        line.starts_with(&format!("{}: {key}: ", path.display())),
        "{line}"
    );
    assert!(line.contains(fragment), "{line:?} lacks {fragment:?}");
    assert!(!line.contains('\n'), "{line:?}");
}

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.aws.region, None);
    assert_eq!(c.aws.endpoint_url, None);
    assert_eq!(c.aws.max_requests_per_second, 5.0);
    assert_eq!(c.aws.max_concurrency, 8);
    assert!(c.track.executions.is_empty());
    assert!(c.track.functions.is_empty());
    assert_eq!(c.track.discovery_interval, Duration::from_secs(60));
    assert!(!c.track.follow_chained_invokes);
    assert_eq!(c.poll.interval, Duration::from_secs(5));
    assert_eq!(c.poll.max_interval, Duration::from_secs(300));
    assert_eq!(c.poll.page_size, 1000);
    assert!(!c.poll.include_execution_data);
    assert!(c.otlp.enabled);
    assert_eq!(c.otlp.endpoint, "http://localhost:4317");
    assert_eq!(c.otlp.protocol, Protocol::Grpc);
    assert!(c.otlp.headers.is_empty());
    assert_eq!(c.otlp.timeout, Duration::from_secs(10));
    assert_eq!(c.otlp.max_buffered_spans, 100_000);
    assert_eq!(c.otlp.max_batch_size, 512);
    assert_eq!(c.trace.id_scheme, IdScheme::Python);
    assert_eq!(c.trace.service_name, None);
    assert!(!c.trace.include_payloads);
    assert_eq!(c.trace.max_attribute_length, 4096);
    assert_eq!(c.checkpoint.dir, Path::new("/var/lib/durable-exporter"));
    assert_eq!(c.checkpoint.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:9464");

    let f = FunctionTrack::new("orders");
    assert_eq!(f.statuses, vec!["RUNNING".to_owned()]);
    assert_eq!(f.lookback, Duration::from_secs(3600));
    assert_eq!(f.qualifier, None);
}

#[test]
fn no_file_empty_file_and_comments_only_are_the_defaults() {
    assert_eq!(load_env(&[]).unwrap(), Config::default());
    assert_eq!(load_yaml(""), Config::default());
    assert_eq!(load_yaml("# nothing here\n\n"), Config::default());
    // Sections whose keys are all commented out are null: the defaults too.
    assert_eq!(
        load_yaml("aws:\npoll:\n  # interval: 1s\n"),
        Config::default()
    );
    // Unrelated variables change nothing.
    assert_eq!(
        load_env(&[("PATH", "/bin"), ("AWS_REGION", "eu-west-1")]).unwrap(),
        Config::default()
    );
}

#[test]
fn every_key_from_yaml() {
    let c = load_yaml(&format!(
        r#"
aws:
  region: eu-west-1
  endpoint_url: http://localhost:5000
  max_requests_per_second: 2.5
  max_concurrency: 3
track:
  executions:
    - {ARN1}
    - {ARN2}
  functions:
    - name: orders
      qualifier: live
      statuses: [RUNNING, FAILED, TIMED_OUT]
      lookback: 1h 30m
    - payments
  discovery_interval: 2m
  follow_chained_invokes: true
poll:
  interval: 250ms
  max_interval: 30s
  page_size: 50
  include_execution_data: true
  adaptive: false
  mode: economy
otlp:
  enabled: false
  endpoint: https://collector.example.com:4318/v1/traces
  protocol: http/protobuf
  headers:
    Authorization: Bearer abc
    x-team: pay
  timeout: 3s
  max_buffered_spans: 1000
  max_batch_size: 100
trace:
  id_scheme: js
  service_name: checkout
  include_payloads: true
  max_attribute_length: 128
checkpoint:
  dir: /tmp/cursors
  retention: 1d
http:
  listen: "[::1]:9000"
metrics:
  operation_name_label: allowlist
  operation_names: [charge-card, ship]
"#
    ));
    let expected = Config {
        aws: AwsConfig {
            region: Some("eu-west-1".into()),
            endpoint_url: Some("http://localhost:5000".into()),
            max_requests_per_second: 2.5,
            max_concurrency: 3,
        },
        track: TrackConfig {
            executions: vec![
                ExecutionArn::parse(ARN1).unwrap(),
                ExecutionArn::parse(ARN2).unwrap(),
            ],
            functions: vec![
                FunctionTrack {
                    name: "orders".into(),
                    qualifier: Some("live".into()),
                    statuses: vec!["RUNNING".into(), "FAILED".into(), "TIMED_OUT".into()],
                    lookback: Duration::from_secs(5400),
                },
                FunctionTrack::new("payments"),
            ],
            discovery_interval: Duration::from_secs(120),
            follow_chained_invokes: true,
            ..TrackConfig::default()
        },
        poll: PollConfig {
            interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(30),
            page_size: 50,
            include_execution_data: true,
            adaptive: false,
            mode: crate::daemon::schedule::Mode::Economy,
        },
        otlp: OtlpConfig {
            enabled: false,
            endpoint: "https://collector.example.com:4318/v1/traces".into(),
            protocol: Protocol::HttpProtobuf,
            headers: [("authorization", "Bearer abc"), ("x-team", "pay")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            timeout: Duration::from_secs(3),
            max_buffered_spans: 1000,
            max_batch_size: 100,
            ..OtlpConfig::default()
        },
        trace: TraceConfig {
            id_scheme: IdScheme::Js,
            service_name: Some("checkout".into()),
            include_payloads: true,
            max_attribute_length: 128,
        },
        checkpoint: CheckpointConfig {
            dir: PathBuf::from("/tmp/cursors"),
            retention: Duration::from_secs(86_400),
            ..CheckpointConfig::default()
        },
        http: HttpConfig {
            listen: "[::1]:9000".parse().unwrap(),
            ..HttpConfig::default()
        },
        metrics: MetricsConfig {
            operation_name_label: NameLabelPolicy::Allowlist,
            operation_names: vec!["charge-card".into(), "ship".into()],
            ..MetricsConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(c, expected);
}

#[test]
fn env_overrides_win_over_the_file() {
    let (c, _) = load_yaml_env(
        &format!("poll:\n  interval: 2s\ntrack:\n  executions: [{ARN2}]\notlp:\n  enabled: true\n"),
        &[
            ("DURABLE_EXPORTER__POLL__INTERVAL", "10s"),
            (
                "DURABLE_EXPORTER__TRACK__EXECUTIONS",
                &format!("{ARN1}, {ARN2},"),
            ),
            ("DURABLE_EXPORTER__OTLP__ENABLED", "false"),
            ("DURABLE_EXPORTER__AWS__REGION", "eu-west-1"),
            ("DURABLE_EXPORTER__POLL__PAGE_SIZE", "20"),
            ("DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND", "0.5"),
            ("DURABLE_EXPORTER__TRACE__ID_SCHEME", "js"),
        ],
    );
    let c = c.unwrap();
    assert_eq!(c.poll.interval, Duration::from_secs(10));
    assert_eq!(
        c.track
            .executions
            .iter()
            .map(ExecutionArn::as_str)
            .collect::<Vec<_>>(),
        vec![ARN1, ARN2]
    );
    assert!(!c.otlp.enabled);
    assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.poll.page_size, 20);
    assert_eq!(c.aws.max_requests_per_second, 0.5);
    assert_eq!(c.trace.id_scheme, IdScheme::Js);
    // What the variables do not set stays as the file and the defaults have it.
    assert_eq!(c.poll.max_interval, DEFAULT_MAX_POLL_INTERVAL);
}

#[test]
fn env_lists_maps_and_empty_values() {
    let c = load_env(&[
        ("DURABLE_EXPORTER__TRACK__FUNCTIONS", "orders,payments"),
        ("DURABLE_EXPORTER__OTLP__HEADERS__AUTHORIZATION", "Bearer x"),
        ("DURABLE_EXPORTER__CHECKPOINT__DIR", "/data"),
        // Variable names are case-insensitive, as the config crate reads them.
        ("durable_exporter__http__listen", "127.0.0.1:1"),
    ])
    .unwrap();
    assert_eq!(
        c.track.functions,
        vec![FunctionTrack::new("orders"), FunctionTrack::new("payments")]
    );
    assert_eq!(c.otlp.headers["authorization"], "Bearer x");
    assert_eq!(c.checkpoint.dir, Path::new("/data"));
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:1");

    let c = load_env(&[(
        "DURABLE_EXPORTER__OTLP__HEADERS",
        "x-api-key=a%3Db, x-team=pay",
    )])
    .unwrap();
    assert_eq!(c.otlp.headers["x-api-key"], "a=b");
    assert_eq!(c.otlp.headers["x-team"], "pay");

    // An empty list variable empties the file's list; an empty optional value unsets it.
    let (c, _) = load_yaml_env(
        &format!("track:\n  executions: [{ARN1}]\naws:\n  region: us-east-1\n"),
        &[
            ("DURABLE_EXPORTER__TRACK__EXECUTIONS", ""),
            ("DURABLE_EXPORTER__AWS__REGION", ""),
        ],
    );
    let c = c.unwrap();
    assert!(c.track.executions.is_empty());
    assert_eq!(c.aws.region, None);
}

#[test]
fn env_errors_name_the_variable_and_the_key() {
    let e = load_env(&[("DURABLE_EXPORTER__POLL__INTERVAL", "fast")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("poll.interval"));
    assert_eq!(e.file, None);
    let line = e.to_string();
    assert!(
        line.starts_with("poll.interval: invalid duration \"fast\""),
        "{line}"
    );
    assert!(line.contains("DURABLE_EXPORTER__POLL__INTERVAL"), "{line}");

    // Even with a file loaded, a bad variable is not blamed on the file.
    let (r, _) = load_yaml_env(
        "poll:\n  interval: 1s\n",
        &[("DURABLE_EXPORTER__POLL__INTERVALL", "1s")],
    );
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("poll.intervall"));
    assert_eq!(e.file, None);
    assert!(
        e.message.contains("DURABLE_EXPORTER__POLL__INTERVALL"),
        "{e}"
    );
    assert!(e.message.contains("did you mean interval"), "{e}");

    let e = load_env(&[("DURABLE_EXPORTER__TRACK__EXECUTIONS", "ok,a\u{7}b")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("track.executions[1]"));
    assert!(
        e.message.contains("DURABLE_EXPORTER__TRACK__EXECUTIONS"),
        "{e}"
    );

    let e = load_env(&[("DURABLE_EXPORTER__POLLING__INTERVAL", "1s")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("polling"));
    assert!(
        e.message.contains("DURABLE_EXPORTER__POLLING__INTERVAL"),
        "{e}"
    );

    for (var, value, key) in [
        (
            "DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND",
            "nan",
            "aws.max_requests_per_second",
        ),
        (
            "DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND",
            "-1",
            "aws.max_requests_per_second",
        ),
        ("DURABLE_EXPORTER__OTLP__ENABLED", "maybe", "otlp.enabled"),
        (
            "DURABLE_EXPORTER__POLL__PAGE_SIZE",
            "lots",
            "poll.page_size",
        ),
        ("DURABLE_EXPORTER__OTLP__HEADERS", "novalue", "otlp.headers"),
    ] {
        let e = load_env(&[(var, value)]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{var}={value}: {e}");
        assert!(e.message.contains(var), "{e}");
    }
}

#[test]
fn otel_variables_fill_what_is_not_configured() {
    let c = load_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=a%20b%2Cc,X-Team = pay",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_SERVICE_NAME", "checkout"),
    ])
    .unwrap();
    // A base URL: /v1/traces is appended for HTTP.
    assert_eq!(c.otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.otlp.headers["api-key"], "a b,c");
    assert_eq!(c.otlp.headers["x-team"], "pay");
    assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
    assert_eq!(c.trace.service_name.as_deref(), Some("checkout"));
    assert!(c.otlp.enabled);

    // gRPC takes the base URL as it is; the traces endpoint is always taken as it is, and
    // the traces-specific variables win over the general ones.
    let c = load_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).unwrap();
    assert_eq!(c.otlp.endpoint, "http://collector:4317");
    let c = load_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ])
    .unwrap();
    assert_eq!(c.otlp.endpoint, "http://traces:4318/custom");
    assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);

    // No endpoint anywhere: the chosen protocol's default.
    let c = load_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
    assert_eq!(c.otlp.endpoint, "http://localhost:4318");
    let c = load_yaml("otlp:\n  protocol: http\n");
    assert_eq!(c.otlp.endpoint, "http://localhost:4318");
    assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);

    assert!(
        !load_env(&[("OTEL_SDK_DISABLED", "TRUE")])
            .unwrap()
            .otlp
            .enabled
    );
    assert!(
        load_env(&[("OTEL_SDK_DISABLED", "false")])
            .unwrap()
            .otlp
            .enabled
    );
    // Empty means unset, as the OpenTelemetry specification says.
    assert_eq!(
        load_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("OTEL_SERVICE_NAME", " ")
        ])
        .unwrap(),
        Config::default()
    );
}

#[test]
fn precedence_env_then_file_then_otel_then_defaults() {
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=otel,b=otel"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_SERVICE_NAME", "otel-name"),
        ("OTEL_SDK_DISABLED", "true"),
    ];
    let file = "otlp:\n  enabled: true\n  endpoint: http://file:4317\n  protocol: grpc\n  headers:\n    b: file\n    c: file\n  timeout: 2s\ntrace:\n  service_name: file-name\n";

    // The file wins over OTEL_*; headers merge per name.
    let (c, _) = load_yaml_env(file, &otel);
    let c = c.unwrap();
    assert!(c.otlp.enabled);
    assert_eq!(c.otlp.endpoint, "http://file:4317");
    assert_eq!(c.otlp.protocol, Protocol::Grpc);
    assert_eq!(
        c.otlp
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        vec!["a=otel", "b=file", "c=file"]
    );
    assert_eq!(c.otlp.timeout, Duration::from_secs(2));
    assert_eq!(c.trace.service_name.as_deref(), Some("file-name"));

    // DURABLE_EXPORTER__ wins over the file.
    let mut vars = otel.to_vec();
    vars.extend([
        ("DURABLE_EXPORTER__OTLP__ENDPOINT", "http://env:4317"),
        ("DURABLE_EXPORTER__OTLP__TIMEOUT", "3s"),
        ("DURABLE_EXPORTER__TRACE__SERVICE_NAME", "env-name"),
        ("DURABLE_EXPORTER__OTLP__ENABLED", "false"),
    ]);
    let (c, _) = load_yaml_env(file, &vars);
    let c = c.unwrap();
    assert_eq!(c.otlp.endpoint, "http://env:4317");
    assert_eq!(c.otlp.timeout, Duration::from_secs(3));
    assert_eq!(c.trace.service_name.as_deref(), Some("env-name"));
    assert!(!c.otlp.enabled);

    // Without a file, OTEL_* win over the defaults.
    let c = load_env(&otel).unwrap();
    assert_eq!(c.otlp.endpoint, "http://otel:4317/v1/traces");
    assert_eq!(c.otlp.timeout, Duration::from_secs(1));
    assert!(!c.otlp.enabled);
}

#[test]
fn bad_otel_variables_are_errors_naming_them() {
    for (var, value, key) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "otlp.protocol"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "carrier-pigeon",
            "otlp.protocol",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "otlp.endpoint",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "otlp.timeout"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "otlp.timeout"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "just-a-token", "otlp.headers"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=x", "otlp.headers"),
    ] {
        let e = load_env(&[(var, value)]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{var}={value}: {e}");
        assert_eq!(e.file, None);
        assert!(e.message.contains(var), "{e}");
    }
    // A configured value makes the variable irrelevant, even a bad one.
    let (c, _) = load_yaml_env(
        "otlp:\n  protocol: grpc\n",
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
    );
    assert_eq!(c.unwrap().otlp.protocol, Protocol::Grpc);
    // Header values are secrets: never repeated in errors.
    let e = load_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=sec\u{1}ret")]).unwrap_err();
    assert!(!e.to_string().contains("sec"), "{e}");
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    assert_rejected(
        "pol:\n  interval: 1s\n",
        "pol",
        "unknown key \"pol\" at the top level",
    );
    assert_rejected("pol:\n  interval: 1s\n", "pol", "did you mean poll?");
    assert_rejected(
        "poll:\n  intervall: 1s\n",
        "poll.intervall",
        "unknown key \"intervall\" in section poll; did you mean interval?",
    );
    assert_rejected("aws:\n  regoin: x\n", "aws.regoin", "in section aws");
    assert_rejected(
        "otlp:\n  header: {}\n",
        "otlp.header",
        "did you mean headers?",
    );
    assert_rejected(
        "track:\n  functions:\n    - name: orders\n      statuss: [RUNNING]\n",
        "track.functions[0].statuss",
        "in section track.functions[0]",
    );
    assert_rejected(
        "http:\n  listen: 0.0.0.0:1\n  port: 2\n",
        "http.port",
        "the keys are: listen",
    );
    // Keys are case-sensitive in the file.
    assert_rejected("Poll:\n  interval: 1s\n", "Poll", "did you mean poll?");
}

#[test]
fn malformed_values_are_rejected_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        // ARNs
        (
            &format!("track:\n  executions:\n    - {ARN1}\n    - a b\n"),
            "track.executions[1]",
            "whitespace",
        ),
        (
            "track:\n  executions: [\"\"]\n",
            "track.executions[0]",
            "the execution ARN is empty",
        ),
        (
            "track:\n  executions:\n    -\n",
            "track.executions[0]",
            "expected a string",
        ),
        (
            "track:\n  executions: arn\n",
            "track.executions",
            "expected a list",
        ),
        (
            &format!("track:\n  executions: [{ARN2}, {ARN2}]\n"),
            "track.executions[1]",
            "the same ARN as track.executions[0]",
        ),
        // durations
        (
            "poll:\n  interval: five seconds\n",
            "poll.interval",
            "invalid duration \"five seconds\"",
        ),
        (
            "poll:\n  interval: 5\n",
            "poll.interval",
            "a unit is needed, e.g. \"5s\"",
        ),
        (
            "poll:\n  interval: 50ms\n",
            "poll.interval",
            "must be at least 100ms; got 50ms",
        ),
        (
            "poll:\n  interval: 10m\n",
            "poll.max_interval",
            "must be at least poll.interval (10m); got 5m",
        ),
        (
            "poll:\n  interval: 1s\n  max_interval: 500ms\n",
            "poll.max_interval",
            "must be at least poll.interval",
        ),
        (
            "track:\n  discovery_interval: 100ms\n",
            "track.discovery_interval",
            "at least 1s",
        ),
        (
            "checkpoint:\n  retention: 0s\n",
            "checkpoint.retention",
            "greater than 0",
        ),
        ("otlp:\n  timeout: 0ms\n", "otlp.timeout", "greater than 0"),
        (
            "track:\n  functions:\n    - name: f\n      lookback: soon\n",
            "track.functions[0].lookback",
            "invalid duration",
        ),
        // numbers
        (
            "poll:\n  page_size: 0\n",
            "poll.page_size",
            "must be between 1 and 1000; got 0",
        ),
        (
            "poll:\n  page_size: 1001\n",
            "poll.page_size",
            "must be between 1 and 1000; got 1001",
        ),
        ("poll:\n  page_size: -5\n", "poll.page_size", "got -5"),
        (
            "poll:\n  page_size: 10.5\n",
            "poll.page_size",
            "expected a whole number, found 10.5",
        ),
        (
            "aws:\n  max_requests_per_second: 0\n",
            "aws.max_requests_per_second",
            "greater than 0; got 0",
        ),
        (
            "aws:\n  max_requests_per_second: -2.5\n",
            "aws.max_requests_per_second",
            "greater than 0; got -2.5",
        ),
        (
            "aws:\n  max_requests_per_second: fast\n",
            "aws.max_requests_per_second",
            "expected a number",
        ),
        (
            "aws:\n  max_concurrency: 0\n",
            "aws.max_concurrency",
            "must be at least 1; got 0",
        ),
        (
            "otlp:\n  max_buffered_spans: 0\n",
            "otlp.max_buffered_spans",
            "at least 1",
        ),
        (
            "otlp:\n  max_batch_size: 0\n",
            "otlp.max_batch_size",
            "at least 1",
        ),
        (
            "otlp:\n  max_buffered_spans: 100\n",
            "otlp.max_batch_size",
            "must not exceed otlp.max_buffered_spans (100); got 512",
        ),
        (
            "trace:\n  max_attribute_length: 0\n",
            "trace.max_attribute_length",
            "at least 1",
        ),
        // enumerations
        (
            "otlp:\n  protocol: grpcs\n",
            "otlp.protocol",
            "unknown protocol \"grpcs\"; expected grpc or http/protobuf",
        ),
        (
            "trace:\n  id_scheme: go\n",
            "trace.id_scheme",
            "unknown id scheme \"go\"; expected python",
        ),
        (
            "track:\n  functions:\n    - name: f\n      statuses: [RUNNING, DONE]\n",
            "track.functions[0].statuses[1]",
            "unknown execution status \"DONE\"",
        ),
        (
            "track:\n  functions:\n    - name: f\n      statuses: [running]\n",
            "track.functions[0].statuses[0]",
            "statuses are upper case: RUNNING",
        ),
        (
            "track:\n  functions:\n    - name: f\n      statuses: []\n",
            "track.functions[0].statuses",
            "lists no status",
        ),
        (
            "otlp:\n  enabled: yes\n",
            "otlp.enabled",
            "expected true or false, found \"yes\"",
        ),
        // functions
        (
            "track:\n  functions:\n    - qualifier: live\n",
            "track.functions[0].name",
            "missing",
        ),
        (
            "track:\n  functions:\n    - name: \"\"\n",
            "track.functions[0].name",
            "must not be empty",
        ),
        (
            "track:\n  functions:\n    - \"my function\"\n",
            "track.functions[0]",
            "must not contain whitespace",
        ),
        (
            &format!("track:\n  functions:\n    - name: {ARN1}\n"),
            "track.functions[0].name",
            "is an execution ARN",
        ),
        (
            "track:\n  functions:\n    - name: \"arn:aws:s3:::bucket\"\n",
            "track.functions[0].name",
            "is not a function ARN",
        ),
        (
            "track:\n  functions:\n    - name: \"arn:aws:lambda:us-east-1:1:function:f:live\"\n      qualifier: \"2\"\n",
            "track.functions[0].qualifier",
            "differs from the qualifier \"live\"",
        ),
        (
            "track:\n  functions: [orders, {name: orders}]\n",
            "track.functions[1]",
            "the same function and qualifier as track.functions[0]",
        ),
        (
            "track:\n  functions: [7]\n",
            "track.functions[0]",
            "expected a function name or a map",
        ),
        // addresses, URLs, headers
        (
            "http:\n  listen: localhost:9464\n",
            "http.listen",
            "is not an IP address and port",
        ),
        (
            "otlp:\n  endpoint: localhost:4317\n",
            "otlp.endpoint",
            "is not an http:// or https:// URL",
        ),
        (
            "otlp:\n  endpoint: \"\"\n",
            "otlp.endpoint",
            "must not be empty",
        ),
        (
            "aws:\n  endpoint_url: ftp://x\n",
            "aws.endpoint_url",
            "is not an http:// or https:// URL",
        ),
        (
            "otlp:\n  headers:\n    \"bad name\": x\n",
            "otlp.headers.bad name",
            "not a valid HTTP header name",
        ),
        (
            "otlp:\n  headers: [a, b]\n",
            "otlp.headers",
            "expected a map of header names",
        ),
        (
            "checkpoint:\n  dir: \"\"\n",
            "checkpoint.dir",
            "must not be empty",
        ),
        // shapes
        (
            "poll: 5\n",
            "poll",
            "expected a section (a map with the keys interval, max_interval",
        ),
    ];
    for (text, key, fragment) in cases {
        assert_rejected(text, key, fragment);
    }
}

#[test]
fn unreadable_and_invalid_files_name_the_file() {
    let missing = Path::new("/nonexistent/durable-exporter.yaml");
    let e = Config::load_with_env(Some(missing), env(&[])).unwrap_err();
    assert_eq!(e.file.as_deref(), Some(missing));
    assert_eq!(e.key, None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/durable-exporter.yaml: no such config file"),
        "{e}"
    );

    for text in [
        "poll:\n  interval: [1s\n",
        "just a string\n",
        "- a\n- b\n",
        "a: 1\n---\nb: 2\n",
    ] {
        let (r, path) = load_yaml_env(text, &[]);
        let e = r.unwrap_err();
        assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
        assert_eq!(e.key, None, "{e}");
        assert!(e.message.starts_with("not a valid config file"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn error_lines_leave_out_missing_parts() {
    let e = ConfigError {
        file: Some(PathBuf::from("c.yaml")),
        key: Some("poll.interval".into()),
        message: "bad\nvalue".into(),
    };
    assert_eq!(e.to_string(), "c.yaml: poll.interval: bad value");
    let e = ConfigError {
        file: None,
        key: Some("k".into()),
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "k: m");
    let e = ConfigError {
        file: Some(PathBuf::from("c.yaml")),
        key: None,
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "c.yaml: m");
}

#[test]
fn shipped_config_is_exactly_the_defaults() {
    let path = manifest_path("config/durable-exporter.yaml");
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn operation_name_label_policies() {
    let c = load_yaml("metrics:\n  operation_name_label: top_n\n  operation_names_top_n: 5\n");
    assert_eq!(c.metrics.name_label(), crate::metrics::NameLabel::TopN(5));
    let c = load_yaml("metrics:\n  operation_name_label: top_n\n");
    assert_eq!(
        c.metrics.name_label(),
        crate::metrics::NameLabel::TopN(DEFAULT_OPERATION_NAMES_TOP_N)
    );
    assert_rejected(
        "metrics:\n  operation_name_label: all\n",
        "metrics.operation_name_label",
        "not off, allowlist or top_n",
    );
    assert_rejected(
        "metrics:\n  operation_name_label: top_n\n  operation_names_top_n: 0\n",
        "metrics.operation_names_top_n",
        "",
    );
}

#[test]
fn shipped_config_documents_every_key_and_its_variable() {
    let text = std::fs::read_to_string(manifest_path("config/durable-exporter.yaml")).unwrap();
    let sections = Config::sections();
    assert_eq!(
        sections,
        [
            "aws",
            "track",
            "poll",
            "otlp",
            "trace",
            "checkpoint",
            "http",
            "api",
            "ui",
            "metrics",
            "log",
            "shard",
            "runtime"
        ]
    );
    for section in &sections {
        assert!(text.contains(&format!("\n{section}:\n")), "{section}");
    }
    let keys = Config::keys();
    assert!(keys.len() >= 40, "{keys:?}");
    for key in &keys {
        let name = key.rsplit(['.', ']']).next().unwrap();
        assert!(
            text.contains(&format!(" {name}:")) || text.contains(&format!("# {name}:")),
            "{key} is not in the shipped config"
        );
        if key.contains("[]") {
            continue;
        }
        let var = format!("{ENV_PREFIX}{}", key.to_uppercase().replace('.', "__"));
        assert!(text.contains(&var), "{var} is not documented");
    }
}

#[test]
fn shipped_config_leaves_otel_variables_in_effect() {
    let path = manifest_path("config/durable-exporter.yaml");
    let c = Config::load_with_env(
        Some(&path),
        env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "svc"),
        ]),
    )
    .unwrap();
    assert_eq!(c.otlp.endpoint, "http://collector:4317");
    assert_eq!(c.trace.service_name.as_deref(), Some("svc"));
}

#[test]
fn every_shipped_config_file_loads() {
    let mut loaded = Vec::new();
    for dir in ["config", "config/examples"] {
        for entry in std::fs::read_dir(manifest_path(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let c =
                    Config::load_with_env(Some(&path), env(&[])).unwrap_or_else(|e| panic!("{e}"));
                loaded.push((path.file_name().unwrap().to_string_lossy().into_owned(), c));
            }
        }
    }
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["durable-exporter.yaml", "service.yaml", "sidecar.yaml"]
    );

    let service = &loaded[1].1;
    assert_eq!(service.track.functions.len(), 2);
    assert_eq!(service.otlp.protocol, Protocol::HttpProtobuf);
    assert_eq!(service.otlp.headers.len(), 2);
    assert_ne!(service.checkpoint.dir, CheckpointConfig::default().dir);
    let sidecar = &loaded[2].1;
    assert_eq!(sidecar.track.executions.len(), 3);
    assert_eq!(sidecar.otlp.protocol, Protocol::Grpc);
    assert_eq!(sidecar.otlp.endpoint, "http://localhost:4317");
}

#[test]
fn header_lists_and_percent_decoding() {
    assert_eq!(
        parse_header_list(" a = 1 ,, b=x%2Cy%ZZ%4").unwrap(),
        vec![("a".into(), "1".into()), ("b".into(), "x,y%ZZ%4".into())]
    );
    assert!(parse_header_list("a").is_err());
    assert_eq!(percent_decode("%E2%9C%93"), Some("\u{2713}".into()));
    assert_eq!(percent_decode("%FF"), None);
}

#[test]
fn summary_says_where_spans_go() {
    let s = Config::default().summary();
    assert!(s.contains("tracked executions: 0"), "{s}");
    assert!(s.contains("otlp: http://localhost:4317 (grpc)"), "{s}");
    assert!(
        s.contains("checkpoint dir: /var/lib/durable-exporter"),
        "{s}"
    );
    assert!(s.contains("http listen: 0.0.0.0:9464"), "{s}");
    let mut c = Config::default();
    c.otlp.enabled = false;
    assert!(c.summary().contains("otlp: disabled"));
}

#[test]
fn every_number_has_sane_bounds() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "aws:\n  max_requests_per_second: 1e-300\n",
            "aws.max_requests_per_second",
            "must be at least 0.01",
        ),
        (
            "aws:\n  max_requests_per_second: 1e300\n",
            "aws.max_requests_per_second",
            "must be at most 10000",
        ),
        (
            "aws:\n  max_concurrency: 99999999999999999999\n",
            "aws.max_concurrency",
            "must be at most 1024; got 100000000000000000000",
        ),
        (
            "poll:\n  interval: 99999999999d\n",
            "poll.interval",
            "must be at most 1h; got 273785078years",
        ),
        (
            "poll:\n  interval: 2h\n",
            "poll.interval",
            "must be at most 1h",
        ),
        (
            "poll:\n  max_interval: 30d\n",
            "poll.max_interval",
            "must be at most 1day",
        ),
        (
            "otlp:\n  timeout: 1h\n",
            "otlp.timeout",
            "must be at most 10m",
        ),
        (
            "otlp:\n  max_buffered_spans: 1000000000000\n",
            "otlp.max_buffered_spans",
            "must be at most 10000000",
        ),
        (
            "track:\n  max_executions: 0\n",
            "track.max_executions",
            "must be at least 1; got 0",
        ),
        (
            "trace:\n  max_attribute_length: 100000000\n",
            "trace.max_attribute_length",
            "must be at most 1048576",
        ),
        (
            "checkpoint:\n  on_newer_version: ignore\n",
            "checkpoint.on_newer_version",
            "unknown value \"ignore\"; expected refuse or reread",
        ),
        (
            "otlp:\n  compression: zstd\n",
            "otlp.compression",
            "unknown compression \"zstd\"; expected none or gzip",
        ),
    ];
    for (text, key, fragment) in cases {
        assert_rejected(text, key, fragment);
    }
}

#[test]
fn an_error_is_blamed_on_the_variable_that_set_the_value() {
    // The interval from a variable, max_interval from the defaults: the variable is named, the
    // file is not blamed.
    let (r, _) = load_yaml_env(
        "poll:\n  page_size: 10\n",
        &[("DURABLE_EXPORTER__POLL__INTERVAL", "99999999999d")],
    );
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("poll.interval"), "{e}");
    assert_eq!(e.file, None, "{e}");
    assert!(
        e.message.contains("DURABLE_EXPORTER__POLL__INTERVAL"),
        "{e}"
    );

    let (r, _) = load_yaml_env(
        "poll:\n  page_size: 10\n",
        &[("DURABLE_EXPORTER__POLL__INTERVAL", "20m")],
    );
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("poll.max_interval"), "{e}");
    assert_eq!(e.file, None, "neither key is in the file: {e}");
    assert!(
        e.message
            .contains("poll.interval from DURABLE_EXPORTER__POLL__INTERVAL"),
        "{e}"
    );

    // One key from the file, the other from a variable: both are named.
    let (r, path) = load_yaml_env(
        "poll:\n  max_interval: 1m\n",
        &[("DURABLE_EXPORTER__POLL__INTERVAL", "2m")],
    );
    let e = r.unwrap_err();
    assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
    assert!(
        e.message.contains("DURABLE_EXPORTER__POLL__INTERVAL"),
        "{e}"
    );
}

#[test]
fn yaml_input_is_bounded() {
    // Nine levels of nine aliases: 387 million nodes once expanded.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let (r, _) = load_yaml_env(&text, &[]);
    let e = r.unwrap_err();
    assert!(e.message.starts_with("not a valid config file"), "{e}");
    assert_eq!(e.key, None);

    // Larger than 1 MiB: refused before it is parsed.
    let big = format!("# {}\n", "x".repeat(MAX_CONFIG_FILE_BYTES));
    let (r, _) = load_yaml_env(&big, &[]);
    let e = r.unwrap_err();
    assert!(e.message.contains("larger than 1024 KiB"), "{e}");

    // Anchors within bounds are fine.
    let c = load_yaml("metrics:\n  operation_names: [&a charge, *a, ship]\n");
    assert_eq!(c.metrics.operation_names, ["charge", "charge", "ship"]);
}

#[test]
fn the_run_time_api_is_closed_unless_guarded() {
    assert_eq!(Config::default().api.listen.to_string(), "127.0.0.1:9465");
    assert!(Config::default().api.listen.ip().is_loopback());
    let (r, path) = load_yaml_env("api:\n  listen: 0.0.0.0:9465\n", &[]);
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("api.listen"), "{e}");
    assert_eq!(e.file.as_deref(), Some(path.as_path()));
    assert!(e.message.contains("api.token_file"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "short\n").unwrap();
    let text = format!(
        "api:\n  listen: 0.0.0.0:9465\n  token_file: {}\n",
        token.display()
    );
    assert_rejected(
        &text,
        "api.token_file",
        "no token of at least 16 characters",
    );
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let c = load_yaml(&text);
    assert_eq!(c.api.token_file.as_deref(), Some(token.as_path()));
    assert_rejected(
        "http:\n  listen: 127.0.0.1:9465\n",
        "api.listen",
        "the same address as http.listen",
    );
    assert_rejected(
        "otlp:\n  tls:\n    client_cert_file: /c.pem\n",
        "otlp.tls.client_key_file",
        "missing",
    );
}

#[test]
fn nested_keys_from_the_environment() {
    let c = load_env(&[
        ("DURABLE_EXPORTER__OTLP__TLS__CA_FILE", "/etc/ca.pem"),
        ("DURABLE_EXPORTER__OTLP__COMPRESSION", "gzip"),
        ("DURABLE_EXPORTER__CHECKPOINT__ON_NEWER_VERSION", "reread"),
    ])
    .unwrap();
    assert_eq!(
        c.otlp.tls.ca_file.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );
    assert_eq!(c.otlp.compression, Compression::Gzip);
    assert_eq!(c.checkpoint.on_newer_version, OnNewerVersion::Reread);
    let e = load_env(&[("DURABLE_EXPORTER__OTLP__TLS__CA_FIL", "/x")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("otlp.tls.ca_fil"), "{e}");
    assert!(e.message.contains("did you mean ca_file?"), "{e}");
    assert!(
        e.message.contains("DURABLE_EXPORTER__OTLP__TLS__CA_FIL"),
        "{e}"
    );
    // The OTEL_* variables fill what is not configured.
    let c = load_env(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/otel/ca.pem"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
    ])
    .unwrap();
    assert_eq!(
        c.otlp.tls.ca_file.as_deref(),
        Some(Path::new("/otel/ca.pem"))
    );
    assert_eq!(c.otlp.compression, Compression::Gzip);
    let (c, _) = load_yaml_env(
        "otlp:\n  compression: none\n  tls:\n    ca_file: /file/ca.pem\n",
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/otel/ca.pem"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    );
    let c = c.unwrap();
    assert_eq!(
        c.otlp.tls.ca_file.as_deref(),
        Some(Path::new("/file/ca.pem"))
    );
    assert_eq!(c.otlp.compression, Compression::None);
}

#[test]
fn keys_come_from_the_struct() {
    let keys = Config::keys();
    for k in [
        "aws.region",
        "otlp.tls.ca_file",
        "otlp.headers",
        "track.functions",
        "track.functions[].lookback",
        "api.token_file",
        "checkpoint.on_newer_version",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
    }
    assert!(
        !keys.iter().any(|x| x == "otlp.tls"),
        "a section is not a key"
    );
}

#[test]
fn the_log_filter_is_checked() {
    assert_eq!(Config::default().log.level, "info");
    assert!(
        Config::default()
            .log
            .filter()
            .starts_with("info,aws_config=warn")
    );
    let c = load_yaml("log:\n  level: debug,durable_exporter=trace\n");
    assert_eq!(c.log.level, "debug,durable_exporter=trace");
    let c = load_yaml("log:\n  level: info,aws_smithy_runtime=debug\n");
    assert_eq!(c.log.filter(), "info,aws_smithy_runtime=debug");
    assert_rejected(
        "log:\n  level: \"loud[\"\n",
        "log.level",
        "is not a log filter",
    );
}

#[test]
fn shards_from_the_file_the_environment_or_the_pod_name() {
    let c = load_yaml("shard:\n  index: 2\n  count: 3\n");
    assert_eq!(c.shard.shard(), crate::shard::Shard::new(2, 3).unwrap());
    assert_eq!(
        Config::default().shard.shard(),
        crate::shard::Shard::default()
    );
    let c = load_env(&[
        ("DURABLE_EXPORTER__SHARD__COUNT", "4"),
        ("DURABLE_EXPORTER__SHARD__FROM_POD_NAME", "true"),
        ("HOSTNAME", "ignored-0"),
        ("POD_NAME", "durable-exporter-3"),
    ])
    .unwrap();
    assert_eq!(c.shard.shard(), crate::shard::Shard::new(3, 4).unwrap());
    // HOSTNAME when POD_NAME is not given.
    let (c, _) = load_yaml_env(
        "shard:\n  count: 2\n  from_pod_name: true\n",
        &[("HOSTNAME", "exporter-1")],
    );
    assert_eq!(c.unwrap().shard.index, 1);

    assert_rejected(
        "shard:\n  index: 3\n  count: 3\n",
        "shard.index",
        "index 3 is not below shard.count (3): indexes run from 0 to 2",
    );
    assert_rejected("shard:\n  count: 0\n", "shard.count", "");
    assert_rejected("shard:\n  count: 1025\n", "shard.count", "");
    let (r, _) = load_yaml_env("shard:\n  count: 2\n  from_pod_name: true\n", &[]);
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("shard.from_pod_name"));
    assert!(
        e.to_string().contains("neither POD_NAME nor HOSTNAME"),
        "{e}"
    );
    let (r, _) = load_yaml_env(
        "shard:\n  count: 2\n  from_pod_name: true\n",
        &[("POD_NAME", "exporter-abc")],
    );
    let e = r.unwrap_err();
    assert!(
        e.to_string()
            .contains("POD_NAME is \"exporter-abc\", which does not end in -N"),
        "{e}"
    );
    let (r, _) = load_yaml_env(
        "shard:\n  count: 2\n  from_pod_name: true\n",
        &[("POD_NAME", "exporter-2")],
    );
    let e = r.unwrap_err();
    assert_eq!(e.key.as_deref(), Some("shard.from_pod_name"), "{e}");
    assert!(
        e.to_string()
            .contains("index 2 is not below shard.count (2)"),
        "{e}"
    );
}

#[test]
fn status_events_filter_functions_by_pattern_and_qualifier() {
    let c = load_yaml(
        "track:\n  status_events:\n    queue_url: https://sqs.eu-west-1.amazonaws.com/111122223333/durable\n    functions: [\"orders*\", \"*-billing\", \"a*b*c\"]\n    qualifiers: [live]\n",
    );
    let e = &c.track.status_events;
    assert_eq!(
        e.queue_url.as_deref(),
        Some("https://sqs.eu-west-1.amazonaws.com/111122223333/durable")
    );
    assert!(e.wants("orders", Some("live")));
    assert!(e.wants("orders-eu", Some("live")));
    assert!(e.wants("eu-billing", Some("live")));
    assert!(e.wants("abc", Some("live")) && e.wants("a-b-c", Some("live")));
    assert!(!e.wants("acb", Some("live")));
    assert!(!e.wants("orders", Some("$LATEST")) && !e.wants("orders", None));
    assert!(!e.wants("payments", Some("live")));
    let all = StatusEventsConfig::default();
    assert!(all.wants("anything", None));
    assert_rejected(
        "track:\n  status_events:\n    queue_url: sqs://nope\n",
        "track.status_events.queue_url",
        "",
    );
}

#[test]
fn aws_sigv4_is_off_unless_the_section_is_given() {
    let c = load_yaml("otlp:\n  protocol: http/protobuf\n");
    assert_eq!(c.otlp.aws_sigv4, None);
    assert_eq!(c.otlp.sigv4(), None);
    assert_eq!(c.otlp.endpoint, "http://localhost:4318");
    // A section whose keys are all commented out is not set.
    let c = load_yaml("otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n  #  region: us-east-1\n");
    assert_eq!(c.otlp.aws_sigv4, None);
}

#[test]
fn aws_sigv4_defaults_to_xray_and_its_endpoint() {
    let c = load_yaml("otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: eu-west-1\n");
    assert_eq!(
        c.otlp.sigv4(),
        Some(crate::sigv4::SigV4Target {
            service: "xray".into(),
            region: "eu-west-1".into()
        })
    );
    assert_eq!(
        c.otlp.endpoint,
        "https://xray.eu-west-1.amazonaws.com/v1/traces"
    );
    assert!(
        c.summary()
            .contains("https://xray.eu-west-1.amazonaws.com/v1/traces (http/protobuf, signed with SigV4 for xray in eu-west-1)"),
        "{}",
        c.summary()
    );
    // An endpoint given (a proxy, a VPC endpoint, a test receiver) is kept.
    let c = load_yaml(
        "otlp:\n  protocol: http/protobuf\n  endpoint: http://127.0.0.1:4318/v1/traces\n  aws_sigv4:\n    service: xray\n    region: eu-west-1\n",
    );
    assert_eq!(c.otlp.endpoint, "http://127.0.0.1:4318/v1/traces");
    let (c, _) = load_yaml_env(
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: eu-west-1\n",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")],
    );
    assert_eq!(c.unwrap().otlp.endpoint, "http://collector:4318/v1/traces");
}

#[test]
fn aws_sigv4_region_comes_from_aws_region_or_the_environment() {
    let yaml = "otlp:\n  protocol: http/protobuf\n  aws_sigv4: {}\n";
    let region = |text: &str, vars: &[(&str, &str)]| {
        let (c, _) = load_yaml_env(text, vars);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        (c.otlp.sigv4().unwrap().region, c.otlp.endpoint)
    };
    assert_eq!(
        region(
            yaml,
            &[
                ("AWS_REGION", "ap-south-1"),
                ("AWS_DEFAULT_REGION", "us-west-2")
            ]
        ),
        (
            "ap-south-1".into(),
            "https://xray.ap-south-1.amazonaws.com/v1/traces".into()
        )
    );
    assert_eq!(
        region(yaml, &[("AWS_DEFAULT_REGION", "us-west-2")]).0,
        "us-west-2"
    );
    let with_aws = format!("aws:\n  region: eu-central-1\n{yaml}");
    assert_eq!(
        region(&with_aws, &[("AWS_REGION", "ap-south-1")]).0,
        "eu-central-1"
    );
    let own = "aws:\n  region: eu-central-1\notlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: us-east-2\n";
    assert_eq!(region(own, &[("AWS_REGION", "ap-south-1")]).0, "us-east-2");

    assert_rejected(yaml, "otlp.aws_sigv4.region", "missing");
    let (e, _) = load_yaml_env(yaml, &[("AWS_REGION", "Not A Region")]);
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("otlp.aws_sigv4.region") && e.contains("AWS_REGION"),
        "{e}"
    );
}

#[test]
fn aws_sigv4_needs_http_protobuf() {
    for protocol in ["", "  protocol: grpc\n"] {
        let text = format!("otlp:\n{protocol}  aws_sigv4:\n    region: us-east-1\n");
        let (e, _) = load_yaml_env(&text, &[]);
        let e = e.expect_err(&text);
        assert_eq!(e.key.as_deref(), Some("otlp.aws_sigv4"), "{e}");
        let line = e.to_string();
        assert!(
            line.contains("otlp.protocol is grpc")
                && line.contains("set otlp.protocol to http/protobuf"),
            "{line}"
        );
    }
    // The protocol from the environment: the error says so.
    let e = load_env(&[
        ("DURABLE_EXPORTER__OTLP__AWS_SIGV4__REGION", "us-east-1"),
        ("DURABLE_EXPORTER__OTLP__PROTOCOL", "grpc"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("DURABLE_EXPORTER__OTLP__PROTOCOL")
            && e.contains("DURABLE_EXPORTER__OTLP__AWS_SIGV4__REGION"),
        "{e}"
    );
}

#[test]
fn aws_sigv4_from_environment_variables() {
    let c = load_env(&[
        ("DURABLE_EXPORTER__OTLP__PROTOCOL", "http/protobuf"),
        ("DURABLE_EXPORTER__OTLP__AWS_SIGV4__REGION", "sa-east-1"),
        ("DURABLE_EXPORTER__OTLP__AWS_SIGV4__SERVICE", "xray"),
    ])
    .unwrap();
    assert_eq!(
        c.otlp.sigv4(),
        Some(crate::sigv4::SigV4Target {
            service: "xray".into(),
            region: "sa-east-1".into()
        })
    );
    assert_eq!(
        c.otlp.endpoint,
        "https://xray.sa-east-1.amazonaws.com/v1/traces"
    );
    assert_rejected(
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: us-east-1\n    signing: v4\n",
        "otlp.aws_sigv4.signing",
        "unknown key",
    );
    assert_rejected(
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: xray.evil.example/x\n",
        "otlp.aws_sigv4.region",
        "not an AWS name",
    );
    assert_rejected(
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4: xray\n",
        "otlp.aws_sigv4",
        "expected a section",
    );
}

#[test]
fn the_key_list_has_the_aws_sigv4_keys() {
    let keys = Config::keys();
    for k in ["otlp.aws_sigv4.service", "otlp.aws_sigv4.region"] {
        assert!(keys.iter().any(|x| x == k), "{k}: {keys:?}");
    }
    assert!(!keys.iter().any(|x| x == "otlp.aws_sigv4"), "{keys:?}");
}

#[test]
fn runtime_worker_threads() {
    assert_eq!(Config::default().runtime.worker_threads, 1);
    let c = load_yaml("runtime:\n  worker_threads: 4\n");
    assert_eq!(c.runtime.worker_threads, 4);
    assert_rejected(
        "runtime:\n  worker_threads: 0\n",
        "runtime.worker_threads",
        "",
    );
    assert_rejected(
        "runtime:\n  worker_threads: 100000\n",
        "runtime.worker_threads",
        "",
    );
}
