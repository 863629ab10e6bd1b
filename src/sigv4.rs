//! AWS Signature Version 4 for the OTLP client's HTTP requests: what AWS X-Ray's OTLP endpoint
//! (`https://xray.REGION.amazonaws.com/v1/traces`, signing name `xray`) asks for. Shell code:
//! [`crate::otlp::OtlpClient`] asks a [`Signer`] for credentials before each request and has it
//! sign the request it is about to send (method, URL, headers and the body's SHA-256, the
//! body as sent: compressed when gzip is on).
//!
//! Credentials come from a provider (the AWS SDK's default chain, the one the Lambda API
//! calls use) and are kept until shortly before they expire, then fetched again: never once
//! for the process's life. A provider that fails is an export failure like a transport error:
//! nothing is sent, the spans are sent again later.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

/// The signing name and region requests are signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Target {
    /// `xray` for X-Ray.
    pub service: String,
    pub region: String,
}

/// Credentials are fetched again once they expire within this.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (static keys) are fetched again after this: the provider may
/// read a file that changed.
const REFRESH_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// Credentials fetched this recently are used even when they expire within
/// [`REFRESH_BEFORE_EXPIRY`] (short-lived ones would be fetched for every request otherwise),
/// unless they have expired.
const MIN_REUSE: Duration = Duration::from_secs(10);

/// Whether `name` can be an AWS region or signing name (`us-east-1`, `xray`): lowercase
/// letters, digits and hyphens, at most 64, not starting or ending with a hyphen. The region
/// goes into a host name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an AWS name; expected lowercase letters, digits and hyphens, e.g. us-east-1 or xray"
        ))
    }
}

struct Cached {
    credentials: Credentials,
    fetched: SystemTime,
}

impl Cached {
    fn usable_at(&self, now: SystemTime) -> bool {
        let age = now.duration_since(self.fetched).unwrap_or(Duration::ZERO);
        match self.credentials.expiry() {
            Some(expiry) => match expiry.duration_since(now) {
                Ok(left) => left > REFRESH_BEFORE_EXPIRY || age < MIN_REUSE,
                Err(_) => false,
            },
            None => age < REFRESH_WITHOUT_EXPIRY,
        }
    }
}

/// Signs requests for one service and region with credentials from one provider, kept
/// between requests while they are fresh.
pub struct Signer {
    target: SigV4Target,
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(target: SigV4Target, provider: SharedCredentialsProvider) -> Self {
        Signer {
            target,
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub fn target(&self) -> &SigV4Target {
        &self.target
    }

    /// Credentials for a request at `now`: the kept ones while fresh, else the provider's (one
    /// fetch at a time). The error says why the provider gave none, with its causes.
    pub async fn credentials(&self, now: SystemTime) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.usable_at(now)) {
            return Ok(c.credentials.clone());
        }
        match self.provider.provide_credentials().await {
            Ok(credentials) => {
                *cached = Some(Cached {
                    credentials: credentials.clone(),
                    fetched: now,
                });
                Ok(credentials)
            }
            Err(e) => {
                // Expired credentials are of no use; unexpired ones are not refetched until
                // the provider answers, but are not used past their expiry either.
                if cached.as_ref().is_some_and(|c| !c.usable_at(now)) {
                    *cached = None;
                }
                Err(format!(
                    "no AWS credentials from the default chain: {}",
                    chain(&e)
                ))
            }
        }
    }

