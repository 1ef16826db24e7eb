//! Static assets, embedded in the binary so one file is the whole deployment and
//! the page works where nothing but this server is reachable.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppError;

const STYLE_CSS: &str = include_str!("../../static/style.css");
const PROBE_JS: &str = include_str!("../../static/probe.js");
const REPORT_JS: &str = include_str!("../../static/report.js");

pub(super) async fn serve(Path(file): Path<String>) -> Result<Response, AppError> {
    let (body, content_type) = match file.as_str() {
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "probe.js" => (PROBE_JS, "text/javascript; charset=utf-8"),
        "report.js" => (REPORT_JS, "text/javascript; charset=utf-8"),
        _ => return Err(AppError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}
