//! The Redis protocol's framing, pure: commands parsed from bytes (RESP
//! arrays of bulk strings, or inline lines) and replies encoded in RESP2 or
//! RESP3. No I/O, no node: the connection handler feeds it what it read and
//! writes what it encodes.
//!
//! Every input is bounded by [`FrameLimits`]: a frame over a limit, or one
//! that is not RESP, is a [`ProtocolError`], after which the connection
//! answers `-ERR Protocol error: ...` and closes (the stream can no longer
//! be trusted to be in step). Parsing never panics on any input (a property
//! test feeds it random bytes).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Longest line of a length header (`*N\r\n`, `$N\r\n`), in bytes; a
/// 64-bit count and its sign fit in 20.
const HEADER_LINE_MAX: usize = 32;

/// The bounds of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLimits {
    /// Longest bulk string (an argument: a key or a value), in bytes; the
    /// node's value limit.
    pub(crate) bulk_bytes_max: usize,
    /// Most arguments of one command, the command's name included.
    pub(crate) args_max: usize,
    /// Longest inline command (a line without RESP framing), in bytes.
    pub(crate) inline_bytes_max: usize,
    /// Largest command, framing included, in bytes.
    pub(crate) command_bytes_max: usize,
}

impl FrameLimits {
    /// The limits for a node whose values are at most `value_bytes_max`:
    /// an argument may be one whole value, and a command (an `MSET` of
    /// several) may hold up to 1 MiB more than that.
    pub(crate) fn for_values(value_bytes_max: usize) -> Self {
        FrameLimits {
            bulk_bytes_max: value_bytes_max,
            args_max: 64 * 1024,
            inline_bytes_max: 64 * 1024,
            command_bytes_max: value_bytes_max.saturating_add(1 << 20),
        }
    }
}

/// Input that is not a command within the limits. The connection answers
/// with [`ProtocolError::message`] and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProtocolError(String);

impl ProtocolError {
    /// The text of the error reply (after `-ERR `).
    pub(crate) fn message(&self) -> String {
        format!("Protocol error: {}", self.0)
    }
}

/// Takes one command from the front of `buf`: its arguments (the first is
/// the command's name), `Ok(None)` when `buf` holds no whole command yet.
/// An empty command (`*0`, a blank inline line) is `Some(vec![])`; skip it.
/// Consumes the command's bytes; leaves `buf` as it was otherwise.
pub(crate) fn parse_command(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == b'*' {
        parse_array(buf, limits)
    } else {
        parse_inline(buf, limits)
    }
}

/// A RESP array of bulk strings: `*N\r\n` then N times `$LEN\r\nBYTES\r\n`.
fn parse_array(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((count, mut pos)) = header(buf, 0, "multibulk")? else {
        return Ok(None);
    };
    if count <= 0 {
        // Redis ignores `*0` and `*-1` from clients.
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    let count = count as u64;
    if count > limits.args_max as u64 {
        return Err(ProtocolError(format!(
            "a command of {count} arguments, more than the limit of {}",
            limits.args_max
        )));
    }
    let mut ranges = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        if kind != b'$' {
            return Err(ProtocolError(format!(
                "expected '$' (a bulk string), got {:?}",
                char::from(kind)
            )));
        }
        let Some((len, start)) = header(buf, pos, "bulk")? else {
            return Ok(None);
        };
        if len < 0 || len as u64 > limits.bulk_bytes_max as u64 {
            return Err(ProtocolError(format!(
                "invalid bulk length {len}: arguments are 0 to {} bytes (the node's value limit)",
                limits.bulk_bytes_max
            )));
        }
        let end = start + len as usize;
        if end + 2 > limits.command_bytes_max {
            return Err(ProtocolError(format!(
                "a command of more than {} bytes; split it (e.g. several MSETs)",
                limits.command_bytes_max
            )));
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError(format!(
                "a bulk string of {len} bytes is not followed by CRLF"
            )));
        }
        ranges.push(start..end);
        pos = end + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(Some(ranges.into_iter().map(|r| frame.slice(r)).collect()))
}

