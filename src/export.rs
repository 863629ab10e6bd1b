//! The shell's OTLP side: spans sent through opentelemetry-otlp's `SpanExporter`, over gRPC or
//! HTTP/protobuf. `export` returns only after the collector answered, which is what a
//! checkpoint needs.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::SpanExporter as _;

use crate::trace::proto::{to_sdk_resource, to_span_data};
use crate::trace::{Resource, Span};

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// Reads `grpc`, `http/protobuf` (and `http` as its short form).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" | "http" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }

    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// Where and how spans go.
#[derive(Debug, Clone)]
pub struct OtlpTarget {
    /// For HTTP, a base URL (`/v1/traces` is appended when it has no path) or the full URL.
    pub endpoint: String,
    pub protocol: Protocol,
    pub timeout: Duration,
    pub headers: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot build the OTLP exporter for {endpoint}: {source}")]
    Build {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("the OTLP collector at {endpoint} did not take {count} spans: {message}")]
    Export {
        endpoint: String,
        count: usize,
        message: String,
    },
}

/// The HTTP traces URL for an endpoint: a bare base gets `/v1/traces`, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` does.
pub fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// An exporter for one resource. Build it inside a Tokio runtime.
pub struct Exporter {
    inner: opentelemetry_otlp::SpanExporter,
    endpoint: String,
}

impl Exporter {
    pub fn new(target: &OtlpTarget, resource: &Resource) -> Result<Self, ExportError> {
        let (built, endpoint) = match target.protocol {
            Protocol::Grpc => {
                let mut headers = http::HeaderMap::new();
                for (k, v) in &target.headers {
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        headers.insert(k, v);
                    }
                }
                let metadata =
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(target.endpoint.clone())
                    .with_timeout(target.timeout)
                    .with_metadata(metadata);
                if target.endpoint.starts_with("https://") {
                    // TLS with the system's CA certificates (a collector behind a public CA or
                    // one the host trusts).
                    builder = builder.with_tls_config(
                        opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                            .with_enabled_roots(),
                    );
                }
                (builder.build(), target.endpoint.clone())
            }
            Protocol::HttpProtobuf => {
                let url = http_traces_url(&target.endpoint);
                (
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                        .with_endpoint(url.clone())
                        .with_timeout(target.timeout)
                        .with_headers(target.headers.clone())
                        .build(),
                    url,
                )
            }
        };
        let mut inner = built.map_err(|source| ExportError::Build {
            endpoint: endpoint.clone(),
            source,
        })?;
        inner.set_resource(&to_sdk_resource(resource));
        Ok(Exporter { inner, endpoint })
    }

    /// Sends the spans in one request and waits for the collector's answer.
    pub async fn export(&self, spans: &[Span]) -> Result<(), ExportError> {
        if spans.is_empty() {
            return Ok(());
        }
        let batch = spans.iter().map(to_span_data).collect();
        self.inner
            .export(batch)
            .await
            .map_err(|e| ExportError::Export {
                endpoint: self.endpoint.clone(),
                count: spans.len(),
                message: e.to_string(),
            })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_grpc_endpoint_gets_tls() {
        let target = OtlpTarget {
            endpoint: "https://collector.example:4317".into(),
            protocol: Protocol::Grpc,
            timeout: Duration::from_secs(1),
            headers: HashMap::new(),
        };
        let resource = Resource { attributes: vec![] };
        // Without TLS support the exporter refuses an https endpoint at build time.
        let built = Exporter::new(&target, &resource);
        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            http_traces_url("http://localhost:4318"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://localhost:4318/"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("https://c.example/otlp/v1/traces"),
            "https://c.example/otlp/v1/traces"
        );
    }
}
