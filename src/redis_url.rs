//! Where Redis is, and how to reach it:
//!
//! - `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS,
//!   `unix:///path/to/socket[?db=N]`: one server. Parsing is the `redis`
//!   crate's.
//! - `redis+sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db]`
//!   (`rediss+sentinel://` for TLS to the master): the current master of a
//!   Sentinel-managed group, asked of the sentinels at each connection, so
//!   that a failover is followed. The credentials are the master's.
//! - `redis+cluster://[[user]:password@]host:port[,host:port...]`
//!   (`rediss+cluster://` for TLS): a Redis Cluster, found from these
//!   nodes. Commands go to each key's node; pub/sub to any node (a
//!   `PUBLISH` reaches the subscribers of every node).
//!
//! A private CA for `rediss://` is given in `$REDISSE_REDIS_CA` (a PEM
//! file), and then it alone is trusted. Without it, the server's
//! certificate is checked against the machine's trust store, as OpenSSL,
//! curl and redis-rb find it: `$SSL_CERT_FILE` or `$SSL_CERT_DIR` when
//! set, else the system's (Debian's `/etc/ssl/certs`, with the private CAs
//! that `update-ca-certificates` added). This module also shows URLs without their
//! passwords, for every message and log line.

use std::fmt;
use std::sync::Once;

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{IntoConnectionInfo, TlsCertificates, TlsMode};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::percent;

/// The environment variable naming a PEM file of CA certificates to trust.
pub const CA_VARIABLE: &str = "REDISSE_REDIS_CA";

#[derive(Debug, Error)]
#[error("invalid Redis URL {masked}: {reason}")]
pub struct InvalidUrl {
    pub masked: String,
    pub reason: String,
}

/// A Redis URL that parsed, and can be shown without its password.
#[derive(Clone)]
pub struct RedisUrl {
    target: Target,
    masked: String,
}

#[derive(Clone)]
enum Target {
    Server(Box<redis::Client>),
    Sentinel(std::sync::Arc<Sentinel>),
    Cluster(std::sync::Arc<Cluster>),
}

/// A Redis Cluster: the client that routes commands, and its seed nodes,
/// taken in turn for pub/sub (a node that is gone is passed over).
pub struct Cluster {
    pub client: redis::cluster::ClusterClient,
    seeds: Vec<redis::Client>,
    next_seed: std::sync::atomic::AtomicUsize,
}

/// A Sentinel-managed group: asked for its master at each connection.
struct Sentinel {
    client: Mutex<SentinelClient>,
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, InvalidUrl> {
        install_crypto_provider();
        let masked = mask_password(url);
        // A reason may quote the URL, or a part of it: never its password.
        let invalid = |reason: String| InvalidUrl {
            masked: masked.clone(),
            reason: without_passwords(&reason, url),
        };
        let target = match url.split_once("://") {
            Some(("redis+sentinel", rest)) => {
                Target::Sentinel(sentinel(rest, false).map_err(invalid)?)
            }
            Some(("rediss+sentinel", rest)) => {
                Target::Sentinel(sentinel(rest, true).map_err(invalid)?)
            }
            Some(("redis+cluster", rest)) => {
                Target::Cluster(cluster(rest, false).map_err(invalid)?)
            }
            Some(("rediss+cluster", rest)) => {
                Target::Cluster(cluster(rest, true).map_err(invalid)?)
            }
            _ => Target::Server(Box::new(server(url).map_err(invalid)?)),
        };
        Ok(RedisUrl { target, masked })
    }

    /// A client for the server to talk to now: for Sentinel, the current
    /// master (asked again at each call, to follow failovers).
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.target {
            Target::Server(client) => Ok((**client).clone()),
            Target::Sentinel(sentinel) => sentinel.client.lock().await.async_get_client().await,
            Target::Cluster(cluster) => {
                let next = cluster
                    .next_seed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(cluster.seeds[next % cluster.seeds.len()].clone())
            }
        }
    }

    /// The cluster behind the URL, if it is one.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.target {
            Target::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// Whether the server behind the URL can change (a failover): then a
    /// connection that failed is made again from a fresh [`Self::client`].
    pub fn follows_failovers(&self) -> bool {
        matches!(self.target, Target::Sentinel(_))
    }
}

/// One server, with `$REDISSE_REDIS_CA` trusted for TLS.
fn server(url: &str) -> Result<redis::Client, String> {
    let info = url.into_connection_info().map_err(|e| e.to_string())?;
    match private_ca()? {
        Some(root_cert) if url.starts_with("rediss://") => redis::Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        )
        .map_err(|e| e.to_string()),
        _ => redis::Client::open(info).map_err(|e| e.to_string()),
    }
}

