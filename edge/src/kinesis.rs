//! Kinesis `PutRecords` over the Workers `fetch`, signed with SigV4 (`aws-sigv4`).
//!
//! Only what the forwarder needs: one call, and the per-record outcome Kinesis reports. The
//! credentials come from the Worker's secrets; the endpoint defaults to the region's.

use crate::config;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use tally_model::record::Record;
use worker::{Date, Env, Error, Fetch, Headers, Method, Request, RequestInit, Result};

/// At most this many records per `PutRecords` call (a Kinesis limit).
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// At most this many bytes of data and partition keys per call (Kinesis allows 5 MiB).
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// Where and as whom to put records.
pub struct Kinesis {
    endpoint: String,
    region: String,
    stream: String,
    credentials: Credentials,
}

/// The response of one call: per record, None if stored, else the error code Kinesis gave.
pub type PerRecord = Vec<Option<String>>;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsResponse {
    records: Vec<PutRecordsEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsEntry {
    sequence_number: Option<String>,
    error_code: Option<String>,
}

impl Kinesis {
    /// From the vars `AWS_REGION`, `KINESIS_STREAM`, optional `KINESIS_ENDPOINT`, and the
    /// secrets `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (optional `AWS_SESSION_TOKEN`).
    pub fn from_env(env: &Env) -> Result<Kinesis> {
        let region = config::string(env, "AWS_REGION")?;
        let endpoint = config::string(env, "KINESIS_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("https://kinesis.{region}.amazonaws.com"));
        let endpoint = format!("{}/", endpoint.trim_end_matches('/'));
        let secret = |name: &str| {
            env.secret(name).map(|s| s.to_string()).map_err(|_| Error::RustError(format!("secret {name} is not set")))
        };
        let session_token = secret("AWS_SESSION_TOKEN").ok().filter(|t| !t.is_empty());
        let credentials = Credentials::new(
            secret("AWS_ACCESS_KEY_ID")?,
            secret("AWS_SECRET_ACCESS_KEY")?,
            session_token,
            None,
            "worker",
        );
        Ok(Kinesis { endpoint, region, stream: config::string(env, "KINESIS_STREAM")?, credentials })
    }

    /// One `PutRecords` call. Err: the call as a whole failed (network, throttling, 5xx).
    pub async fn put_records(&self, records: &[&Record]) -> Result<PerRecord> {
        let engine = base64::engine::general_purpose::STANDARD;
        let entries: Vec<_> = records
            .iter()
            .map(|r| json!({ "Data": engine.encode(&r.data), "PartitionKey": r.partition_key }))
            .collect();
        let body = json!({ "StreamName": self.stream, "Records": entries }).to_string();
        let headers = self.signed_headers(&body)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        let mut response = Fetch::Request(Request::new_with_init(&self.endpoint, &init)?).send().await?;
        let status = response.status_code();
        let text = response.text().await?;
        if status != 200 {
            return Err(Error::RustError(format!("PutRecords answered {status}: {}", truncate(&text))));
        }
        let parsed: PutRecordsResponse =
            serde_json::from_str(&text).map_err(|e| Error::RustError(format!("PutRecords response: {e}")))?;
        if parsed.records.len() != records.len() {
            return Err(Error::RustError("PutRecords answered for a different number of records".into()));
        }
        Ok(parsed
            .records
            .into_iter()
            .map(|r| match r.sequence_number {
                Some(_) => None,
                None => Some(r.error_code.unwrap_or_else(|| "Unknown".into())),
            })
            .collect())
    }

    fn signed_headers(&self, body: &str) -> Result<Headers> {
        let host = self.endpoint.split("://").nth(1).unwrap_or(&self.endpoint).split('/').next().unwrap_or_default();
        let unsigned = [
            ("host", host),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.PutRecords"),
        ];
        let identity = self.credentials.clone().into();
        // SystemTime::now() panics on wasm32: the time comes from the runtime's clock.
        let time = UNIX_EPOCH + Duration::from_millis(Date::now().as_millis());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kinesis")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::RustError(format!("signing parameters: {e}")))?
            .into();
        let signable =
            SignableRequest::new("POST", &self.endpoint, unsigned.into_iter(), SignableBody::Bytes(body.as_bytes()))
                .map_err(|e| Error::RustError(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Error::RustError(format!("signing: {e}")))?.into_parts();
        let headers = Headers::new();
        for (name, value) in unsigned.into_iter().chain(instructions.headers()) {
            if name != "host" {
                headers.set(name, value)?;
            }
        }
        Ok(headers)
    }
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(300).map_or(text, |(i, _)| &text[..i])
}
