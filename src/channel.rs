//! A channel: what a stream listens to and an event is published on. Its
//! name is any bytes, as Redis keys are; it is shared, not copied, by the
//! streams that listen to it and the hub.

use bytes::Bytes;

pub type Channel = Bytes;

/// The channels a stream subscribes to: each once, in the order given,
/// without empty names (the application's block may return any list).
pub fn unique_channels(channels: impl IntoIterator<Item = Channel>) -> Vec<Channel> {
    let mut seen = std::collections::HashSet::new();
    channels
        .into_iter()
        .filter(|channel| !channel.is_empty() && seen.insert(channel.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_unique_and_named() {
        let given = ["b", "", "a", "b"].map(Bytes::from);
        assert_eq!(
            unique_channels(given),
            vec![Bytes::from("b"), Bytes::from("a")]
        );
    }
}