    /// Signs a request of `method` to `uri` (the full URL, as sent) with `headers` and `body`
    /// (the bytes sent) at `time`: adds `x-amz-date`, `x-amz-security-token` (with session
    /// credentials) and `authorization` to `headers`. Every header given is signed except
    /// those proxies change (`user-agent`, ...); `host` comes from `uri`.
    pub fn sign(
        &self,
        credentials: &Credentials,
        time: SystemTime,
        method: &str,
        uri: &str,
        headers: &mut http::HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let identity = credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.target.region)
            .name(&self.target.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let mut pairs = Vec::with_capacity(headers.len());
        for (name, value) in headers.iter() {
            let value = value
                .to_str()
                .map_err(|_| format!("header {name} is not text and cannot be signed"))?;
            pairs.push((name.as_str(), value));
        }
        let signable =
            SignableRequest::new(method, uri, pairs.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| format!("cannot sign the request: {}", chain(&e)))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("cannot sign the request: {}", chain(&e)))?
            .into_parts();
        let (added, _query) = instructions.into_parts();
        for h in added {
            let name = http::HeaderName::from_bytes(h.name().as_bytes())
                .map_err(|_| format!("the signer made an invalid header name {:?}", h.name()))?;
            let mut value = http::HeaderValue::from_str(h.value())
                .map_err(|_| format!("the signer made an invalid value for header {name}"))?;
            value.set_sensitive(h.sensitive() || name == http::header::AUTHORIZATION);
            headers.insert(name, value);
        }
        Ok(())
    }
}

