//! The config file given with `--config` is operator input: arbitrary
//! text, the documented example damaged, and the example with odd numbers
//! are a config or an error with a message, never a panic, through
//! parsing, merging with the flags and the checks a node runs at start.

use proptest::prelude::*;

use super::testing::flags;
use super::{merge, parse_file, validate, warnings};

/// The example of the module documentation.
const EXAMPLE: &str = r#"
node_id = "n1"
data_dir = "/var/lib/ringkv/n1"
listen = "127.0.0.1:7081"
http = "127.0.0.1:8081"
initial_cluster = "n1=127.0.0.1:7081,n2=127.0.0.1:7082,n3=127.0.0.1:7083"
ring_size = 64
n = 3
r = 2
w = 2
sync = "periodic"
sync_interval_ms = 100
timeout_ms = 5000
key_bytes_max = 1024
value_bytes_max = 4194304
bucket_bytes_max = 255
pending_max = 10000
hints_max = 1000000
buckets_max = 10000
runtime_threads = 1
join = ["10.0.0.1:7081", "10.0.0.2:7081"]
certs = "/etc/ringkv/certs"
peer_connections_max = 256
context_secret_file = "/etc/ringkv/cluster.secret"
token_file = "/etc/ringkv/tokens.toml"
http_cert = "/etc/ringkv/n1.crt"
http_key = "/etc/ringkv/n1.key"
"#;

/// Everything `ringkv server --config FILE` does with the text before it
/// opens a file or a socket; every error must say something.
fn check(text: &str) -> Result<(), TestCaseError> {
    let file = match parse_file(text) {
        Ok(f) => f,
        Err(e) => {
            let message = format!("{e:#}");
            prop_assert!(!message.is_empty());
            return Ok(());
        }
    };
    match merge(&flags(&[]), &file) {
        Ok(c) => {
            if let Err(e) = validate(&c) {
                prop_assert!(!e.to_string().is_empty());
            }
            let _ = warnings(&c);
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Replaces the `nth` run of digits in `text` (`nth` modulo their count),
/// in numbers, addresses and ports alike, with `with`.
fn replace_digits(text: &str, nth: usize, with: &str) -> String {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    let (s, e) = spans[nth % spans.len()];
    format!("{}{with}{}", &text[..s], &text[e..])
}

#[test]
fn the_example_is_valid() {
    let c = merge(&flags(&[]), &parse_file(EXAMPLE).unwrap()).unwrap();
    validate(&c).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_refused_with_a_message(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn damaged_examples_are_refused_with_a_message(
        from in 0..EXAMPLE.len(),
        len in 0usize..40,
        insert in prop::sample::select(vec![
            "", "\"", "[", "]]", "=", "\n", "{", ",", "-", "[initial_cluster]", "n1 = \"x\"", "0x",
        ]),
    ) {
        let to = (from + len).min(EXAMPLE.len());
        check(&format!("{}{insert}{}", &EXAMPLE[..from], &EXAMPLE[to..]))?;
    }

    #[test]
    fn odd_numbers_are_refused_with_a_message(
        nth in any::<usize>(),
        with in prop_oneof![
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("99999".to_string()),
            Just("18446744073709551615".to_string()),
            Just("9223372036854775807".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u32>().prop_map(|i| i.to_string()),
        ],
    ) {
        check(&replace_digits(EXAMPLE, nth, &with))?;
    }
}
