//! The AWS SDK's shared configuration for every client of the shell (Lambda, SQS): one
//! credential chain, region, HTTP stack and timeouts.

use std::time::Duration;

use aws_smithy_http_client::tls;

/// What every AWS client shares: the region (us-east-1 when neither `aws.region`
/// nor the environment gives one), the default credential chain (or `credentials`), rustls,
/// and the timeouts.
pub async fn sdk_config(
    region: Option<&str>,
    timeout: Duration,
    credentials: Option<aws_sdk_lambda::config::Credentials>,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_owned()));
    }
    if let Some(c) = credentials {
        loader = loader.credentials_provider(c);
    }
    let shared = loader.load().await;
    if shared.region().is_some() {
        return shared;
    }
    tracing::warn!("no AWS region from aws.region or the environment: using us-east-1");
    shared
        .into_builder()
        .region(aws_config::Region::new("us-east-1"))
        .build()
}

/// An SQS client on `shared`, at `endpoint_url` when given (a local SQS, a VPC endpoint).
pub fn sqs_client(
    shared: &aws_config::SdkConfig,
    endpoint_url: Option<&str>,
) -> aws_sdk_sqs::Client {
    let mut conf = aws_sdk_sqs::config::Builder::from(shared);
    if let Some(e) = endpoint_url {
        conf = conf.endpoint_url(e);
    }
    aws_sdk_sqs::Client::from_conf(conf.build())
}
