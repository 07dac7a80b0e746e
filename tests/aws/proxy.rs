//! A loopback proxy in front of a stand-in that counts requests by operation (`X-Amz-Target`)
//! and answers a share of chosen operations with the real throttling error instead of
//! forwarding them, or forwards them and then loses the answer (a 500 to the caller although
//! the stand-in did the work): the faults the stand-ins cannot produce themselves. It also asks
//! DynamoDB for the capacity every request consumes (`ReturnConsumedCapacity: TOTAL`, added to
//! requests that do not ask already) and sums it per operation: dynoxide sizes it as AWS bills
//! it (a write unit per KB of the larger of the item before and after, a read unit per 4 KB,
//! eventually consistent reads at half, transactions at double).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy counted.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Forwarded requests per operation.
    pub forwarded: BTreeMap<String, u64>,
    /// Throttled requests per operation.
    pub throttled: BTreeMap<String, u64>,
    /// Forwarded requests per operation whose answer was replaced by a 500.
    pub lost: BTreeMap<String, u64>,
    /// Capacity units the stand-in reported per operation (write units for writes, read units
    /// for reads).
    pub units: BTreeMap<String, f64>,
    /// Writes refused by their condition, per operation: AWS bills them too (at least a unit
    /// each), but the error carries no consumed capacity, so they are not in `units`.
    pub failed_conditions: BTreeMap<String, u64>,
    /// Capacity units and requests per purpose ([`purpose`]) and kind (`write` or `read`), as
    /// `"{purpose} {kind}"`.
    pub by_purpose: BTreeMap<String, (f64, u64)>,
}

impl Counts {
    /// Write requests forwarded.
    #[allow(dead_code, reason = "not every test binary that includes the proxy measures")]
    pub fn write_requests(&self) -> u64 {
        WRITES.iter().map(|op| self.forwarded.get(*op).copied().unwrap_or(0)).sum()
    }

    /// Write units billed: the stand-in's figures plus one per write refused by its condition.
    #[allow(dead_code, reason = "not every test binary that includes the proxy measures")]
    pub fn write_units(&self) -> f64 {
        WRITES.iter().map(|op| self.units.get(*op).copied().unwrap_or(0.0)).sum::<f64>()
            + self.failed_conditions.values().sum::<u64>() as f64
    }

    /// Read units billed.
    #[allow(dead_code, reason = "not every test binary that includes the proxy measures")]
    pub fn read_units(&self) -> f64 {
        READS.iter().map(|op| self.units.get(*op).copied().unwrap_or(0.0)).sum()
    }
}

/// DynamoDB's write operations.
const WRITES: [&str; 5] = ["UpdateItem", "PutItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"];
/// DynamoDB's read operations.
const READS: [&str; 6] = ["GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "ExecuteStatement"];

/// The request body with `ReturnConsumedCapacity: TOTAL` added (DynamoDB reads and writes that
/// do not ask for it already); other bodies unchanged.
fn asking_for_capacity(operation: &str, body: Bytes) -> Bytes {
    if !WRITES.contains(&operation) && !READS.contains(&operation) {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut fields)) if !fields.contains_key("ReturnConsumedCapacity") => {
            fields.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
            Bytes::from(serde_json::to_vec(&fields).unwrap())
        }
        _ => body,
    }
}

/// What a DynamoDB request is for, from its table and the first key it names: `lease`, `flush
/// log`, `snapshot`, `delta`, `fold`, `fold marker`, `drops`, or `other`.
pub fn purpose(body: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(body);
    let first = |name: &str| {
        let at = text.find(&format!(r#""{name}":{{"S":""#))?;
        let rest = &text[at + name.len() + 9..];
        Some(rest[..rest.find('"')?].to_owned())
    };
    if text.contains("-flushes") {
        return if first("sk").is_some_and(|sk| sk.starts_with("snap|")) { "snapshot" } else { "flush log" };
    }
    if text.contains("-leases") {
        return "lease";
    }
    match (first("pk"), first("sk")) {
        (Some(pk), Some(sk)) if pk.contains("|d|") && sk == "~fold" => "fold marker",
        (Some(pk), _) if pk.contains("|d|") => "delta",
        (Some(pk), _) if pk.contains("|s|") => "fold",
        (Some(pk), _) if pk.starts_with("d|") => "drops",
        _ => "other",
    }
}

/// The capacity units a DynamoDB answer reports (one `ConsumedCapacity` or a list of them).
fn consumed_units(answer: &[u8]) -> f64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(answer) else { return 0.0 };
    let units = |c: &serde_json::Value| c.get("CapacityUnits").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    match value.get("ConsumedCapacity") {
        Some(serde_json::Value::Array(all)) => all.iter().map(units).sum(),
        Some(one) => units(one),
        None => 0.0,
    }
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    /// Throttle one request in `every` of the operations whose name contains one of `targets`.
    every: AtomicU64,
    /// Of the forwarded requests of `targets`, lose the answer of one in `lose_every`.
    lose_every: AtomicU64,
    targets: Vec<String>,
    /// The `__type` of the throttling error, e.g. DynamoDB's
    /// `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`.
    error_type: String,
    /// Requests of `targets` seen and forwarded so far, and the counts.
    seen: Mutex<(u64, u64, Counts)>,
}

/// A running proxy; it stops with the test process.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
    /// Its base URL.
    pub url: String,
}

