//! Percent-encoding (RFC 3986): query strings are form-encoded with it
//! (`+` is a space there), and so are the credentials in Redis URLs.
//!
//! An escape is `%` and exactly two hex digits: anything else is refused,
//! never guessed at (a lenient parser reads `%+A` as a newline).

/// A `%` that is not followed by two hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid %-escape at byte {at}: a % must be followed by two hex digits")]
pub struct BadEscape {
    pub at: usize,
}

/// `%XX` escapes decoded; every other byte as it is.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, BadEscape> {
    decode_with(input, false)
}

/// `application/x-www-form-urlencoded`: `%XX` escapes, and `+` is a space.
pub fn decode_form(input: &[u8]) -> Result<Vec<u8>, BadEscape> {
    decode_with(input, true)
}

fn decode_with(input: &[u8], plus_is_space: bool) -> Result<Vec<u8>, BadEscape> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let byte = match input.get(i + 1..i + 3) {
                    Some(&[high, low]) => hex(high).zip(hex(low)).map(|(h, l)| h << 4 | l),
                    _ => None,
                };
                out.push(byte.ok_or(BadEscape { at: i })?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) as `%XX`.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_two_hex_digits_exactly() {
        assert_eq!(decode(b"a%2Fb%c3%A9").unwrap(), "a/bé".as_bytes());
        assert_eq!(decode(b"%FF%00").unwrap(), b"\xff\x00");
        for bad in [
            &b"%+A"[..],
            b"%+0",
            b"%-1",
            b"% a",
            b"%4",
            b"%",
            b"a%zz",
            b"%\xff0",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert!(
                decode_form(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode(b"x%4").unwrap_err(), BadEscape { at: 1 });
    }

    #[test]
    fn a_plus_is_a_space_in_forms_only() {
        assert_eq!(decode_form(b"a+b%2B").unwrap(), b"a b+");
        assert_eq!(decode(b"a+b").unwrap(), b"a+b");
    }

    #[test]
    fn encoding_round_trips() {
        let raw = b"p@ss:w/rd %+\xff~";
        assert_eq!(encode(raw), "p%40ss%3Aw%2Frd%20%25%2B%FF~");
        assert_eq!(decode(encode(raw).as_bytes()).unwrap(), raw);
    }
}