/// The number of a header line (`*N\r\n` or `$N\r\n`) at `at`, and where
/// the line ends; `None` while the line is incomplete.
fn header(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[at + 1..];
    let window = &rest[..rest.len().min(HEADER_LINE_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if rest.len() >= HEADER_LINE_MAX {
            return Err(ProtocolError(format!("invalid {what} length (too long)")));
        }
        return Ok(None);
    };
    let Some(&lf) = rest.get(cr + 1) else {
        return Ok(None);
    };
    let invalid = || ProtocolError(format!("invalid {what} length"));
    if lf != b'\n' {
        return Err(invalid());
    }
    let n = parse_i64(&window[..cr]).ok_or_else(invalid)?;
    Ok(Some((n, at + 1 + cr + 2)))
}

/// A decimal number, strictly: an optional `-`, then digits; no blanks, no
/// `+`, no overflow.
fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

/// An inline command: a line of arguments separated by blanks (no quoting),
/// ended by `\n` or `\r\n`, as `redis-cli` and telnet users type them.
fn parse_inline(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let window = &buf[..buf.len().min(limits.inline_bytes_max + 1)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError(format!(
                "an inline command of more than {} bytes; send long commands as RESP arrays",
                limits.inline_bytes_max
            )));
        }
        return Ok(None);
    };
    let line = buf.split_to(lf + 1).freeze();
    let args: Vec<Bytes> = line[..lf]
        .split(|b| b.is_ascii_whitespace())
        .filter(|a| !a.is_empty())
        .map(|a| line.slice_ref(a))
        .collect();
    if args.len() > limits.args_max {
        return Err(ProtocolError(format!(
            "a command of {} arguments, more than the limit of {}",
            args.len(),
            limits.args_max
        )));
    }
    Ok(Some(args))
}

/// The protocol version a connection speaks (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    /// RESP2, what every connection starts with.
    Resp2,
    /// RESP3: typed nulls and maps.
    Resp3,
}

/// A reply, encoded per [`Proto`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`: a status.
    Simple(&'static str),
    /// `-CODE message`: `text` starts with its code (`ERR`, `NOAUTH`, ...).
    Error(String),
    /// `:N`.
    Int(i64),
    /// `$LEN` and bytes.
    Bulk(Bytes),
    /// No value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `*N` and the elements.
    Array(Vec<Reply>),
    /// `%N` and the pairs in RESP3; a flat array of 2N in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// An error reply with the generic code: `-ERR message`.
    pub(crate) fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// A bulk string of `s`.
    pub(crate) fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(Bytes::from(s.into()))
    }

    /// Appends the encoding of `self` in `proto` to `out`.
    pub(crate) fn encode(&self, proto: Proto, out: &mut BytesMut) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => line(out, b'-', e.as_bytes()),
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Null => match proto {
                Proto::Resp2 => out.put_slice(b"$-1\r\n"),
                Proto::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Proto::Resp2 => line(out, b'*', (2 * pairs.len()).to_string().as_bytes()),
                    Proto::Resp3 => line(out, b'%', pairs.len().to_string().as_bytes()),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
        }
    }
}