/// An error and its sources, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    const SUITE_TIME: u64 = 1_440_938_160;

    fn suite_signer(service: &str) -> Signer {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        Signer::new(
            SigV4Target {
                service: service.into(),
                region: "us-east-1".into(),
            },
            SharedCredentialsProvider::new(creds),
        )
    }

    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn header(h: &http::HeaderMap, name: &str) -> String {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// AWS's published test vector `get-vanilla`: `GET /` to example.amazonaws.com.
    #[test]
    fn signs_the_get_vanilla_test_vector() {
        let s = suite_signer("service");
        let mut h = http::HeaderMap::new();
        s.sign(
            &suite_credentials(None),
            at(SUITE_TIME),
            "GET",
            "https://example.amazonaws.com/",
            &mut h,
            b"",
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&h, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(h.get("authorization").unwrap().is_sensitive());
        assert!(h.get("x-amz-security-token").is_none());
    }

    fn signed_post(token: Option<&str>, extra: &[(&str, &str)], body: &[u8]) -> http::HeaderMap {
        let s = suite_signer("xray");
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/x-protobuf".parse().unwrap());
        h.insert("user-agent", "durable-exporter/test".parse().unwrap());
        for (n, v) in extra {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        s.sign(
            &suite_credentials(token),
            at(SUITE_TIME),
            "POST",
            "https://xray.us-east-1.amazonaws.com/v1/traces",
            &mut h,
            body,
        )
        .unwrap();
        h
    }

    fn signature(h: &http::HeaderMap) -> String {
        let auth = header(h, "authorization");
        auth.rsplit_once("Signature=").unwrap().1.to_owned()
    }

    #[test]
    fn the_signature_covers_the_body_the_headers_and_the_session_token() {
        let plain = signed_post(None, &[], b"spans");
        let auth = header(&plain, "authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        // The same inputs sign the same; any change of body, encoding or token changes it.
        assert_eq!(
            signature(&plain),
            signature(&signed_post(None, &[], b"spans"))
        );
        assert_ne!(
            signature(&plain),
            signature(&signed_post(None, &[], b"spanz"))
        );
        let gzipped = signed_post(None, &[("content-encoding", "gzip")], b"spans");
        assert!(
            header(&gzipped, "authorization")
                .contains("SignedHeaders=content-encoding;content-type;host;x-amz-date,"),
            "{}",
            header(&gzipped, "authorization")
        );
        assert_ne!(signature(&plain), signature(&gzipped));

        let session = signed_post(Some("the-token"), &[], b"spans");
        assert_eq!(header(&session, "x-amz-security-token"), "the-token");
        assert!(
            header(&session, "authorization")
                .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{}",
            header(&session, "authorization")
        );
        assert_ne!(signature(&plain), signature(&session));
        // No payload header: X-Ray does not ask for one (the hash is in the signature).
        assert!(plain.get("x-amz-content-sha256").is_none());
    }

    /// Counts fetches; hands out credentials expiring `lifetime` after `now()` (the test's
    /// clock), or fails while `failing`.
    #[derive(Debug)]
    struct Counting {
        fetches: Arc<AtomicUsize>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        now: Arc<std::sync::atomic::AtomicU64>,
        lifetime: Option<Duration>,
    }

    impl aws_credential_types::provider::ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
        where
            Self: 'a,
        {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return CredentialsFuture::ready(Err(CredentialsError::provider_error(
                    "the metadata service is unreachable",
                )));
            }
            let now = at(self.now.load(Ordering::SeqCst));
            CredentialsFuture::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                Some("token".into()),
                self.lifetime.map(|l| now + l),
                "counting",
            )))
        }
    }

    struct Harness {
        signer: Signer,
        fetches: Arc<AtomicUsize>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        now: Arc<std::sync::atomic::AtomicU64>,
    }

    impl Harness {
        fn new(lifetime: Option<Duration>) -> Harness {
            let fetches = Arc::new(AtomicUsize::new(0));
            let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000));
            let provider = Counting {
                fetches: fetches.clone(),
                failing: failing.clone(),
                now: now.clone(),
                lifetime,
            };
            Harness {
                signer: Signer::new(
                    SigV4Target {
                        service: "xray".into(),
                        region: "eu-west-1".into(),
                    },
                    SharedCredentialsProvider::new(provider),
                ),
                fetches,
                failing,
                now,
            }
        }

        /// The access key id handed out at `t`.
        async fn key_at(&self, t: u64) -> Result<String, String> {
            self.now.store(t, Ordering::SeqCst);
            self.signer
                .credentials(at(t))
                .await
                .map(|c| c.access_key_id().to_owned())
        }
    }

    #[tokio::test]
    async fn credentials_are_kept_until_shortly_before_they_expire() {
        let h = Harness::new(Some(Duration::from_secs(3600)));
        let t0 = 1_000_000;
        assert_eq!(h.key_at(t0).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 60).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 3600 - 301).await.unwrap(), "AKID0");
        assert_eq!(h.fetches.load(Ordering::SeqCst), 1);
        // Within five minutes of the expiry: fetched again.
        assert_eq!(h.key_at(t0 + 3600 - 299).await.unwrap(), "AKID1");
        assert_eq!(h.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_credentials_are_reused_briefly_but_never_past_expiry() {
        let h = Harness::new(Some(Duration::from_secs(60)));
        let t0 = 1_000_000;
        assert_eq!(h.key_at(t0).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 5).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 11).await.unwrap(), "AKID1");
        // AKID1 expires at t0 + 71.
        assert_eq!(h.key_at(t0 + 80).await.unwrap(), "AKID2");
    }

    #[tokio::test]
    async fn static_credentials_are_fetched_again_now_and_then() {
        let h = Harness::new(None);
        let t0 = 1_000_000;
        assert_eq!(h.key_at(t0).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 14 * 60).await.unwrap(), "AKID0");
        assert_eq!(h.key_at(t0 + 16 * 60).await.unwrap(), "AKID1");
    }

    #[tokio::test]
    async fn a_failing_provider_is_an_error_each_time_and_asked_again() {
        let h = Harness::new(Some(Duration::from_secs(600)));
        let t0 = 1_000_000;
        h.failing.store(true, Ordering::SeqCst);
        let e = h.key_at(t0).await.unwrap_err();
        assert!(
            e.contains("no AWS credentials") && e.contains("metadata service is unreachable"),
            "{e}"
        );
        assert!(h.key_at(t0 + 1).await.is_err());
        assert_eq!(h.fetches.load(Ordering::SeqCst), 2);
        h.failing.store(false, Ordering::SeqCst);
        assert_eq!(h.key_at(t0 + 2).await.unwrap(), "AKID2");
        // Expired, and the provider fails: an error, not the expired credentials.
        h.failing.store(true, Ordering::SeqCst);
        assert!(h.key_at(t0 + 2 + 601).await.is_err());
    }

    #[test]
    fn names() {
        for ok in ["us-east-1", "xray", "cn-north-1", "us-gov-west-1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "US-EAST-1",
            "us east 1",
            "-x",
            "x-",
            "a.b",
            "evil.com/x",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("not an AWS name"), "{bad}: {e}");
        }
    }
}
