//! The files a browser loads from Tally itself, embedded in the binary: the tracking script at
//! `/js/tally.js` (the edge Worker serves the same bytes), and the dashboard at `/` with its
//! files under `/dashboard/` (`core/src/http/dashboard/`, hand-written, no build step). Both are
//! public: the dashboard reads data only through the query API, with the key the user signs in
//! with.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
pub async fn dashboard_page() -> Response {
    serve("index.html")
}

/// `GET /dashboard/{file}`: one of the dashboard's files.
pub async fn dashboard_file(Path(name): Path<String>) -> Response {
    serve(&name)
}

/// A dashboard file, revalidated on each load (`no-cache`) so a new release shows at once; 404
/// for a name the dashboard does not have.
fn serve(name: &str) -> Response {
    match DASHBOARD.iter().find(|(file, _, _)| *file == name) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
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
