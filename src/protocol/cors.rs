//! CORS: which pages of other origins may open streams here, and the
//! headers that say so (the Fetch standard's CORS protocol).
//!
//! With origins listed (`--cors-origin https://app.example`), a request
//! from one of them is answered with that origin and
//! `Access-Control-Allow-Credentials: true`, so that an `EventSource`
//! opened `withCredentials` gets its cookies. With `*`, any origin may
//! read, without credentials (the standard forbids both). A preflight
//! (`OPTIONS`) allows `GET` with the headers an `EventSource` sends. The
//! answers expose `Retry-After`, which a page's `fetch` reads only then:
//! the browser client waits that long after a 503.

/// The origins allowed to read the server's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// No CORS: browsers let no other origin read.
    #[default]
    None,
    Any,
    Listed(Vec<String>),
}

/// Headers a preflight may ask for.
pub const ALLOWED_HEADERS: &str = "Last-Event-Id, Accept, Cache-Control";
/// Headers of the answers that pages of another origin may read.
const EXPOSED_HEADERS: &str = "Retry-After";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "86400";

impl Origins {
    /// From the `--cors-origin` values: `*` among them means any.
    pub fn from_options(values: &[String]) -> Self {
        if values.is_empty() {
            Origins::None
        } else if values.iter().any(|v| v == "*") {
            Origins::Any
        } else {
            Origins::Listed(
                values
                    .iter()
                    .map(|v| v.trim_end_matches('/').to_string())
                    .collect(),
            )
        }
    }

    pub fn is_enabled(&self) -> bool {
        *self != Origins::None
    }

    /// The headers of an answer to a request with this `Origin`.
    pub fn headers(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        match self {
            Origins::None => Vec::new(),
            Origins::Any => vec![
                ("Access-Control-Allow-Origin", "*".to_string()),
                ("Access-Control-Expose-Headers", EXPOSED_HEADERS.to_string()),
            ],
            Origins::Listed(listed) => {
                // The answer depends on the Origin: caches must keep it apart.
                let mut headers = vec![("Vary", "Origin".to_string())];
                let origin = origin.and_then(|o| std::str::from_utf8(o).ok());
                if let Some(origin) = origin.filter(|o| listed.iter().any(|l| l == o)) {
                    headers.push(("Access-Control-Allow-Origin", origin.to_string()));
                    headers.push(("Access-Control-Allow-Credentials", "true".to_string()));
                    headers.push(("Access-Control-Expose-Headers", EXPOSED_HEADERS.to_string()));
                }
                headers
            }
        }
    }

    /// The headers of an answer to a preflight from this `Origin`: none
    /// beyond `Vary` if the origin is not allowed (the browser then refuses).
    pub fn preflight_headers(&self, origin: Option<&[u8]>) -> Vec<(&'static str, String)> {
        let mut headers = self.headers(origin);
        if headers
            .iter()
            .any(|(name, _)| *name == "Access-Control-Allow-Origin")
        {
            headers.push(("Access-Control-Allow-Methods", "GET, HEAD".to_string()));
            headers.push(("Access-Control-Allow-Headers", ALLOWED_HEADERS.to_string()));
            headers.push(("Access-Control-Max-Age", MAX_AGE.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &[(&'static str, String)]) -> Vec<String> {
        headers.iter().map(|(n, v)| format!("{n}: {v}")).collect()
    }

    #[test]
    fn listed_origins_are_echoed_with_credentials() {
        let origins = Origins::from_options(&["http://app.test:3000/".into()]);
        assert_eq!(
            names(&origins.headers(Some(b"http://app.test:3000"))),
            vec![
                "Vary: Origin",
                "Access-Control-Allow-Origin: http://app.test:3000",
                "Access-Control-Allow-Credentials: true",
                "Access-Control-Expose-Headers: Retry-After"
            ]
        );
        assert_eq!(
            names(&origins.headers(Some(b"http://evil.test"))),
            vec!["Vary: Origin"]
        );
        assert_eq!(names(&origins.headers(None)), vec!["Vary: Origin"]);
    }

    #[test]
    fn any_origin_goes_without_credentials() {
        let origins = Origins::from_options(&["http://a.test".into(), "*".into()]);
        assert_eq!(origins, Origins::Any);
        assert_eq!(
            names(&origins.headers(Some(b"http://b.test"))),
            vec![
                "Access-Control-Allow-Origin: *",
                "Access-Control-Expose-Headers: Retry-After"
            ]
        );
    }

    #[test]
    fn a_preflight_allows_what_an_event_source_sends() {
        let origins = Origins::from_options(&["http://a.test".into()]);
        let headers = names(&origins.preflight_headers(Some(b"http://a.test")));
        assert!(headers.contains(
            &"Access-Control-Allow-Headers: Last-Event-Id, Accept, Cache-Control".to_string()
        ));
        assert!(headers.contains(&"Access-Control-Allow-Methods: GET, HEAD".to_string()));
        assert_eq!(
            names(&origins.preflight_headers(Some(b"http://b.test"))),
            vec!["Vary: Origin"]
        );
        assert!(Origins::None
            .preflight_headers(Some(b"http://a.test"))
            .is_empty());
    }
}
