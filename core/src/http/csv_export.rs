//! CSV answers of `POST /api/v2/query` (`Accept: text/csv` or `?format=csv`): one header line
//! of the query's dimensions and metrics as it names them, then one line per row of the page.
//! A revenue metric is its `value` (empty where a row has none, or several currencies). The
//! body is streamed, 1,000 lines at a time, from the (cached) answer's rows: the
//! whole CSV text is never held at once.

use super::error::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Whether the request asks for CSV.
pub fn wanted(headers: &HeaderMap, format: Option<&str>) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    format == Some("csv") || accept.split(',').any(|t| t.trim().starts_with("text/csv"))
}

/// Lines of CSV encoded per chunk of a streamed body.
const ROWS_PER_CHUNK: usize = 1_000;

/// The page's rows (the `results` JSON) as a streamed CSV body under `columns`.
pub fn response(columns: &[String], results: &[u8]) -> Result<Response, ApiError> {
    let rows: Vec<Value> = serde_json::from_slice(results).map_err(|e| ApiError::Internal(e.into()))?;
    let header = lines(std::iter::once(columns.iter().map(String::clone).collect::<Vec<_>>()))?;
    let mut rows = rows.into_iter();
    let chunks = std::iter::once(Ok(header)).chain(std::iter::from_fn(move || {
        let chunk: Vec<Vec<String>> = rows.by_ref().take(ROWS_PER_CHUNK).map(|row| row_cells(&row)).collect();
        (!chunk.is_empty()).then(|| lines(chunk.into_iter()))
    }));
    let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
    let csv = HeaderValue::from_static("text/csv; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, csv)], body).into_response())
}

/// A row's dimensions then metrics, as cells.
fn row_cells(row: &Value) -> Vec<String> {
    let cells =
        row["dimensions"].as_array().into_iter().flatten().chain(row["metrics"].as_array().into_iter().flatten());
    cells.map(cell).collect()
}

/// Records as CSV lines.
fn lines(records: impl Iterator<Item = Vec<String>>) -> Result<Bytes, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for record in records {
        out.write_record(&record).map_err(|e| ApiError::Internal(e.into()))?;
    }
    let text = out.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("writing CSV: {e}")))?;
    Ok(Bytes::from(text))
}

/// A value as a CSV cell: text as it is, a revenue object as its `value` (empty for none or
/// several currencies), `null` empty.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(revenue) => {
            revenue.get("value").filter(|v| !v.is_null()).map_or_else(String::new, Value::to_string)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_become_quoted_csv_lines() {
        let results = json!([
            {"dimensions": ["/a,b", "DE"], "metrics": [3, 1.5, {"value": 12.5, "currency": "EUR"}]},
            {"dimensions": ["/\"q\"", "(not set)"], "metrics": [1, 0.0, null]}
        ]);
        let columns: Vec<String> =
            ["event:page", "visit:country", "visitors", "views_per_visit", "total_revenue"].map(str::to_owned).to_vec();
        let response = response(&columns, results.to_string().as_bytes()).expect("csv");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        let body = futures_body(response);
        assert_eq!(
            body,
            "event:page,visit:country,visitors,views_per_visit,total_revenue\n\"/a,b\",DE,3,1.5,12.5\n\"/\"\"q\"\"\",(not set),1,0.0,\n"
        );
    }

    #[test]
    fn a_long_answer_streams_in_chunks_with_every_line() {
        let rows: Vec<Value> =
            (0..2 * ROWS_PER_CHUNK + 7).map(|i| json!({"dimensions": [format!("/p{i}")], "metrics": [i]})).collect();
        let columns: Vec<String> = ["event:page", "visitors"].map(str::to_owned).to_vec();
        let body = futures_body(response(&columns, Value::Array(rows).to_string().as_bytes()).expect("csv"));
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 2 * ROWS_PER_CHUNK + 8);
        assert_eq!((lines[0], lines[1], lines[lines.len() - 1]), ("event:page,visitors", "/p0,0", "/p2006,2006"));
    }

    fn futures_body(response: Response) -> String {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .expect("a body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn accept_or_format_ask_for_csv() {
        let mut headers = HeaderMap::new();
        assert!(!wanted(&headers, None));
        assert!(wanted(&headers, Some("csv")));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/csv, application/json;q=0.5"));
        assert!(wanted(&headers, None));
    }
}