/// `kind`, `text` with any CR or LF made a blank (a status or an error is
/// one line), and CRLF.
fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: FrameLimits = FrameLimits {
        bulk_bytes_max: 64,
        args_max: 8,
        inline_bytes_max: 32,
        command_bytes_max: 200,
    };

    /// `args` as a client sends them: a RESP array of bulk strings.
    fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn parse_all(input: &[u8]) -> Result<(Vec<Vec<Bytes>>, usize), ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parse_command(&mut buf, &LIMITS)? {
            out.push(args);
        }
        Ok((out, buf.len()))
    }

    fn encoded(r: &Reply, proto: Proto) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(proto, &mut out);
        out.to_vec()
    }

    #[test]
    fn pipelined_commands_come_out_in_order_and_a_partial_one_waits() {
        let mut input = command(&[b"SET", b"k", b"v"]);
        input.extend(command(&[b"GET", b"k"]));
        input.extend(b"PING\r\n");
        input.extend(b"*2\r\n$3\r\nGET\r\n$1\r");
        let (cmds, left) = parse_all(&input).unwrap();
        assert_eq!(
            cmds,
            vec![
                vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
                vec![Bytes::from("GET"), Bytes::from("k")],
                vec![Bytes::from("PING")],
            ]
        );
        assert_eq!(left, "*2\r\n$3\r\nGET\r\n$1\r".len());
    }

    #[test]
    fn inline_commands_split_on_blanks() {
        let (cmds, left) = parse_all(b"set  k\tv\r\n\r\nping\nget").unwrap();
        assert_eq!(
            cmds,
            vec![
                vec![Bytes::from("set"), Bytes::from("k"), Bytes::from("v")],
                vec![],
                vec![Bytes::from("ping")],
            ]
        );
        assert_eq!(left, 3);
    }

    #[test]
    fn empty_arrays_are_empty_commands_and_binary_values_pass() {
        let (cmds, _) = parse_all(b"*0\r\n*-1\r\n").unwrap();
        assert_eq!(cmds, vec![Vec::<Bytes>::new(), vec![]]);
        let value: &[u8] = b"a\r\nb\0\xff";
        let (cmds, _) = parse_all(&command(&[b"SET", b"k", value])).unwrap();
        assert_eq!(cmds[0][2], value);
    }

    #[test]
    fn bad_frames_are_protocol_errors_that_say_what_was_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n+OK\r\n", "expected '$'"),
            (b"*1\r\n$-2\r\n", "invalid bulk length -2"),
            (b"*1\r\n$65\r\n", "invalid bulk length 65"),
            (b"*9\r\n", "9 arguments"),
            (b"*1\r\n$1\r\nab\r\n", "not followed by CRLF"),
            (b"*1\r\n$ 1\r\n", "invalid bulk length"),
            (b"*1\r\n$1\rx", "invalid bulk length"),
            (b"*99999999999999999999\r\n", "invalid multibulk length"),
            (b"*111111111111111111111111111111111111111", "too long"),
            (
                b"this inline command is far too long for the limit",
                "inline",
            ),
            (b"a b c d e f g h i\n", "9 arguments"),
        ];
        for (input, what) in cases {
            let err = parse_all(input).unwrap_err();
            assert!(
                err.message().contains(what),
                "{:?}: {} (wanted {what:?})",
                String::from_utf8_lossy(input),
                err.message()
            );
        }
        // Over the size of a whole command, though each bulk is in bounds.
        let big = [b'x'; 60];
        let err = parse_all(&command(&[&big, &big, &big, &big])).unwrap_err();
        assert!(err.message().contains("more than 200 bytes"), "{err:?}");
    }

    #[test]
    fn replies_encode_in_resp2_and_resp3() {
        let r = Reply::Array(vec![
            Reply::Simple("OK"),
            Reply::Error("ERR two\r\nlines".into()),
            Reply::Int(-3),
            Reply::Bulk(Bytes::from_static(b"v\r\n")),
            Reply::Null,
            Reply::Map(vec![(Reply::text("proto"), Reply::Int(3))]),
        ]);
        assert_eq!(
            encoded(&r, Proto::Resp2),
            b"*6\r\n+OK\r\n-ERR two  lines\r\n:-3\r\n$3\r\nv\r\n\r\n$-1\r\n*2\r\n$5\r\nproto\r\n:3\r\n"
        );
        assert_eq!(
            encoded(&r, Proto::Resp3),
            b"*6\r\n+OK\r\n-ERR two  lines\r\n:-3\r\n$3\r\nv\r\n\r\n_\r\n%1\r\n$5\r\nproto\r\n:3\r\n"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_never_read_past_the_input(
            input in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut buf = BytesMut::from(&input[..]);
            for _ in 0..input.len() + 1 {
                match parse_command(&mut buf, &LIMITS) {
                    Ok(Some(args)) => {
                        prop_assert!(args.len() <= LIMITS.args_max);
                        prop_assert!(args.iter().all(|a| a.len() <= LIMITS.inline_bytes_max.max(LIMITS.bulk_bytes_max)));
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn framed_random_bytes_never_panic(
            head in prop::sample::select(vec![&b"*"[..], b"*1\r\n$", b"*2\r\n$3\r\nGET\r\n$", b"$", b"*3\r\n"]),
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut input = head.to_vec();
            input.extend(tail);
            let _ = parse_all(&input);
        }

        #[test]
        fn commands_parse_back_whole_however_the_bytes_arrive(
            cmds in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
                1..5,
            ),
            chunk in 1usize..64,
        ) {
            let mut input = Vec::new();
            for c in &cmds {
                let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                input.extend(command(&args));
            }
            // Fed in chunks, as reads deliver them.
            let mut buf = BytesMut::new();
            let mut parsed = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(args) = parse_command(&mut buf, &LIMITS).unwrap() {
                    parsed.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(parsed, cmds);
        }
    }
}
