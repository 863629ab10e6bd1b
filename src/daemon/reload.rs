//! SIGHUP reloads the config file, as Prometheus does: what can change at run time takes
//! effect (tracking, polling, the listeners' web configs and token, the log filter); a changed
//! key that needs a restart is logged as such; a config that does not load, or whose files
//! do not, keeps the running one and says why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::coordinator::Command;
use crate::config::Config;
use crate::listener::Access;

/// Sets the log filter of the running process (`Err`: the filter could not be applied).
pub type LogSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Keys (or sections, ending with `.`) that take effect without a restart.
const RELOADABLE: &[&str] = &[
    "track.",
    "poll.",
    "http.web_config_file",
    "api.web_config_file",
    "api.token_file",
    "log.",
];

/// Keys inside a reloadable section that still need a restart: the status-event intake is a
/// task started with its queue.
const RESTART_ONLY: &[&str] = &[
    "track.status_events.queue_url",
    "track.status_events.endpoint_url",
];

fn reloadable(key: &str) -> bool {
    !RESTART_ONLY.contains(&key)
        && RELOADABLE.iter().any(|r| {
            if r.ends_with('.') {
                key.starts_with(r)
            } else {
                key == *r
            }
        })
}

/// Every key with its value, flattened (`otlp.tls.ca_file` → value).
fn flatten(c: &Config) -> BTreeMap<String, serde_json::Value> {
    fn walk(prefix: String, v: serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(key, v, out);
                }
            }
            other => {
                out.insert(prefix, other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        String::new(),
        serde_json::to_value(c).expect("the config serializes"),
        &mut out,
    );
    out
}

/// The keys whose values differ.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `running` with what of `loaded` applies without a restart.
pub fn applied(running: &Config, loaded: &Config) -> Config {
    let mut c = running.clone();
    c.track = loaded.track.clone();
    c.track.status_events.queue_url = running.track.status_events.queue_url.clone();
    c.track.status_events.endpoint_url = running.track.status_events.endpoint_url.clone();
    c.poll = loaded.poll.clone();
    c.http.web_config_file = loaded.http.web_config_file.clone();
    c.api.web_config_file = loaded.api.web_config_file.clone();
    c.api.token_file = loaded.api.token_file.clone();
    c.log = loaded.log.clone();
    c
}

/// What a reload changes.
pub struct Reloader {
    pub path: Option<PathBuf>,
    /// The configuration as last loaded (the file's, not the applied one).
    pub loaded: Config,
    /// The configuration in effect.
    pub running: Arc<Config>,
    pub metrics_access: watch::Sender<Access>,
    pub api_access: watch::Sender<Access>,
    pub commands: mpsc::Sender<Command>,
    pub log: Option<LogSetter>,
    pub metrics: super::metrics::ExporterMetrics,
}

impl Reloader {
    /// Loads the file again and applies what can be; the reload metrics say how it went.
    pub async fn reload(&mut self) {
        match self.try_reload().await {
            Ok(()) => {
                self.metrics.reload_successful.set(1);
                self.metrics
                    .reload_success_time
                    .set(crate::clock::now_ms() as f64 / 1000.0);
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                tracing::error!(error = %e, "config reload failed; the running configuration stays");
            }
        }
    }

    async fn try_reload(&mut self) -> Result<(), String> {
        let loaded = Config::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        // Checked before anything is applied: all or nothing.
        let (metrics_access, api_access) =
            super::listener_access(&loaded).map_err(|e| e.to_string())?;
        let changed = changed_keys(&self.loaded, &loaded);
        let (now, later): (Vec<&String>, Vec<&String>) =
            changed.iter().partition(|k| reloadable(k));
        if !later.is_empty() {
            tracing::warn!(
                keys = ?later,
                "changed in the config file; these take effect after a restart"
            );
        }
        let running = Arc::new(applied(&self.running, &loaded));
        if let Some(set) = &self.log {
            if std::env::var_os("RUST_LOG").is_some() {
                if self.running.log != running.log {
                    tracing::warn!("RUST_LOG is set: log.level does not apply");
                }
            } else if let Err(e) = set(&running.log.filter()) {
                return Err(format!("log.level: {e}"));
            }
        }
        // Read again even when their paths did not change: renewed certificates, a rotated
        // token.
        self.metrics_access.send_replace(metrics_access);
        self.api_access.send_replace(api_access);
        self.commands
            .send(Command::Reconfigure {
                config: running.clone(),
            })
            .await
            .map_err(|_| "shutting down".to_owned())?;
        tracing::info!(
            applied = ?now,
            path = ?self.path,
            "config reloaded"
        );
        self.running = running;
        self.loaded = loaded;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_apply_at_once_and_keys_that_wait() {
        let old = Config::default();
        let mut new = Config::default();
        new.poll.interval = std::time::Duration::from_secs(9);
        new.otlp.endpoint = "http://other:4317".into();
        new.track.max_executions = 7;
        assert_eq!(
            changed_keys(&old, &new),
            ["otlp.endpoint", "poll.interval", "track.max_executions"]
        );
        let a = applied(&old, &new);
        assert_eq!(a.poll.interval, std::time::Duration::from_secs(9));
        assert_eq!(a.track.max_executions, 7);
        // The endpoint waits for a restart.
        assert_eq!(a.otlp.endpoint, old.otlp.endpoint);
        assert!(reloadable("track.functions"));
        assert!(reloadable("api.token_file"));
        assert!(!reloadable("api.listen"));
        assert!(!reloadable("otlp.endpoint"));
        // The status-event filters apply at once; the queue waits for a restart.
        new.track.status_events.functions = vec!["orders*".into()];
        new.track.status_events.queue_url = Some("https://sqs.eu-west-1.amazonaws.com/1/q".into());
        let a = applied(&old, &new);
        assert_eq!(a.track.status_events.functions, ["orders*"]);
        assert_eq!(a.track.status_events.queue_url, None);
        assert!(reloadable("track.status_events.functions"));
        assert!(!reloadable("track.status_events.queue_url"));
    }
}
