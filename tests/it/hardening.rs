//! The hardening of `durable-exporter run`, against the real binary: the run-time API on a
//! listener of its own (behind a token when it faces the network), limits a hostile or broken
//! client cannot get around, TLS and basic auth from an exporter-toolkit web config, a full
//! checkpoint disk, a hung collector, a checkpoint of a newer version, SIGHUP reloads, and a
//! throttling storm. Each test asserts what an operator would check: status codes, /readyz,
//! /metrics, the log, and the spans the collector got.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition::value_of as series;
use crate::common::http::{Response, exchange, parse_response, request, request_bytes};
use durable_exporter::sim::scripted::{Faults, ScriptedApi};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

fn add_body(arn: &str) -> String {
    format!("{{\"DurableExecutionArn\": \"{arn}\"}}")
}

// ---------------------------------------------------------------------------------------------
// HTTPS (plain HTTP with headers and bodies: common::http).

/// A TLS client trusting `ca_pem`, with a client certificate when given (PEM certificate, key).
fn tls_client(ca_pem: &str, client: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTPS request to `addr` for the name `localhost`; Err says whether the handshake or the
/// exchange failed.
async fn https(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let req = request_bytes("localhost", method, path, headers, b"");
    tokio::time::timeout(Duration::from_secs(5), async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        exchange(&mut stream, &req).await
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The exit status of a daemon that is expected to stop by itself within `within`.
async fn exit_of(d: &mut Daemon, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {within:?}:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn alive(d: &mut Daemon) -> bool {
    d.child.try_wait().unwrap().is_none()
}

/// Polls the run-time API until `cond` holds (within 20 s), and panics at once with the exit
/// status when the process ends meanwhile.
async fn running_until(
    d: &mut Daemon,
    api: SocketAddr,
    what: &str,
    cond: impl Fn(&Views) -> bool,
) -> Views {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            panic!(
                "the daemon ended ({status}) waiting for {what}:\n{}",
                d.logs()
            );
        }
        if let Some(v) = views(api).await
            && cond(&v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Two listeners.

/// The metrics listener (which may face the network) serves /metrics, /healthz and /readyz and
/// nothing that reads or changes tracking; the run-time API is on its own listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_time_api_is_not_on_the_metrics_listener() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs[..1]), "");
    let d = Daemon::start(&s, 1).await;
    let second = add_body(&execs[1].0);

    // On the metrics listener: no API.
    let enc = execs[0].0.replace('/', "%2F").replace('$', "%24");
    for (method, path, body) in [
        ("GET", "/v1/executions".to_owned(), ""),
        ("POST", "/v1/executions".to_owned(), second.as_str()),
        ("GET", format!("/v1/executions/{enc}"), ""),
        ("DELETE", format!("/v1/executions/{enc}"), ""),
    ] {
        let r = request(s.http, method, &path, &[], body)
            .await
            .unwrap_or_else(|| panic!("{method} {path} on http.listen: no answer"));
        assert_eq!(r.status, 404, "{method} {path} on http.listen: {}", r.body);
    }
    // The POST that met the metrics listener tracked nothing, the DELETE removed nothing.
    let v = views(s.api)
        .await
        .expect("GET /v1/executions on api.listen");
    assert!(!v.contains_key(&execs[1].0), "{v:?}");
    assert!(v.contains_key(&execs[0].0), "{v:?}");

    // On the API listener: the API.
    let r = request(s.api, "GET", "/v1/executions", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(s.api, "POST", "/v1/executions", &[], &second)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "both to end",
        all_finished(&execs),
    )
    .await;

    // What the metrics listener serves; none of it on the API listener.
    let m = request(s.http, "GET", "/metrics", &[], "").await.unwrap();
    assert_eq!(m.status, 200);
    assert!(m.body.contains("durable_exporter_build_info"), "{}", m.body);
    for path in ["/healthz", "/readyz"] {
        let r = request(s.http, "GET", path, &[], "").await.unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = request(s.api, "GET", path, &[], "").await.unwrap();
        assert_eq!(r.status, 404, "{path} on api.listen: {}", r.body);
    }
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// A bearer token on a network-facing API.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_facing_api_demands_its_bearer_token() {
    const TOKEN: &str = "5f2b8c0e9a7d4e1f8b3c6a9d2e5f8a1b";
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    let token = s.dir.path().join("api-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    write_config(
        &s,
        &fake,
        receiver.addr,
        &arns(&execs),
        &format!(
            "api:\n  listen: \"0.0.0.0:{}\"\n  token_file: \"{}\"\n",
            s.api.port(),
            token.display()
        ),
    );
    let d = Daemon::start(&s, 1).await;

    let mut unauthorized = 0;
    // No credentials: 401 with the challenge.
    let r = request(s.api, "GET", "/v1/executions", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer"),
        "{:?}",
        r.headers
    );
    assert!(!r.body.contains(&execs[0].0), "{}", r.body);
    unauthorized += 1;
    // Wrong tokens, and a right token in the wrong scheme.
    for auth in [
        "Bearer 5f2b8c0e9a7d4e1f8b3c6a9d2e5f8a1c".to_owned(),
        "Bearer 5f2b8c0e9a7d4e1f8b3c6a9d2e5f8a1".to_owned(),
        basic("api", TOKEN),
    ] {
        let r = request(
            s.api,
            "GET",
            "/v1/executions",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401, "{auth}: {}", r.body);
        unauthorized += 1;
    }
    let r = request(
        s.api,
        "POST",
        "/v1/executions",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        &add_body(&arn(9)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    unauthorized += 1;

    // The right token.
    let bearer = format!("Bearer {TOKEN}");
    let r = request(
        s.api,
        "GET",
        "/v1/executions",
        &[("Authorization", &bearer)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&execs[0].0), "{}", r.body);
    let r = request(
        s.api,
        "GET",
        "/v1/executions",
        &[("authorization", &format!("bearer {TOKEN}"))],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "the scheme is case-insensitive: {}", r.body);
    // The refused POST tracked nothing.
    assert!(!r.body.contains(&arn(9)), "{}", r.body);

    let m = scrape(s.http).await;
    assert_eq!(
        series(
            &m,
            "durable_exporter_http_unauthorized_requests_total{listener=\"api\"}"
        ),
        Some(unauthorized as f64),
        "{m}"
    );
    assert_eq!(
        series(
            &m,
            "durable_exporter_http_unauthorized_requests_total{listener=\"http\"}"
        ),
        Some(0.0),
        "{m}"
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// track.max_executions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_beyond_max_executions_are_refused_and_counted() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(4, 5);
    add_all(&fake, &execs);
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs[..2]),
        "track:\n  max_executions: 3\n",
    );
    let d = Daemon::start(&s, 1).await;

    let r = request(s.api, "POST", "/v1/executions", &[], &add_body(&execs[2].0))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "the third fits: {}", r.body);
    let r = request(s.api, "POST", "/v1/executions", &[], &add_body(&execs[3].0))
        .await
        .unwrap();
    assert_eq!(r.status, 429, "the fourth does not: {}", r.body);
    let error: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let message = error["error"].as_str().unwrap_or_else(|| panic!("{error}"));
    assert!(message.contains("track.max_executions"), "{message}");
    // One already tracked is no new registration: not refused at the limit.
    let r = request(s.api, "POST", "/v1/executions", &[], &add_body(&execs[2].0))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(
        metric(
            s.http,
            "durable_exporter_tracking_rejected_total{source=\"api\"}"
        )
        .await,
        1.0
    );
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "three to end",
        all_finished(&execs[..3]),
    )
    .await;
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(!v.contains_key(&execs[3].0), "{v:?}");
    assert_eq!(v[&execs[2].0].source, "api");
    // Nothing of the fourth was read or exported.
    assert!(
        !fake.requests().iter().any(|r| r.target == execs[3].0),
        "the refused execution was read"
    );
    let (got, _) = received(&receiver);
    assert_exact(&expected(&execs[..3]), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// Slow clients and big bodies.

/// What became of a connection that sent half a request: closed by the server (EOF or an
/// error), or still open at the deadline.
async fn closed_by(mut stream: tokio::net::TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            // A 408 or the like: read on to the close.
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_starve_nothing() {
    const SLOW: usize = 300;
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;

    // Slowloris: more connections than the listener serves at once, each with a request whose
    // headers never end.
    let opened = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut c = tokio::net::TcpStream::connect(s.http)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    // Meanwhile the run-time API answers at once.
    let asked = Instant::now();
    let r = request(s.api, "GET", "/v1/executions", &[], "")
        .await
        .expect("the API answers while the metrics listener is flooded");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "took {:?}",
        asked.elapsed()
    );

    let deadline = opened + Duration::from_secs(15);
    let waits: Vec<_> = slow
        .into_iter()
        .map(|c| tokio::spawn(closed_by(c, deadline)))
        .collect();
    // /healthz answers before the deadline (each try gives up after a second: a connection
    // waiting in the backlog is retried).
    let healthy = loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            request(s.http, "GET", "/healthz", &[], ""),
        )
        .await;
        if let Ok(Some(r)) = attempt
            && r.status == 200
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not answer within 15 s of the flood\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut still_open = 0;
    let mut last_close = opened;
    for w in waits {
        match w.await.unwrap() {
            Some(at) => last_close = last_close.max(at),
            None => still_open += 1,
        }
    }
    assert_eq!(
        still_open, 0,
        "{still_open} of {SLOW} half-sent requests were still open 15 s after they were opened"
    );
    eprintln!(
        "slow clients: /healthz answered after {:?}, the last slow connection closed after {:?}",
        healthy - opened,
        last_close - opened
    );
    // The listener's connection gauge is back to the scrape itself and little more.
    let open: f64 = d
        .eventually(
            Duration::from_secs(5),
            "the connection gauge to drop",
            || async {
                let body = request(s.http, "GET", "/metrics", &[], "").await?.body;
                series(
                    &body,
                    "durable_exporter_http_connections{listener=\"http\"}",
                )
                .filter(|n| *n <= 3.0)
            },
        )
        .await;
    assert!(open >= 1.0, "the scrape's own connection counts: {open}");
    // Those beyond the limit were closed at once, and counted.
    let refused = metric(
        s.http,
        "durable_exporter_http_refused_connections_total{listener=\"http\"}",
    )
    .await;
    assert!(
        refused >= (SLOW - durable_exporter::listener::MAX_CONNECTIONS) as f64,
        "{refused} connections refused"
    );
    assert_eq!(
        metric(
            s.http,
            "durable_exporter_http_refused_connections_total{listener=\"api\"}"
        )
        .await,
        0.0
    );

    // A body above the limit: 413, whether or not the rest of it was read.
    let body = vec![b'x'; 1 << 20];
    let req = request_bytes(&s.api.to_string(), "POST", "/v1/executions", &[], &body);
    let mut stream = tokio::net::TcpStream::connect(s.api).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    let (_, answer) = tokio::join!(
        async {
            // The server may answer and close before it is all sent.
            let _ = wr.write_all(&req).await;
        },
        async {
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf)).await;
            buf
        }
    );
    let r = parse_response(&answer)
        .unwrap_or_else(|| panic!("no answer to 1 MiB: {:?}", String::from_utf8_lossy(&answer)));
    assert_eq!(r.status, 413, "{}", r.body);
    let v = views(s.api).await.unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// TLS and basic auth from web configs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_configs_give_tls_basic_auth_and_client_certificates() {
    let pki = crate::common::otlp::TestPki::new();
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    // The web configs in a folder of their own, naming their files relative to it (the daemon
    // runs elsewhere).
    let web = s.dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    for (name, text) in [
        ("server.pem", &pki.server_cert_pem),
        ("server.key", &pki.server_key_pem),
        ("clients-ca.pem", &pki.ca_pem),
    ] {
        std::fs::write(web.join(name), text).unwrap();
    }
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        web.join("metrics.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prom: '{hash}'\n"
        ),
    )
    .unwrap();
    std::fs::write(
        web.join("api.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.pem\n",
    )
    .unwrap();
    write_config(
        &s,
        &fake,
        receiver.addr,
        &arns(&execs),
        &format!(
            "http:\n  web_config_file: \"{}\"\napi:\n  web_config_file: \"{}\"\n",
            web.join("metrics.yml").display(),
            web.join("api.yml").display()
        ),
    );
    let mut d = Daemon::spawn(&s, 1, LogFormat::Text);
    let tls = tls_client(&pki.ca_pem, None);
    let healthz = d
        .eventually(Duration::from_secs(15), "/healthz over HTTPS", || async {
            https(&tls, s.http, "GET", "/healthz", &[]).await.ok()
        })
        .await;
    assert!(alive(&mut d));
    // Probes need no credentials.
    assert_eq!(healthz.status, 200, "{}", healthz.body);

    // /metrics needs them.
    let r = https(&tls, s.http, "GET", "/metrics", &[]).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"durable-exporter\""),
        "{:?}",
        r.headers
    );
    assert!(!r.body.contains("durable_exporter_build_info"));
    for auth in [
        basic("prom", "wrong"),
        basic("grafana", "s3cret"),
        basic("prom", ""),
    ] {
        let r = https(&tls, s.http, "GET", "/metrics", &[("Authorization", &auth)])
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{auth}: {}", r.body);
    }
    let good = basic("prom", "s3cret");
    let r = https(&tls, s.http, "GET", "/metrics", &[("Authorization", &good)])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("durable_exporter_build_info"), "{}", r.body);
    assert_eq!(
        series(
            &r.body,
            "durable_exporter_http_unauthorized_requests_total{listener=\"http\"}"
        ),
        Some(4.0),
        "{}",
        r.body
    );

    // Plain HTTP gets no HTTP answer from a TLS listener.
    assert!(
        request(s.http, "GET", "/healthz", &[], "").await.is_none(),
        "plain HTTP was answered on a TLS listener"
    );

    // The container's HEALTHCHECK speaks TLS when told.
    let healthcheck = |tls: bool| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["healthcheck", "--addr", &s.http.to_string()]);
        if tls {
            cmd.arg("--tls").arg("--ca-file").arg(pki.path("ca.pem"));
        }
        cmd.env_clear().output().unwrap()
    };
    let o = healthcheck(true);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = healthcheck(false);
    assert_eq!(
        o.status.code(),
        Some(1),
        "plain HTTP: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The API listener demands a client certificate from the CA it names.
    let with_cert = tls_client(
        &pki.ca_pem,
        Some((&pki.client_cert_pem, &pki.client_key_pem)),
    );
    let r = https(&with_cert, s.api, "GET", "/v1/executions", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&execs[0].0), "{}", r.body);
    for (who, client) in [
        ("no client certificate", tls_client(&pki.ca_pem, None)),
        (
            "a certificate of another CA",
            tls_client(
                &pki.ca_pem,
                Some((&pki.stranger_cert_pem, &pki.stranger_key_pem)),
            ),
        ),
    ] {
        match https(&client, s.api, "GET", "/v1/executions", &[]).await {
            Ok(r) => panic!("{who}: answered {} {}", r.status, r.body),
            // TLS 1.3: the client's side of the handshake ends before the server's verdict,
            // which arrives as an alert on the first read.
            Err(e) => assert!(
                e.starts_with("handshake:") || e.contains("alert"),
                "{who}: {e}"
            ),
        }
    }
    // Both refusals counted (the count may follow the alert by a moment).
    d.eventually(
        Duration::from_secs(5),
        "two TLS failures counted on api",
        || async {
            let m = https(&tls, s.http, "GET", "/metrics", &[("Authorization", &good)])
                .await
                .ok()?;
            (series(
                &m.body,
                "durable_exporter_http_tls_handshake_failures_total{listener=\"api\"}",
            ) == Some(2.0))
            .then_some(())
        },
    )
    .await;
    d.signal("-TERM");
    assert!(exit_of(&mut d, Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// A full checkpoint disk.

/// A tmpfs mounted over a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a daemon still starting or stopping): detach it now, freed once unused.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Writes to `filler` until the file system is full (ENOSPC), down to the last byte.
fn fill(filler: &mut std::fs::File) {
    use std::io::Write as _;
    let chunk = vec![0u8; 64 << 10];
    for size in [chunk.len(), 4096, 1] {
        loop {
            match filler.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
    }
}

/// Total spans received, repeats included.
fn spans_received(r: &crate::common::otlp::Receiver) -> usize {
    crate::common::otlp::flatten(&r.requests()).0.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_checkpoint_disk_pauses_the_export_and_loses_nothing() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    // Histories long enough that their checkpoints outgrow the files they replace.
    let execs = executions(3, 200);
    add_all_visible(&fake, &execs, 1);
    let all = arns(&execs);
    let s = setup(&fake, receiver.addr, &all, "");
    // Only checkpoint.dir on the small file system: the config and the logs stay outside.
    let tmpfs = match Tmpfs::mount(&s.checkpoints(), "4m") {
        Ok(t) => t,
        Err(e) => {
            crate::common::missing(
                &format!("root or tmpfs ({e})"),
                "run as root: the test mounts a small tmpfs as checkpoint.dir and fills it",
            );
            return;
        }
    };
    let d = Daemon::start(&s, 1).await;

    // Progress: a third of each history read and acknowledged.
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 3);
    }
    let thirds: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (e.len() / 3) as u64))
        .collect();
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "a third acknowledged",
        |v| {
            thirds
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|x| x.last >= *n))
        },
    )
    .await;
    let before_full = spans_received(&receiver);
    assert!(before_full > 0);

    // The disk fills up; the histories go on.
    let filler_path = s.checkpoints().join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    fill(&mut filler);
    for (a, e) in &execs {
        fake.reveal(a, 2 * e.len() / 3);
    }
    let reasons = d
        .eventually(Duration::from_secs(15), "/readyz to say 503", || {
            // Space a rename gave back is taken again.
            fill(&mut filler);
            async {
                let r = request(s.http, "GET", "/readyz", &[], "").await?;
                (r.status == 503).then_some(r.body)
            }
        })
        .await;
    let at_503 = spans_received(&receiver);
    assert!(reasons.contains("checkpoint"), "{reasons}");
    assert_eq!(
        metric(s.http, "durable_exporter_checkpoints_writable").await,
        0.0
    );

    // Reading goes on to the end of what is visible; exporting does not (beyond the batch that
    // was in flight).
    let targets: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (2 * e.len() / 3) as u64))
        .collect();
    wait_for(&d, s.api, Duration::from_secs(20), "two thirds read", |v| {
        fill(&mut filler);
        targets
            .iter()
            .all(|(a, n)| v.get(a).is_some_and(|x| x.read >= *n))
    })
    .await;
    // Everything read is held: from the moment a checkpoint failed (/readyz said so), at most
    // the one batch in flight reached the collector, and that stays so (watched for two
    // seconds). Until then writes that fit in the files they replace still succeed, and
    // their batches are exported.
    let until = Instant::now() + Duration::from_secs(2);
    let mut buffered = 0;
    while Instant::now() < until {
        fill(&mut filler);
        let sent = spans_received(&receiver) - at_503;
        assert!(
            sent <= MAX_BATCH,
            "{sent} spans exported after a checkpoint failed (at most one batch may be in flight)\n{}",
            d.logs()
        );
        let list = request(s.api, "GET", "/v1/executions", &[], "")
            .await
            .unwrap();
        let list: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        buffered = list["BufferedSpans"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(buffered > 0, "the spans read while full wait in the buffer");
    let while_full = spans_received(&receiver) - before_full;
    let r = request(s.http, "GET", "/readyz", &[], "").await.unwrap();
    assert_eq!(r.status, 503, "still not ready: {}", r.body);
    // A registration that cannot be written is refused, not promised.
    let newcomer = arn(77);
    let r = request(s.api, "POST", "/v1/executions", &[], &add_body(&newcomer))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!views(s.api).await.unwrap().contains_key(&newcomer));

    // Killed while the disk is full; room again; started again: everything arrives.
    d.kill9();
    drop(filler);
    std::fs::remove_file(&filler_path).unwrap();
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let d = Daemon::start(&s, 2).await;
    let v = wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(
        !v.contains_key(&newcomer),
        "the refused registration came back: {v:?}"
    );
    let (got, repeats) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert!(
        repeats <= MAX_BATCH,
        "{repeats} spans sent twice, more than one batch"
    );
    eprintln!(
        "full disk: {before_full} spans before, {while_full} after it filled ({} of them by the time /readyz said so), {buffered} held, {repeats} sent twice",
        at_503 - before_full
    );
    assert_eq!(
        metric(s.http, "durable_exporter_checkpoints_writable").await,
        1.0
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    drop(tmpfs);
}

// ---------------------------------------------------------------------------------------------
// A hung collector.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_makes_the_daemon_unready() {
    // Accepts, reads whatever comes, never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = hung.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(c.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let fake = ScriptedApi::start().await;
    let execs = executions(2, 10);
    add_all(&fake, &execs);
    let s = setup(
        &fake,
        hung_addr,
        &arns(&execs),
        "otlp:\n  timeout: 1s\nhttp:\n  ready_window: 2s\n",
    );
    let d = Daemon::start(&s, 1).await;
    let started = Instant::now();
    let first = request(s.http, "GET", "/readyz", &[], "").await.unwrap();
    assert_eq!(first.status, 200, "ready at the start: {}", first.body);
    let reasons = d
        .eventually(Duration::from_secs(10), "/readyz to say 503", || async {
            let r = request(s.http, "GET", "/readyz", &[], "").await?;
            (r.status == 503).then_some(r.body)
        })
        .await;
    let after = started.elapsed();
    assert!(reasons.contains("collector"), "{reasons}");
    // Reads went on: it is the collector, not the API, that is not answering.
    assert!(!reasons.contains("durable-execution API"), "{reasons}");
    eprintln!("hung collector: /readyz 503 after {after:?}: {reasons}");
    assert!(metric(s.http, "durable_exporter_span_export_failures_total").await > 0.0);
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        0.0
    );
    d.kill9();
}

