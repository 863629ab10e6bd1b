//! moto's server: a real SQS on 127.0.0.1 for the status-event tests (its venv:
//! `bash tests/aws-local/setup.sh`, which .ci/run calls).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::free_port;
use super::{missing, root};

/// A running moto server, stopped (by PID) when dropped.
pub struct Moto {
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts it and waits until it answers; None when the venv is missing (after
    /// [`missing`], which fails on CI).
    pub fn start() -> Option<Moto> {
        let venv = std::env::var_os("DURABLE_AWS_LOCAL_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root().join("target/aws-local-venv"));
        let bin = venv.join("bin/moto_server");
        if !bin.is_file() {
            missing("moto's server", "bash tests/aws-local/setup.sh");
            return None;
        }
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while super::http::get_blocking(&addr, "/moto-api/").is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server never answered on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// An SQS client for it (moto takes any credentials), built as the daemon builds its own.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        let shared = durable_exporter::aws::sdk_config(
            Some("us-east-1"),
            Duration::from_secs(30),
            Some(aws_sdk_lambda::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )),
        )
        .await;
        durable_exporter::aws::sqs_client(&shared, Some(&self.url))
    }
}
