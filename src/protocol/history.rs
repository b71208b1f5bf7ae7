//! What a stream sends before its live events: the history the client
//! missed, merged across its channels, and the `missedevents` and
//! `lastEventId` events of SPEC §2.

use bytes::Bytes;

/// One event as stored in a channel's history (a member of its sorted set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: u64,
    pub text: Bytes,
}

/// Where the history of a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The client has every event up to this id (its `Last-Event-Id`).
    After(u64),
    /// The client gave no id: it gets the events published since the
    /// stream was opened (the counter's value just before subscribing), so
    /// that nothing published while it subscribes is lost.
    Opened { counter: u64 },
}

impl Start {
    /// The smallest score to read from each channel's sorted set:
    /// `ZRANGEBYSCORE <channel> <min> +inf WITHSCORES`.
    pub fn min_score(self) -> String {
        match self {
            // Inclusive, to see whether the client's last event is still there.
            Start::After(id) => id.to_string(),
            Start::Opened { counter } => format!("({counter}"),
        }
    }
}

/// The opening of a stream, in the order it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// Send `missedevents` first: the history does not reach back to the client's last event.
    pub missed: bool,
    pub events: Vec<StoredEvent>,
    /// Send a `lastEventId` event with this id (no history event was sent).
    pub last_event_id: Option<u64>,
}

/// Plans the opening from the histories read after subscribing and the
/// counter read just before them (`None` when it does not exist yet).
pub fn plan_opening(
    start: Start,
    histories: Vec<Vec<StoredEvent>>,
    counter: Option<u64>,
) -> Opening {
    let mut events: Vec<StoredEvent> = histories.into_iter().flatten().collect();
    events.sort_by_key(|e| e.id);
    events.dedup_by_key(|e| e.id);
    let mut missed = false;
    if let (Start::After(last), Some(first)) = (start, events.first()) {
        if first.id == last {
            events.remove(0);
        } else {
            missed = true;
        }
    }
    let last_event_id = if events.is_empty() { counter } else { None };
    Opening {
        missed,
        events,
        last_event_id,
    }
}

/// The ids a stream's opening sent from history: the only live events the
/// stream leaves out. An event published while the stream opened reaches
/// it twice, from the history and from pub/sub; any other live event is
/// sent, even one with a lower id than the last sent: 0.4 publishers (INCR,
/// then PUBLISH, in separate round trips) can publish id 8 before id 7.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed(Vec<u64>);

impl Replayed {
    pub fn of(opening: &Opening) -> Self {
        let mut ids: Vec<u64> = opening.events.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        Replayed(ids)
    }

    /// Whether a live event was sent already from history. Each id is
    /// answered `true` once: an event is published once, so it is then
    /// forgotten, and the memory goes with the last one.
    pub fn take(&mut self, id: u64) -> bool {
        let Ok(index) = self.0.binary_search(&id) else {
            return false;
        };
        self.0.remove(index);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub const MISSED_EVENTS: &[u8] = b"event: missedevents\ndata: \n\n";

pub fn last_event_id_event(id: u64) -> Vec<u8> {
    format!("id: {id}\nevent: lastEventId\ndata: \n\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64) -> StoredEvent {
        StoredEvent {
            id,
            text: Bytes::from(format!("id: {id}\ndata: \n\n")),
        }
    }

    fn ids(o: &Opening) -> Vec<u64> {
        o.events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn merges_channels_in_id_order_and_drops_the_clients_last() {
        let o = plan_opening(
            Start::After(3),
            vec![vec![ev(3), ev(5)], vec![ev(4), ev(6)]],
            Some(6),
        );
        assert!(!o.missed);
        assert_eq!(ids(&o), vec![4, 5, 6]);
        assert_eq!(o.last_event_id, None);
    }

    #[test]
    fn history_not_reaching_back_is_missed() {
        let o = plan_opening(Start::After(3), vec![vec![ev(8), ev(9)]], Some(9));
        assert!(o.missed);
        assert_eq!(ids(&o), vec![8, 9]);
    }

    #[test]
    fn nothing_newer_sends_the_counter() {
        let o = plan_opening(Start::After(5), vec![vec![ev(5)], vec![]], Some(12));
        assert!(!o.missed);
        assert!(o.events.is_empty());
        assert_eq!(o.last_event_id, Some(12));
        let empty = plan_opening(Start::After(5), vec![vec![]], Some(12));
        assert!(!empty.missed, "no history at all is not a missed event");
        assert_eq!(empty.last_event_id, Some(12));
    }

    #[test]
    fn an_id_from_before_redis_lost_its_data_gets_the_counter() {
        let o = plan_opening(Start::After(7), vec![vec![]], Some(2));
        assert_eq!(o.last_event_id, Some(2));
        let empty = plan_opening(Start::After(7), vec![vec![]], None);
        assert_eq!(empty.last_event_id, None);
    }

    #[test]
    fn only_what_the_opening_replayed_is_left_out_of_live_events() {
        let o = plan_opening(
            Start::After(3),
            vec![vec![ev(3), ev(5)], vec![ev(4)]],
            Some(5),
        );
        let mut replayed = Replayed::of(&o);
        // 7 and 6 from two 0.4 publishers, out of order: both are sent.
        assert!(!replayed.take(7));
        assert!(!replayed.take(6));
        assert!(
            replayed.take(5),
            "published while opening: sent from history"
        );
        assert!(!replayed.take(5), "each once");
        assert!(replayed.take(4));
        assert!(
            !replayed.take(3),
            "the client's own last event was not replayed"
        );
        assert!(replayed.is_empty());
        let fresh = plan_opening(Start::Opened { counter: 9 }, vec![vec![]], Some(9));
        assert!(Replayed::of(&fresh).is_empty());
    }

    #[test]
    fn no_counter_no_last_event_id() {
        let o = plan_opening(Start::Opened { counter: 0 }, vec![vec![]], None);
        assert_eq!(
            o,
            Opening {
                missed: false,
                events: vec![],
                last_event_id: None,
            }
        );
    }

    #[test]
    fn a_new_client_gets_what_was_published_while_it_subscribed() {
        let o = plan_opening(Start::Opened { counter: 7 }, vec![vec![ev(8)]], Some(9));
        assert!(!o.missed);
        assert_eq!(ids(&o), vec![8]);
        assert_eq!(o.last_event_id, None);
        let quiet = plan_opening(Start::Opened { counter: 7 }, vec![vec![]], Some(7));
        assert_eq!(quiet.last_event_id, Some(7));
        assert_eq!(Start::Opened { counter: 7 }.min_score(), "(7");
        assert_eq!(Start::After(7).min_score(), "7");
    }

    #[test]
    fn duplicates_across_channels_are_sent_once() {
        let o = plan_opening(Start::After(1), vec![vec![ev(2)], vec![ev(2)]], Some(2));
        assert_eq!(ids(&o), vec![2]);
        assert!(o.missed);
    }

    #[test]
    fn event_texts() {
        assert_eq!(
            last_event_id_event(42),
            b"id: 42\nevent: lastEventId\ndata: \n\n"
        );
        assert_eq!(MISSED_EVENTS, b"event: missedevents\ndata: \n\n");
    }
}
