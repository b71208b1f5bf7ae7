//! Property tests of the pure parsers: on any input they do not panic, and
//! on inputs built from known parts they give those parts back.

use bytes::Bytes;
use proptest::prelude::*;
use redisse::event::EventText;
use redisse::protocol::history::{plan_opening, Replayed, Start, StoredEvent};
use redisse::protocol::http::{parse_request_head, Body, HeadError, MAX_HEAD};
use redisse::protocol::negotiation::{negotiate, Representation};
use redisse::protocol::request::{parse_last_event_id, parse_query};
use redisse::redis_layout;

/// `application/x-www-form-urlencoded`, as the redirect endpoint writes names.
fn form_encode(name: &[u8]) -> String {
    name.iter()
        .map(|&b| match b {
            b' ' => "+".to_string(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads event text as a browser does (HTML's event stream parser): the
/// data lines joined with `\n`, the type, the id.
fn browser_reads(text: &[u8]) -> (String, Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(text)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let (mut data, mut kind, mut id) = (Vec::new(), None, None);
    for line in text.split('\n') {
        if line.is_empty() {
            break;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value.to_string()),
            "event" => kind = Some(value.to_string()),
            "id" => id = Some(value.to_string()),
            _ => {}
        }
    }
    (data.join("\n"), kind, id)
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Seeds come from the run; a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_request_head_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_request_head(&bytes);
    }

    #[test]
    fn a_request_head_gives_back_its_parts(
        path in "/[a-z0-9/]{0,20}",
        query in "[a-z0-9&=%]{0,40}",
        headers in proptest::collection::vec((token(), "[ -~]{0,30}"), 0..20),
        http_1_0 in any::<bool>(),
    ) {
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(name, _)| !matches!(name.to_ascii_lowercase().as_str(), "content-length" | "transfer-encoding"))
            .map(|(name, value)| (name, value.trim().to_string()))
            .collect();
        let mut raw = format!("GET {path}?{query} HTTP/1.{}\r\n", if http_1_0 { 0 } else { 1 });
        for (name, value) in &headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        let (head, length) = parse_request_head(raw.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(length, raw.len());
        prop_assert_eq!(&head.path, &path);
        prop_assert_eq!(&head.query, &query);
        prop_assert_eq!(head.minor_version, u8::from(!http_1_0));
        prop_assert_eq!(head.body, Body::None);
        prop_assert_eq!(head.headers.len(), headers.len());
        for ((name, value), (parsed_name, parsed_value)) in headers.iter().zip(&head.headers) {
            prop_assert_eq!(&name.to_ascii_lowercase(), parsed_name);
            prop_assert_eq!(value.as_bytes(), &parsed_value[..]);
        }
        // Any prefix is incomplete, never an error or a different head.
        let cut = raw.len() / 2;
        prop_assert_eq!(parse_request_head(&raw.as_bytes()[..cut]), Ok(None));
    }

    #[test]
    fn a_content_length_is_one_number_or_refused(first in 0u64..1000, second in 0u64..1000) {
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {first}\r\nContent-Length: {second}\r\n\r\n");
        let parsed = parse_request_head(raw.as_bytes()).map(|h| h.map(|(h, _)| h.body));
        if first == second {
            let expected = if first == 0 { Body::None } else { Body::Length(first) };
            prop_assert_eq!(parsed, Ok(Some(expected)));
        } else {
            prop_assert_eq!(parsed, Err(HeadError::AmbiguousBody("Content-Length values disagree")));
        }
    }

    #[test]
    fn a_head_is_never_larger_than_the_limit(extra in 0usize..100) {
        let mut raw = b"GET /?".to_vec();
        raw.resize(MAX_HEAD + extra, b'a');
        prop_assert_eq!(parse_request_head(&raw), Err(HeadError::TooLarge));
    }

    #[test]
    fn a_query_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok((_, channels)) = parse_query(&bytes) {
            let mut unique = channels.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), channels.len(), "each channel once");
            prop_assert!(channels.iter().all(|c| !c.is_empty()));
        }
    }

    #[test]
    fn form_encoded_channels_come_back_as_given(
        names in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..16), 1..10),
        polling in any::<bool>(),
        last in proptest::option::of(1u64..u64::MAX),
    ) {
        let mut items: Vec<String> = names.iter().map(|n| form_encode(n)).collect();
        if polling {
            items.insert(0, "polling".into());
        }
        if let Some(last) = last {
            items.push(format!("lastEventId={last}"));
        }
        let (options, channels) = parse_query(items.join("&").as_bytes()).unwrap();
        prop_assert_eq!(options.polling, polling);
        prop_assert_eq!(options.last_event_id, last);
        let mut expected: Vec<Bytes> = Vec::new();
        for name in names {
            let name = Bytes::from(name);
            // Reserved items are options, never channels.
            let reserved = &name[..] == b"polling" || name.starts_with(b"lastEventId");
            if !reserved && !expected.contains(&name) {
                expected.push(name);
            }
        }
        prop_assert_eq!(channels, expected);
    }

    #[test]
    fn a_last_event_id_reads_like_to_i(id in any::<u64>(), rest in "[^0-9][ -~]{0,5}|") {
        let text = format!("{id}{rest}");
        prop_assert_eq!(parse_last_event_id(text.as_bytes()), (id > 0).then_some(id));
        prop_assert_eq!(parse_last_event_id(format!("x{id}").as_bytes()), None);
    }

    #[test]
    fn accept_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = negotiate(Some(&bytes));
    }

    #[test]
    fn accept_follows_the_listed_types_and_their_quality(
        ranges in proptest::collection::vec(
            (prop_oneof![
                Just("application/json"), Just("text/event-stream"), Just("text/html"), Just("*/*")
            ], proptest::option::of(0u32..=1000), any::<bool>()),
            0..6,
        ),
    ) {
        let accept: Vec<String> = ranges
            .iter()
            .map(|(range, q, space)| {
                let q = q.map_or(String::new(), |q| format!(";q={}.{:03}", q / 1000, q % 1000));
                format!("{}{range}{q}", if *space { " " } else { "" })
            })
            .collect();
        let listed = |wanted: &str| ranges.iter().any(|(range, q, _)| *range == wanted && q.is_none_or(|q| q > 0));
        let expected = if listed("application/json") {
            Representation::Stats
        } else if listed("text/event-stream") {
            Representation::EventStream
        } else {
            Representation::NotAcceptable
        };
        prop_assert_eq!(negotiate(Some(accept.join(",").as_bytes())), expected);
    }

    #[test]
    fn an_event_reads_back_as_a_browser_reads_it(
        data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..200),
        kind in "[a-z:]{1,12}",
        id in any::<u64>(),
    ) {
        let text = EventText::new(&data, Some(kind.as_bytes()), None).unwrap().with_id(id);
        prop_assert_eq!(redis_layout::id_of(&text), Some(id));
        prop_assert!(text.ends_with(b"\n\n"));
        let (read_data, read_kind, read_id) = browser_reads(&text);
        let sent = String::from_utf8_lossy(&data).replace("\r\n", "\n").replace('\r', "\n");
        prop_assert_eq!(read_data, sent);
        prop_assert_eq!(read_kind, Some(kind));
        prop_assert_eq!(read_id, Some(id.to_string()));
    }

    #[test]
    fn a_field_with_a_line_break_is_refused(before in "[a-z]{0,5}", after in "[a-z]{0,5}", cr in any::<bool>()) {
        let kind = format!("{before}{}{after}", if cr { '\r' } else { '\n' });
        prop_assert!(EventText::new(b"x", Some(kind.as_bytes()), None).is_err());
    }

    #[test]
    fn an_opening_sends_each_event_once_in_order(
        histories in proptest::collection::vec(proptest::collection::btree_set(1u64..300, 0..20), 0..5),
        last in proptest::option::of(1u64..300),
    ) {
        // As the store reads them: from the client's last id on.
        let histories: Vec<Vec<StoredEvent>> = histories
            .into_iter()
            .map(|ids| {
                ids.into_iter()
                    .filter(|id| last.is_none_or(|last| *id >= last))
                    .map(|id| StoredEvent { id, text: Bytes::from(format!("id: {id}\n\n")) })
                    .collect()
            })
            .collect();
        let newest = histories.iter().flatten().map(|e| e.id).max();
        let start = last.map_or(Start::Opened { counter: 0 }, Start::After);
        let opening = plan_opening(start, histories.clone(), newest);
        let ids: Vec<u64> = opening.events.iter().map(|e| e.id).collect();
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing, once each: {:?}", ids);
        if let Some(last) = last {
            prop_assert!(!ids.contains(&last), "the client's own last event is not sent again");
        }
        prop_assert_eq!(opening.last_event_id.is_some(), ids.is_empty() && newest.is_some());
        let mut replayed = Replayed::of(&opening);
        for id in &ids {
            prop_assert!(replayed.take(*id));
        }
        prop_assert!(replayed.is_empty());
    }
}
