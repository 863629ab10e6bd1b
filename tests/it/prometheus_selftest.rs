//! The Prometheus harness (tests/it/common/prometheus.rs) against a hand-written exposition: a
//! real Prometheus scrapes a small axum server, negotiates OpenMetrics, stores the samples and
//! the exemplar; promtool accepts the classic text and refuses bad expositions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::http::http_get;
use crate::common::prometheus::{Prometheus, Sample, promtool_bin, promtool_check_metrics};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const TRACE_ID: &str = "0123456789abcdef0123456789abcdef";
const OPENMETRICS_CT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC_CT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a scrape may take to show up: Prometheus 2.42 applies its targets 5 s after the
/// start (a fixed throttle), then scrapes within one interval (1 s).
const SCRAPED: Duration = Duration::from_secs(15);

const CLASSIC: &str = "\
# HELP demo_requests_total Requests handled.
# TYPE demo_requests_total counter
demo_requests_total{route=\"a\"} 3
# HELP demo_in_flight Requests in flight.
# TYPE demo_in_flight gauge
demo_in_flight 2
# HELP demo_latency_seconds Request latency.
# TYPE demo_latency_seconds histogram
demo_latency_seconds_bucket{le=\"0.1\"} 1
demo_latency_seconds_bucket{le=\"1.0\"} 3
demo_latency_seconds_bucket{le=\"+Inf\"} 4
demo_latency_seconds_sum 3.2
demo_latency_seconds_count 4
";

const OPENMETRICS: &str = "\
# HELP demo_requests Requests handled.
# TYPE demo_requests counter
demo_requests_total{route=\"a\"} 3
# HELP demo_in_flight Requests in flight.
# TYPE demo_in_flight gauge
demo_in_flight 2
# HELP demo_latency_seconds Request latency.
# TYPE demo_latency_seconds histogram
# UNIT demo_latency_seconds seconds
demo_latency_seconds_bucket{le=\"0.1\"} 1
demo_latency_seconds_bucket{le=\"1.0\"} 3 # {trace_id=\"0123456789abcdef0123456789abcdef\"} 0.5 1700000000.000
demo_latency_seconds_bucket{le=\"+Inf\"} 4
demo_latency_seconds_sum 3.2
demo_latency_seconds_count 4
# EOF
";

/// What the demo server saw and answered.
#[derive(Default)]
struct Seen {
    /// Every scrape's Accept header.
    accepts: Mutex<Vec<String>>,
    /// Scrapes answered with OpenMetrics.
    openmetrics: AtomicUsize,
    /// Answer classic text whatever the Accept header says.
    classic_only: bool,
}

async fn metrics(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let om = !seen.classic_only && accept.contains("application/openmetrics-text");
    seen.accepts.lock().unwrap().push(accept);
    if om {
        seen.openmetrics.fetch_add(1, Ordering::SeqCst);
        ([(CONTENT_TYPE, OPENMETRICS_CT)], OPENMETRICS).into_response()
    } else {
        ([(CONTENT_TYPE, CLASSIC_CT)], CLASSIC).into_response()
    }
}

/// The demo exposition on `path`, on a free port; runs until the test's runtime ends.
async fn serve_demo(path: &str, classic_only: bool) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen {
        classic_only,
        ..Seen::default()
    });
    let app = axum::Router::new()
        .route(path, get(metrics))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn labels_of(s: &Sample) -> Vec<(&str, &str)> {
    s.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_server_negotiates_by_accept_header() {
    let (addr, _) = serve_demo("/metrics", false).await;
    let om = http_get(
        addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    )
    .await
    .unwrap();
    assert_eq!(om.status, 200);
    assert_eq!(om.header("content-type"), Some(OPENMETRICS_CT));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    let classic = http_get(addr, "/metrics", &[]).await.unwrap();
    assert_eq!(classic.header("Content-Type"), Some(CLASSIC_CT));
    assert_eq!(classic.body, CLASSIC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_openmetrics_and_stores_the_exemplar() {
    let (addr, seen) = serve_demo("/metrics", false).await;
    let target = addr.to_string();
    let Some(prom) = Prometheus::start(&target).await else {
        return;
    };

    let up = prom
        .wait_for("up", SCRAPED, |r| r.len() == 1 && r[0].1 == 1.0)
        .await;
    assert_eq!(up[0].0["instance"], target);
    assert_eq!(up[0].0["job"], "target");
    assert!(prom.targets_up().await, "{}", prom.targets_summary().await);

    // The scrape asked for OpenMetrics first and got it.
    let accepts = seen.accepts.lock().unwrap().clone();
    assert!(!accepts.is_empty());
    assert!(
        accepts[0].starts_with("application/openmetrics-text;version=1.0.0"),
        "{accepts:?}"
    );
    assert!(seen.openmetrics.load(Ordering::SeqCst) >= 1);

    let requests = prom.query("demo_requests_total").await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].1, 3.0);
    assert_eq!(
        labels_of(&requests[0]),
        [
            ("__name__", "demo_requests_total"),
            ("instance", target.as_str()),
            ("job", "target"),
            ("route", "a"),
        ]
    );
    let in_flight = prom.query("demo_in_flight").await;
    assert_eq!(in_flight.len(), 1, "{in_flight:?}");
    assert_eq!(in_flight[0].1, 2.0);

    // Rank 2 of 4 falls in (0.1, 1.0], which holds observations 2 and 3: 0.1 + 0.9 / 2.
    let median = prom
        .query("histogram_quantile(0.5, demo_latency_seconds_bucket)")
        .await;
    assert_eq!(median.len(), 1, "{median:?}");
    assert!((median[0].1 - 0.55).abs() < 1e-9, "{median:?}");
    let buckets = prom.query("demo_latency_seconds_bucket").await;
    assert_eq!(buckets.len(), 3, "{buckets:?}");

    // The exemplar, with its own timestamp, on the le="1.0" bucket.
    let data = prom
        .query_exemplars(
            "demo_latency_seconds_bucket",
            1_699_999_000.0,
            1_700_001_000.0,
        )
        .await;
    let series = data.as_array().expect("an array of series");
    assert_eq!(series.len(), 1, "{data}");
    let le: f64 = series[0]["seriesLabels"]["le"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(le, 1.0, "{data}");
    assert_eq!(series[0]["seriesLabels"]["instance"], target.as_str());
    let exemplars = series[0]["exemplars"].as_array().unwrap();
    assert_eq!(exemplars.len(), 1, "{data}");
    assert_eq!(exemplars[0]["labels"]["trace_id"], TRACE_ID);
    assert_eq!(exemplars[0]["value"], "0.5");
    assert_eq!(exemplars[0]["timestamp"].as_f64(), Some(1_700_000_000.0));
    // Outside the exemplar's timestamp: nothing.
    let none = prom
        .query_exemplars(
            "demo_latency_seconds_bucket",
            1_700_000_001.0,
            1_700_001_000.0,
        )
        .await;
    assert_eq!(none.as_array().map(Vec::len), Some(0), "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_text_on_another_path_has_samples_but_no_exemplars() {
    let (addr, seen) = serve_demo("/custom/metrics", true).await;
    let Some(prom) = Prometheus::start_with(&addr.to_string(), "/custom/metrics").await else {
        return;
    };
    prom.wait_until_up(SCRAPED).await;
    let r = prom
        .wait_for("demo_requests_total", SCRAPED, |r| r.len() == 1)
        .await;
    assert_eq!(r[0].1, 3.0);
    assert_eq!(r[0].0["route"], "a");
    assert_eq!(seen.openmetrics.load(Ordering::SeqCst), 0);
    let data = prom
        .query_exemplars("demo_latency_seconds_bucket", 0.0, 4_000_000_000.0)
        .await;
    assert_eq!(data.as_array().map(Vec::len), Some(0), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_is_down_and_waiting_times_out_with_context() {
    // Nothing listens there: bound, then closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let Some(promtool) = promtool_bin() else {
        return;
    };
    let Some(prom) = Prometheus::start(&closed.to_string()).await else {
        return;
    };
    let prom = Arc::new(prom);
    prom.wait_for("up", SCRAPED, |r| r.len() == 1).await;
    assert_eq!(prom.query("up").await[0].1, 0.0);
    assert!(!prom.targets_up().await);
    assert_eq!(prom.targets().await[0]["health"], "down");

    // Special values come back as such.
    assert!(prom.query("vector(0/0)").await[0].1.is_nan());
    assert_eq!(prom.query("1/0").await[0].1, f64::INFINITY);
    assert_eq!(prom.query("-1/0").await[0].1, f64::NEG_INFINITY);

    // Prometheus's own exposition (~40 kB) comes chunked: the raw client undoes it, and
    // promtool takes the whole of it.
    let own = prom.get("/metrics").await.unwrap();
    assert_eq!(own.status, 200);
    assert_eq!(own.header("transfer-encoding"), Some("chunked"));
    assert!(own.body.contains("\ngo_goroutines "), "{}", own.body);
    assert!(
        own.body
            .contains("\npromhttp_metric_handler_requests_total{")
    );
    promtool_check_metrics(&promtool, &own.body).unwrap();

    // wait_for panics with the query, the target's state and the log.
    let p = prom.clone();
    let err = tokio::spawn(async move {
        p.wait_for("up", Duration::from_millis(1500), |r| {
            r.iter().any(|s| s.1 == 1.0)
        })
        .await
    })
    .await
    .expect_err("wait_for must time out");
    let msg = *err.into_panic().downcast::<String>().unwrap();
    assert!(msg.contains("waiting for `up`"), "{msg}");
    assert!(msg.contains("health=\"down\""), "{msg}");
    assert!(msg.contains("Server is ready"), "{msg}");
}

#[test]
fn promtool_accepts_the_classic_text_and_refuses_bad_expositions() {
    let Some(promtool) = promtool_bin() else {
        return;
    };
    assert_eq!(
        promtool_check_metrics(&promtool, CLASSIC),
        Ok(String::new())
    );

    let no_total =
        "# HELP demo_requests Requests.\n# TYPE demo_requests counter\ndemo_requests 3\n";
    let err = promtool_check_metrics(&promtool, no_total).unwrap_err();
    assert!(
        err.contains("demo_requests counter metrics should have \"_total\" suffix"),
        "{err}"
    );

    let bad_name = "# HELP demo-requests_total Requests.\n# TYPE demo-requests_total counter\ndemo-requests_total 3\n";
    let err = promtool_check_metrics(&promtool, bad_name).unwrap_err();
    assert!(err.contains("parsing error"), "{err}");

    let no_help = "# TYPE demo_requests_total counter\ndemo_requests_total 3\n";
    let err = promtool_check_metrics(&promtool, no_help).unwrap_err();
    assert!(err.contains("demo_requests_total no help text"), "{err}");
}
