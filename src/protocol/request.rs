//! What a stream request asks for: its channels (redirect mode), whether it
//! long-polls, and the last event id the client has.

use bytes::Bytes;
use thiserror::Error;

use crate::percent;

use crate::channel::{unique_channels, Channel};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("bad query string: {0}")]
pub struct BadQuery(pub String);

/// The query items that are not channels: `polling` and `lastEventId=N`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    pub polling: bool,
    pub last_event_id: Option<u64>,
}

/// Reads the query string: the options, and the channels of redirect mode
/// (every `&`-separated item, form-decoded, but the options and empty items).
pub fn parse_query(query: &[u8]) -> Result<(QueryOptions, Vec<Channel>), BadQuery> {
    let mut options = QueryOptions::default();
    let mut channels: Vec<Channel> = Vec::new();
    for item in query.split(|&b| b == b'&').filter(|item| !item.is_empty()) {
        if item == b"polling" || item.starts_with(b"polling=") {
            options.polling = true;
        } else if let Some(value) = item.strip_prefix(b"lastEventId=") {
            // Repeated, the last one counts, as Rack's `GET` read it for 0.4.
            options.last_event_id = parse_last_event_id(&form_decode(value)?);
        } else if item == b"lastEventId" {
            // An option without a value, never a channel. Only the exact
            // item: `lastEventIds` is a channel like any other.
        } else {
            channels.push(Bytes::from(form_decode(item)?));
        }
    }
    Ok((options, unique_channels(channels)))
}

/// The form-decoded value of the first `token=` item, for servers that
/// take signed channel lists (see `crate::token`).
pub fn find_token(query: &[u8]) -> Option<Vec<u8>> {
    query
        .split(|&b| b == b'&')
        .find_map(|item| item.strip_prefix(b"token="))
        .and_then(|value| form_decode(value).ok())
}

/// A last event id as the 0.4 server took it (Ruby's `to_i`): leading
/// digits; 0, empty or no number at all means none.
pub fn parse_last_event_id(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii_start();
    let value = value.strip_prefix(b"+").unwrap_or(value);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&value[..digits])
        .ok()?
        .parse()
        .ok()
        .filter(|&id| id > 0)
}

/// A query item form-decoded; a bad escape is refused with the item.
fn form_decode(item: &[u8]) -> Result<Vec<u8>, BadQuery> {
    percent::decode_form(item)
        .map_err(|e| BadQuery(format!("{e} in {:?}", String::from_utf8_lossy(item))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels(q: &str) -> Vec<String> {
        parse_query(q.as_bytes())
            .unwrap()
            .1
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    #[test]
    fn the_spec_example() {
        let (options, chans) = parse_query(b"global&channel_1&lastEventId=12&polling").unwrap();
        assert_eq!(
            options,
            QueryOptions {
                polling: true,
                last_event_id: Some(12)
            }
        );
        assert_eq!(chans, vec![Bytes::from("global"), Bytes::from("channel_1")]);
    }

    #[test]
    fn a_token_is_found_among_the_items() {
        assert_eq!(
            find_token(b"polling&token=abc-_&lastEventId=3"),
            Some(b"abc-_".to_vec())
        );
        assert_eq!(
            find_token(b"token=a%2Bb&token=other"),
            Some(b"a+b".to_vec())
        );
        assert_eq!(find_token(b"a&b"), None);
        assert_eq!(find_token(b"tokens=x"), None);
    }

    #[test]
    fn the_last_last_event_id_counts() {
        let last = |q: &str| parse_query(q.as_bytes()).unwrap().0.last_event_id;
        assert_eq!(last("a&lastEventId=3&lastEventId=5"), Some(5));
        assert_eq!(last("a&lastEventId=3&lastEventId=x"), None);
        assert_eq!(last("lastEventId=7&a"), Some(7));
    }

    #[test]
    fn channels_are_form_decoded() {
        assert_eq!(channels("a+b&c%2Fd&%C3%A9"), vec!["a b", "c/d", "é"]);
        assert_eq!(
            parse_query(b"%FF%00").unwrap().1,
            vec![Bytes::from_static(b"\xff\x00")]
        );
        assert_eq!(channels("&&a&&a&"), vec!["a"]);
        assert_eq!(channels(""), Vec::<String>::new());
        assert_eq!(channels("polling=1&lastEventId&x"), vec!["x"]);
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert!(parse_query(b"a%zz").is_err());
        assert!(parse_query(b"a%4").is_err());
        assert!(parse_query(b"lastEventId=%").is_err());
        // Lenient hex parsing read these as a newline and a NUL.
        assert!(parse_query(b"a%+A").is_err());
        assert!(parse_query(b"a%+0").is_err());
    }

    #[test]
    fn only_the_exact_items_are_options() {
        let (options, chans) =
            parse_query(b"lastEventIds&lastEventId&lastEventIdx=3&lastEventId=4&pollingx").unwrap();
        assert_eq!(options.last_event_id, Some(4));
        assert!(!options.polling);
        assert_eq!(
            chans,
            ["lastEventIds", "lastEventIdx=3", "pollingx"]
                .map(Bytes::from)
                .to_vec()
        );
    }

    #[test]
    fn last_event_ids_read_like_to_i() {
        assert_eq!(parse_last_event_id(b"42"), Some(42));
        assert_eq!(parse_last_event_id(b" 42abc"), Some(42));
        assert_eq!(parse_last_event_id(b"0"), None);
        assert_eq!(parse_last_event_id(b""), None);
        assert_eq!(parse_last_event_id(b"abc"), None);
        assert_eq!(parse_last_event_id(b"-3"), None);
        assert_eq!(parse_last_event_id(b"99999999999999999999999"), None);
    }
}
