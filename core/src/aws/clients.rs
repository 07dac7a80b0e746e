//! AWS SDK clients from Tally's settings: a region, optional endpoint overrides (for the
//! loopback stand-ins), and the default credential chain or fixed stand-in credentials.

use aws_config::{BehaviorVersion, Region};

/// Endpoint overrides; `None` uses the region's AWS endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Kinesis endpoint URL, e.g. kinesalite's `http://127.0.0.1:4567`.
    pub kinesis: Option<String>,
    /// DynamoDB endpoint URL, e.g. dynoxide's.
    pub dynamodb: Option<String>,
    /// S3 endpoint URL, e.g. a moto server's (addressed path-style).
    pub s3: Option<String>,
}

/// How to reach AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint overrides.
    pub endpoints: Endpoints,
    /// Use fixed dummy credentials (for stand-ins, which accept any) instead of the default
    /// credential chain.
    pub static_credentials: bool,
}

async fn shared_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(settings.region.clone()));
    if settings.static_credentials {
        let credentials = aws_sdk_kinesis::config::Credentials::new("stand-in", "stand-in", None, None, "tally");
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// A Kinesis client.
pub async fn kinesis(settings: &AwsSettings) -> aws_sdk_kinesis::Client {
    let config = shared_config(settings).await;
    let mut builder = aws_sdk_kinesis::config::Builder::from(&config);
    if let Some(url) = &settings.endpoints.kinesis {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_kinesis::Client::from_conf(builder.build())
}

/// A DynamoDB client.
pub async fn dynamodb(settings: &AwsSettings) -> aws_sdk_dynamodb::Client {
    let config = shared_config(settings).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&config);
    if let Some(url) = &settings.endpoints.dynamodb {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// An S3 client (path-style addressing when the endpoint is overridden, as stand-ins need).
pub async fn s3(settings: &AwsSettings) -> aws_sdk_s3::Client {
    let config = shared_config(settings).await;
    let mut builder = aws_sdk_s3::config::Builder::from(&config);
    if let Some(url) = &settings.endpoints.s3 {
        builder = builder.endpoint_url(url).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}