/// `[user:password@]host:port,host:port/master_name[/db]`
fn sentinel(rest: &str, tls: bool) -> Result<std::sync::Arc<Sentinel>, String> {
    let (authority, path) = rest
        .split_once('/')
        .ok_or("no master name after the sentinels")?;
    let (credentials, hosts) = split_credentials(authority)?;
    let mut path = path.trim_end_matches('/').split('/');
    let master = path
        .next()
        .filter(|m| !m.is_empty())
        .ok_or("no master name after the sentinels")?;
    let db = match path.next() {
        Some(db) => db
            .parse::<i64>()
            .map_err(|_| format!("invalid database {db:?}"))?,
        None => 0,
    };
    let sentinels = hosts
        .split(',')
        .map(|host| {
            let host = if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:26379")
            };
            format!("redis://{host}/")
        })
        .collect::<Vec<_>>();
    let mut redis = redis::RedisConnectionInfo::default().set_db(db);
    if let Some((user, password)) = credentials {
        if let Some(user) = user {
            redis = redis.set_username(user);
        }
        if let Some(password) = password {
            redis = redis.set_password(password);
        }
    }
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
    if tls {
        node = node.set_tls_mode(TlsMode::Secure);
    }
    let client = SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
        .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(Sentinel {
        client: Mutex::new(client),
    }))
}

/// User and password (percent-decoded), and the hosts of an authority.
type Credentials = (Option<String>, Option<String>);

fn split_credentials(authority: &str) -> Result<(Option<Credentials>, &str), String> {
    let Some((credentials, hosts)) = authority.rsplit_once('@') else {
        return Ok((None, authority));
    };
    let (user, password) = credentials.split_once(':').unwrap_or(("", credentials));
    // The error names the part, never its text: it may be a password.
    let decode = |s: &str, part: &str| -> Result<Option<String>, String> {
        let decoded = percent::decode(s.as_bytes()).map_err(|e| format!("{e}, in the {part}"))?;
        Ok((!decoded.is_empty()).then(|| String::from_utf8_lossy(&decoded).into_owned()))
    };
    Ok((
        Some((decode(user, "user name")?, decode(password, "password")?)),
        hosts,
    ))
}

/// `[user:password@]host:port,host:port[/]`
fn cluster(rest: &str, tls: bool) -> Result<std::sync::Arc<Cluster>, String> {
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err("a cluster has no databases: no path after its nodes".into());
    }
    let (credentials, hosts) = split_credentials(authority)?;
    let scheme = if tls { "rediss" } else { "redis" };
    let userinfo = match &credentials {
        Some((user, password)) => {
            let encode = |s: &Option<String>| {
                s.as_deref()
                    .map(|s| percent::encode(s.as_bytes()))
                    .unwrap_or_default()
            };
            format!("{}:{}@", encode(user), encode(password))
        }
        None => String::new(),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|host| format!("{scheme}://{userinfo}{host}/"))
        .collect();
    if nodes.is_empty() {
        return Err("no cluster node".into());
    }
    let seeds = nodes
        .iter()
        .map(|node| server(node))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone());
    if let Some(root_cert) = private_ca()?.filter(|_| tls) {
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        });
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(Cluster {
        client,
        seeds,
        next_seed: std::sync::atomic::AtomicUsize::new(0),
    }))
}

/// The PEM of `$REDISSE_REDIS_CA`, if set.
fn private_ca() -> Result<Option<Vec<u8>>, String> {
    let Some(path) = std::env::var_os(CA_VARIABLE) else {
        return Ok(None);
    };
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("cannot read {CA_VARIABLE}={}: {e}", path.to_string_lossy()))
}

/// rustls needs a process-wide choice of cryptography, and the features of
/// the crates here leave it open: without this, the first TLS connection
/// panics. The one place it is made, for the binary and the gem alike.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another library of the process may have chosen first: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
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
/// parse (they still end up in error messages): the one of the user info,
/// and a `pass=` or `password=` query item (`unix:///path?pass=...`).
pub fn mask_password(url: &str) -> String {
    let mut masked = String::with_capacity(url.len());
    let mut rest = url;
    if let Some((userinfo, at)) = userinfo(url) {
        let shown = match userinfo.find(':') {
            Some(colon) => format!("{}:****", &userinfo[..colon]),
            // `redis://secret@host` puts the password where a user name would be.
            None if userinfo.is_empty() => String::new(),
            None => "****".to_string(),
        };
        let start = url.len() - url[at..].len() - userinfo.len();
        masked.push_str(&url[..start]);
        masked.push_str(&shown);
        rest = &url[at..];
    }
    let Some((before, query)) = rest.split_once('?') else {
        masked.push_str(rest);
        return masked;
    };
    masked.push_str(before);
    masked.push('?');
    let items: Vec<String> = query
        .split('&')
        .map(|item| match item.split_once('=') {
            Some((key, _)) if is_password_key(key) => format!("{key}=****"),
            _ => item.to_string(),
        })
        .collect();
    masked.push_str(&items.join("&"));
    masked
}

