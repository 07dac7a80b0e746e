//! The files a browser loads from Tally itself, embedded in the binary: the tracking script at
//! `/js/tally.js` (the edge Worker serves the same bytes), and the dashboard at `/` with its
//! files under `/dashboard/` (`core/src/http/dashboard/`, hand-written, no build step). Both are
//! public: the dashboard reads data only through the query API, with the key the user signs in
//! with.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

/// One embedded dashboard file: name, content type, bytes.
type Asset = (&'static str, &'static str, &'static [u8]);

/// Declares the dashboard's files: each name, with its bytes read from `dashboard/` at build time.
macro_rules! dashboard_files {
    ($($name:literal => $mime:literal),* $(,)?) => {
        &[$(($name, $mime, include_bytes!(concat!("dashboard/", $name)))),*]
    };
}

/// Every file of `core/src/http/dashboard/` (a test checks that the folder holds no other).
const DASHBOARD: &[Asset] = dashboard_files![
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "format.js" => "text/javascript; charset=utf-8",
];

/// The public files' routes, gzipped for clients that accept it.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(tally_model::tracker::PATH, get(tracker))
        .route("/", get(dashboard_page))
        .route("/dashboard/{file}", get(dashboard_file))
        .layer(CompressionLayer::new())
}

/// What the dashboard may load and run: only its own files and the API of its own origin, no
/// inline script, and no framing by other pages (the key it holds must not be clickjacked).
const DASHBOARD_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /js/tally.js`: the tracking script.
pub async fn tracker() -> Response {
    (
        [
            (header::CONTENT_TYPE, tally_model::tracker::CONTENT_TYPE),
            (header::CACHE_CONTROL, tally_model::tracker::CACHE_CONTROL),
        ],
        tally_model::tracker::SCRIPT,
    )
        .into_response()
}

/// `GET /`: the dashboard's page.
pub async fn dashboard_page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /dashboard/{file}`: one of the dashboard's files.
pub async fn dashboard_file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

/// A dashboard file, revalidated on each load (`no-cache`) so a new release shows at once: with
/// an `ETag` (a hash of its bytes), so a browser that has it gets a 304 without the body; 404
/// for a name the dashboard does not have.
fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some((_, mime, bytes)) = DASHBOARD.iter().find(|(file, _, _)| *file == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let tag = etag(bytes);
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|asked| asked.split(',').any(|t| t.trim().trim_start_matches("W/") == tag));
    let fields = [
        (header::CONTENT_TYPE, *mime),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)], fields).into_response();
    }
    ([(header::ETAG, tag)], fields, *bytes).into_response()
}

/// A file's entity tag: the first 16 hex digits of its SHA-256, quoted.
fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}\"", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::DASHBOARD;

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded_and_no_other() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/dashboard");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .expect("the dashboard folder")
            .map(|entry| entry.expect("a folder entry").file_name().into_string().expect("a UTF-8 name"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = DASHBOARD.iter().map(|(name, _, _)| (*name).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "list each file of core/src/http/dashboard/ in assets.rs");
    }
}
