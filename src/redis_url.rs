//! Where Redis is: `redis://[:password@]host[:port][/db]`, `rediss://` for
//! TLS, `unix:///path/to/socket[?db=N]`. Parsing is the `redis` crate's;
//! this adds what users see in messages: the URL with its password masked.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Error)]
#[error("invalid Redis URL {masked}: {reason}")]
pub struct InvalidUrl {
    pub masked: String,
    pub reason: String,
}

/// A Redis URL that parsed, and can be shown without its password.
#[derive(Clone)]
pub struct RedisUrl {
    client: redis::Client,
    masked: String,
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, InvalidUrl> {
        let masked = mask_password(url);
        let client = redis::Client::open(url).map_err(|e| InvalidUrl {
            masked: masked.clone(),
            reason: e.to_string(),
        })?;
        Ok(RedisUrl { client, masked })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.masked)
    }
}

/// The URL with any password replaced by `****`, also for URLs that do not
/// parse (they still end up in error messages).
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let masked_userinfo = match userinfo.find(':') {
        Some(colon) => format!("{}:****", &userinfo[..colon]),
        // `redis://secret@host` puts the password where a user name would be.
        None if userinfo.is_empty() => String::new(),
        None => "****".to_string(),
    };
    format!(
        "{}{}@{}",
        &url[..authority_start],
        masked_userinfo,
        &url[authority_start + at + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_password("redis://:secret@h:1/2"),
            "redis://:****@h:1/2"
        );
        assert_eq!(
            mask_password("redis://user:secret@h/"),
            "redis://user:****@h/"
        );
        assert_eq!(mask_password("rediss://secret@h"), "rediss://****@h");
        assert_eq!(mask_password("redis://h:6379/3"), "redis://h:6379/3");
        assert_eq!(mask_password("redis://h/x?a=b@c"), "redis://h/x?a=b@c");
        assert_eq!(mask_password("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
        assert_eq!(mask_password("nonsense"), "nonsense");
    }

    #[test]
    fn parses_the_supported_schemes() {
        for url in [
            "redis://localhost:6379/",
            "redis://:pw@127.0.0.1:1/3",
            "rediss://h:6380/0",
            "unix:///tmp/r.sock",
        ] {
            let parsed = RedisUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(!parsed.to_string().contains("pw"));
        }
        let db = RedisUrl::parse("redis://localhost/3").unwrap();
        assert_eq!(db.client().get_connection_info().redis_settings().db(), 3);
    }

    #[test]
    fn refuses_garbage_with_the_password_masked() {
        let err = RedisUrl::parse("http://:pw@localhost/").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(RedisUrl::parse("redis://h/notadb").is_err());
    }
}