/// The user info of a URL with an authority (`scheme://userinfo@host`),
/// and where its `@` is. It ends at the last `@` before the query: a
/// password may hold a `/` (`redis://:ab/cd@host`), and a Redis URL's
/// path (a database number, or a master name) never holds an `@`. A
/// socket path may, so `unix://` URLs have none.
fn userinfo(url: &str) -> Option<(&str, usize)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme == "unix" {
        return None;
    }
    let start = scheme.len() + 3;
    let end = rest.find(['?', '#']).map_or(url.len(), |i| start + i);
    let at = start + url[start..end].rfind('@')?;
    Some((&url[start..at], at))
}

fn is_password_key(key: &str) -> bool {
    matches!(key, "pass" | "password")
}

/// `text` with every password of `url` in it, as written or decoded,
/// replaced by `****`.
fn without_passwords(text: &str, url: &str) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Some((userinfo, _)) = userinfo(url) {
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        secrets.push(password.to_string());
    }
    if let Some((_, query)) = url.split_once('?') {
        secrets.extend(query.split('&').filter_map(|item| {
            let (key, value) = item.split_once('=')?;
            is_password_key(key).then(|| value.to_string())
        }));
    }
    let decoded: Vec<String> = secrets
        .iter()
        .filter_map(|s| percent::decode(s.as_bytes()).ok())
        .map(|s| String::from_utf8_lossy(&s).into_owned())
        .collect();
    secrets.extend(decoded);
    // Longest first: a password may contain a shorter one.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "****")
        })
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
        assert_eq!(
            mask_password("redis+sentinel://u:pw@h1:26379,h2:26380/mymaster/0"),
            "redis+sentinel://u:****@h1:26379,h2:26380/mymaster/0"
        );
        // A password with a slash, which ends no authority here.
        assert_eq!(mask_password("redis://:ab/cd@host"), "redis://:****@host");
        assert_eq!(
            mask_password("unix:///tmp/r@1.sock?db=2&pass=secret"),
            "unix:///tmp/r@1.sock?db=2&pass=****"
        );
        assert_eq!(
            mask_password("redis://u:pw@h/0?password=other"),
            "redis://u:****@h/0?password=****"
        );
    }

    /// Whatever the URL's fault, its error never repeats a password.
    #[test]
    fn errors_never_show_a_password() {
        for (url, password) in [
            ("redis://:ab/cd@host", "ab/cd"),
            ("redis://:s3cr3t@host:notaport/", "s3cr3t"),
            ("redis+sentinel://u:p%zzword@h1/master", "p%zzword"),
            ("redis+cluster://u:p%4word@h1:7000", "p%4word"),
            ("redis+cluster://u:pass%20word@h1:7000/3", "pass word"),
            ("unix:///tmp/r.sock?db=x&pass=s3cr3t", "s3cr3t"),
        ] {
            let error = RedisUrl::parse(url).map(|_| ()).unwrap_err().to_string();
            assert!(!error.contains(password), "{url}: {error}");
            assert!(!error.contains(&password[1..]), "{url}: {error}");
        }
    }

    #[test]
    fn parses_the_supported_schemes() {
        for url in [
            "redis://localhost:6379/",
            "redis://:pw@127.0.0.1:1/3",
            "rediss://h:6380/0",
            "unix:///tmp/r.sock",
            "redis+sentinel://h1:26379,h2:26380/mymaster/2",
            "redis+sentinel://:pw@h1/mymaster",
            "rediss+sentinel://u:pw@h1:26379/mymaster",
            "redis+cluster://h1:7000,h2:7001",
            "redis+cluster://u:pw@h1:7000/",
        ] {
            let parsed = RedisUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(!parsed.to_string().contains("pw"));
            assert_eq!(
                parsed.follows_failovers(),
                url.contains("sentinel"),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_url_keeps_its_database() {
        let db = RedisUrl::parse("redis://localhost/3").unwrap();
        let client = db.client().await.unwrap();
        assert_eq!(client.get_connection_info().redis_settings().db(), 3);
    }

    #[test]
    fn refuses_garbage_with_the_password_masked() {
        let err = RedisUrl::parse("http://:pw@localhost/").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(RedisUrl::parse("redis://h/notadb").is_err());
        assert!(RedisUrl::parse("redis+sentinel://h1:26379/").is_err());
        assert!(RedisUrl::parse("redis+sentinel://h1:26379/m/x").is_err());
        assert!(RedisUrl::parse("redis+cluster://h1:7000/3").is_err());
    }
}