impl Proxy {
    /// Starts a proxy to `upstream` that throttles one in `every` requests of `targets`
    /// (`every = 0`: never). It runs on a thread and runtime of its own, so that a test blocking
    /// its own runtime cannot stall the requests of the processes under test.
    pub async fn start(upstream: &str, every: u64, targets: &[&str], error_type: &str) -> Proxy {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            every: AtomicU64::new(every),
            lose_every: AtomicU64::new(0),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            error_type: error_type.to_owned(),
            seen: Mutex::new((0, 0, Counts::default())),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let state = inner.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app).await
            })
        });
        let address = rx.recv().unwrap();
        Proxy { inner, url: format!("http://{address}") }
    }

    /// From now on, throttles one in `every` requests of its targets (0: none, 1: all).
    #[allow(dead_code, reason = "not every test binary that includes the proxy changes it")]
    pub fn set_every(&self, every: u64) {
        self.inner.every.store(every, Ordering::SeqCst);
    }

    /// From now on, forwards every request of its targets that it does not throttle, but
    /// answers one in `every` of them with a 500 instead of the stand-in's answer (0: none).
    #[allow(dead_code, reason = "not every test binary that includes the proxy changes it")]
    pub fn set_lose_every(&self, every: u64) {
        self.inner.lose_every.store(every, Ordering::SeqCst);
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.inner.seen.lock().unwrap().2.clone()
    }
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let operation = target.rsplit('.').next().unwrap_or("-").to_owned();
    let (throttle, lose) = {
        let mut seen = inner.seen.lock().unwrap();
        let targeted = inner.targets.iter().any(|t| operation.contains(t.as_str()));
        let every = inner.every.load(Ordering::SeqCst);
        let chosen = every > 0 && targeted;
        seen.0 += u64::from(chosen);
        let throttle = chosen && seen.0 % every == 0;
        let lose_every = inner.lose_every.load(Ordering::SeqCst);
        let lose = !throttle && targeted && lose_every > 0 && {
            seen.1 += 1;
            seen.1 % lose_every == 0
        };
        let counts = &mut seen.2;
        let counts = if throttle { &mut counts.throttled } else { &mut counts.forwarded };
        *counts.entry(operation.clone()).or_default() += 1;
        if lose {
            *seen.2.lost.entry(operation.clone()).or_default() += 1;
        }
        (throttle, lose)
    };
    if throttle {
        let body =
            format!(r#"{{"__type":"{}","message":"Rate exceeded (injected by the test proxy)"}}"#, inner.error_type);
        return (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.0")], body).into_response();
    }
    let url = format!("{}{}", inner.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
    let body = if target.starts_with("DynamoDB_") { asking_for_capacity(&operation, body) } else { body };
    let purpose = purpose(&body);
    let mut request = inner.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) if lose => {
            let _ = answer.bytes().await;
            let body = r#"{"__type":"InternalFailure","message":"answer lost (injected by the test proxy)"}"#;
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "application/x-amz-json-1.1")], body).into_response()
        }
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "transfer-encoding" && name != "content-length" {
                    response = response.header(name, value);
                }
            }
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            if target.starts_with("DynamoDB_") {
                let mut seen = inner.seen.lock().unwrap();
                if status.is_success() {
                    let units = consumed_units(&bytes);
                    *seen.2.units.entry(operation.clone()).or_default() += units;
                    let kind = if WRITES.contains(&operation.as_str()) { "write" } else { "read" };
                    let by = seen.2.by_purpose.entry(format!("{purpose} {kind}")).or_default();
                    (by.0, by.1) = (by.0 + units, by.1 + 1);
                } else if String::from_utf8_lossy(&bytes).contains("ConditionalCheckFailed") {
                    *seen.2.failed_conditions.entry(operation).or_default() += 1;
                }
            }
            response.body(Body::from(bytes)).unwrap()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