/// Readiness is about failing dependencies, not quiet ones: a daemon whose executions have all
/// ended makes no API calls, and stays ready; an API that stops answering makes it unready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_daemon_stays_ready_and_an_api_that_stops_answering_does_not() {
    const WINDOW: Duration = Duration::from_secs(1);
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 5);
    add_all(&fake, &execs);
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        "http:\n  ready_window: 1s\n",
    );
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "both to end",
        all_finished(&execs),
    )
    .await;
    // Nothing is read any more; three windows later it is still ready.
    let calls = fake.requests().len();
    let until = Instant::now() + 3 * WINDOW;
    while Instant::now() < until {
        let r = request(s.http, "GET", "/readyz", &[], "").await.unwrap();
        assert_eq!(r.status, 200, "idle, yet not ready: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.requests().len(),
        calls,
        "the ended executions were read again"
    );

    // A new execution to read, and an API that refuses connections.
    fake.stop().await;
    let r = request(s.api, "POST", "/v1/executions", &[], &add_body(&arn(5)))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let reasons = d
        .eventually(Duration::from_secs(10), "/readyz to say 503", || async {
            let r = request(s.http, "GET", "/readyz", &[], "").await?;
            (r.status == 503).then_some(r.body)
        })
        .await;
    assert!(reasons.contains("durable-execution API"), "{reasons}");
    d.kill9();
}

