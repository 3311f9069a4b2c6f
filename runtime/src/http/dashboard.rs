//! The web dashboard: static files embedded in the binary, served at `/`
//! and under `/assets/`.
//!
//! The page (`runtime/assets/dashboard/`) is plain JavaScript modules with
//! no build step; its one library, uPlot, is vendored beside it. Everything
//! is compiled in with `include_bytes!`, so the node serves the dashboard
//! from wherever it runs, offline, and a page never refers to another
//! origin (the Content-Security-Policy below enforces it in the browser).
//!
//! The files need no token: the page asks for one and sends it to the API.
//! [`routes`] is merged into the node's router by [`super::router`].

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName, HeaderValue,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// Its path under `/assets/`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/dashboard/",
                $name
            )),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every file of the dashboard. `index.html` is also served at `/`.
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("sse.js", JS),
    asset!("format.js", JS),
    asset!("app.css", CSS),
    asset!("vendor/uplot/uPlot.iife.min.js", JS),
    asset!("vendor/uplot/uPlot.min.css", CSS),
    asset!("vendor/uplot/LICENSE", TEXT),
    asset!("vendor/uplot/README.md", TEXT),
];

/// The page may load and connect only to the node that served it. uPlot
/// sizes its elements through the CSSOM (`el.style.x = …`), which
/// `style-src 'self'` does not restrict.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of the dashboard: `GET /` and `GET /assets/{path}`. Generic
/// over the router's state so it merges into the API's router as it is.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == path) {
        Some(i) => serve(i, &headers),
        None => not_found(&path),
    }
}

/// The ETag of each asset: a digest of its bytes, so it changes exactly
/// when a build changes the file.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
            })
            .collect()
    })
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let etag = etags()[i].clone();
    // Names are not fingerprinted, so browsers must revalidate: a node
    // upgraded in place serves the new page at once, and an unchanged one
    // answers 304 with no body.
    let common: [(HeaderName, HeaderValue); 5] = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
    ];
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(a.content_type))],
        a.bytes,
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": "not_found",
            "message": format!("the dashboard has no asset `{path}`"),
        }
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_with(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_text(r: Response) -> String {
        let bytes = to_bytes(r.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header(r: &Response, name: HeaderName) -> &str {
        r.headers()
            .get(&name)
            .unwrap_or_else(|| panic!("a {name} header"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn the_root_serves_the_page() {
        let r = get_with("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, CONTENT_TYPE), HTML);
        assert_eq!(header(&r, CACHE_CONTROL), "no-cache");
        assert!(header(&r, ETAG).starts_with('"'));
        assert!(header(&r, CONTENT_SECURITY_POLICY).contains("connect-src 'self'"));
        let html = body_text(r).await;
        assert!(
            html.contains("<script type=\"module\" src=\"/assets/app.js\""),
            "{html}"
        );
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type() {
        for a in ASSETS {
            let r = get_with(&format!("/assets/{}", a.name), None).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", a.name);
            assert_eq!(header(&r, CONTENT_TYPE), a.content_type, "{}", a.name);
            assert_eq!(header(&r, X_CONTENT_TYPE_OPTIONS), "nosniff");
            let bytes = to_bytes(r.into_body(), usize::MAX).await.unwrap();
            assert_eq!(&bytes[..], a.bytes, "{}", a.name);
        }
        let r = get_with("/assets/vendor/uplot/uPlot.iife.min.js", None).await;
        assert!(body_text(r).await.contains("uPlot"));
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_not_sent_again() {
        let r = get_with("/assets/app.css", None).await;
        let tag = header(&r, ETAG).to_owned();
        let r = get_with("/assets/app.css", Some(&tag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, ETAG), tag);
        assert!(body_text(r).await.is_empty());
        // Among others, and weak.
        let r = get_with("/assets/app.css", Some(&format!("\"x\", W/{tag}"))).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        // Another file's tag does not match.
        let other = header(&get_with("/assets/app.js", None).await, ETAG).to_owned();
        assert_ne!(other, tag);
        let r = get_with("/assets/app.css", Some(&other)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_json_404() {
        for uri in [
            "/assets/nope.js",
            "/assets/vendor/uplot",
            "/assets/../Cargo.toml",
        ] {
            let r = get_with(uri, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
            assert!(header(&r, CONTENT_TYPE).starts_with("application/json"));
            let v: serde_json::Value = serde_json::from_str(&body_text(r).await).unwrap();
            assert_eq!(v["error"]["code"], "not_found", "{uri}");
            assert!(v["error"]["message"].as_str().unwrap().contains("no asset"));
        }
    }

    #[test]
    fn the_page_refers_to_no_other_origin() {
        for a in ASSETS.iter().filter(|a| !a.name.starts_with("vendor/")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(!text.contains(scheme), "{} mentions {scheme}", a.name);
            }
        }
    }
}