// ---------------------------------------------------------------------------------------------
// Two daemons pointed at one checkpoint directory.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_checkpoint_directory_is_refused() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    let first = Daemon::start(&s, 1).await;
    // Its own listeners, the same directory: a copy of the deployment with the volume shared.
    let http = format!("127.0.0.1:{}", crate::common::http::free_port());
    let api = format!("127.0.0.1:{}", crate::common::http::free_port());
    let mut second = Daemon::spawn_with_env(
        &s,
        2,
        LogFormat::Text,
        &[
            ("DURABLE_EXPORTER__HTTP__LISTEN", &http),
            ("DURABLE_EXPORTER__API__LISTEN", &api),
        ],
    );
    let status = exit_of(&mut second, Duration::from_secs(15)).await;
    assert!(!status.success(), "{status:?}");
    let err = second.logs();
    assert!(err.contains("in use by another durable-exporter"), "{err}");
    assert!(
        err.contains(&s.checkpoints().display().to_string()),
        "{err}"
    );
    // The first one goes on, and once it stopped the directory is free again.
    let r = request(s.http, "GET", "/healthz", &[], "").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(first.terminate(Duration::from_secs(25)).await.success());
    let again = Daemon::start(&s, 3).await;
    assert!(again.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// A checkpoint of a newer version (a rollback).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_a_newer_version_stops_the_start_unless_reread() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    let dir = s.checkpoints().join("executions");
    std::fs::create_dir_all(&dir).unwrap();
    let future = dir.join("00112233445566778899aabbccddeeff.json");
    let text = format!(
        "{{\"version\":\"2\",\"arn\":\"{}\",\"position\":{{\"v2\":7}}}}",
        execs[0].0
    );
    std::fs::write(&future, &text).unwrap();

    let mut d = Daemon::spawn(&s, 1, LogFormat::Text);
    let status = exit_of(&mut d, Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(2), "{}", d.logs());
    let err = d.logs();
    assert!(err.contains(&future.display().to_string()), "{err}");
    assert!(err.contains("format 2"), "{err}");
    assert!(
        err.contains("checkpoint.on_newer_version"),
        "says what to do: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&future).unwrap(),
        text,
        "a refused start changes nothing"
    );
    assert!(receiver.requests().is_empty());

    write_config(
        &s,
        &fake,
        receiver.addr,
        &arns(&execs),
        "checkpoint:\n  on_newer_version: reread\n",
    );
    let d = Daemon::start(&s, 2).await;
    let r = request(s.http, "GET", "/healthz", &[], "").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!future.exists(), "the newer file is moved aside");
    let aside: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("00112233445566778899aabbccddeeff.json.corrupt-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "{:?}",
        std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), text);
    // Its execution is read from the start.
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, _) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// SIGHUP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_what_it_can_and_survives_what_it_cannot() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 5);
    add_all(&fake, &execs);
    let s = setup(&fake, receiver.addr, &arns(&execs[..1]), "");
    let mut d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the first to end",
        all_finished(&execs[..1]),
    )
    .await;
    assert!(
        !d.logs().contains("DEBUG"),
        "info is the default level:\n{}",
        d.logs()
    );
    let first_success = metric(
        s.http,
        "durable_exporter_config_last_reload_success_timestamp_seconds",
    )
    .await;

    // A new execution and a debug log.
    write_config(
        &s,
        &fake,
        receiver.addr,
        &arns(&execs),
        "log:\n  level: debug\n",
    );
    d.signal("-HUP");
    let v = running_until(
        &mut d,
        s.api,
        "the new one to be tracked and end",
        all_finished(&execs),
    )
    .await;
    assert_eq!(v[&execs[1].0].source, "config");
    assert_eq!(
        metric(s.http, "durable_exporter_config_last_reload_successful").await,
        1.0
    );
    assert!(
        metric(
            s.http,
            "durable_exporter_config_last_reload_success_timestamp_seconds"
        )
        .await
            >= first_success
    );
    d.eventually(
        Duration::from_secs(10),
        "debug lines after the reload",
        || {
            let logs = d.logs();
            async move {
                let (_, after) = logs.split_once("SIGHUP: reloading the configuration")?;
                after.lines().any(|l| l.contains("DEBUG")).then_some(())
            }
        },
    )
    .await;
    let (got, _) = received(&receiver);
    assert_exact(&expected(&execs), &got);

    // A config that does not parse: the running one stays.
    std::fs::write(&s.config, "poll:\n  interval: [5s\n").unwrap();
    d.signal("-HUP");
    d.eventually(
        Duration::from_secs(10),
        "the failed reload to show",
        || async {
            let m = scrape(s.http).await;
            (series(&m, "durable_exporter_config_last_reload_successful") == Some(0.0))
                .then_some(())
        },
    )
    .await;
    assert!(
        alive(&mut d),
        "a bad config ended the process:\n{}",
        d.logs()
    );
    let logs = d.logs();
    assert!(
        logs.lines().any(|l| l.contains("ERROR")
            && l.contains("config reload failed")
            && l.contains("config.yaml")),
        "{logs}"
    );
    let v = views(s.api).await.expect("still serving");
    assert_eq!(v.len(), 2, "{v:?}");

    // A key that needs a restart: said so, not applied.
    let other = crate::common::otlp::grpc().await;
    write_config(
        &s,
        &fake,
        other.addr,
        &arns(&execs),
        "log:\n  level: debug\n",
    );
    d.signal("-HUP");
    d.eventually(Duration::from_secs(10), "the restart warning", || {
        let logs = d.logs();
        async move {
            logs.lines()
                .any(|l| l.contains("WARN") && l.contains("otlp.endpoint") && l.contains("restart"))
                .then_some(())
        }
    })
    .await;
    assert!(alive(&mut d));
    assert_eq!(
        metric(s.http, "durable_exporter_config_last_reload_successful").await,
        1.0
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// A throttling storm.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_starves_no_history_read_and_keeps_the_budget() {
    // Under this storm the rate sits near its floor (a tenth of the budget): the budget and the
    // number of executions set the test's length.
    const RATE: usize = 200;
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(60, 10);
    add_all(&fake, &execs);
    fake.set_faults(Faults {
        seed: 2024,
        throttle_probability: 0.3,
        server_error_probability: 0.1,
        retry_after_seconds: Some(1),
        ..Faults::default()
    });
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        // max_concurrency: the default (the harness's 4 is for smaller tests).
        &format!("aws:\n  max_requests_per_second: {RATE}\n  max_concurrency: 8\n"),
    );
    let d = Daemon::start(&s, 1).await;
    let started = Instant::now();
    wait_for(
        &d,
        s.api,
        Duration::from_secs(60),
        "every execution read",
        |v| {
            execs
                .iter()
                .all(|(a, _)| v.get(a).is_some_and(|x| x.read > 0))
        },
    )
    .await;
    let all_read = started.elapsed();
    wait_for(
        &d,
        s.api,
        Duration::from_secs(60),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let done = started.elapsed();
    let throttled = fake.count_status(durable_exporter::sim::scripted::GET_HISTORY, 429)
        + fake.count_status(durable_exporter::sim::scripted::GET_EXECUTION, 429);
    assert!(throttled > 0, "the storm happened");
    let peak = fake.max_requests_in_window(Duration::from_secs(1));
    assert!(peak <= RATE, "{peak} requests in one second, budget {RATE}");
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    eprintln!(
        "throttling storm: all read after {all_read:?}, all exported after {done:?}, {} requests, {throttled} throttled, peak {peak}/s",
        fake.requests().len()
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}
