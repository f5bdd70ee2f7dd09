//! Scenario files are user input: arbitrary text, the example scenarios
//! damaged, and valid ones with extreme numbers are a scenario or an error
//! with a message, never a panic.

use proptest::prelude::*;
use ringkv_sim::scenario::Scenario;

const EXAMPLES: [&str; 5] = [
    include_str!("../../../scenarios/basic.toml"),
    include_str!("../../../scenarios/faults.toml"),
    include_str!("../../../scenarios/partitions.toml"),
    include_str!("../../../scenarios/pbs.toml"),
    include_str!("../../../scenarios/sloppy.toml"),
];

/// Parses `text`; an error must say something.
fn parse(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Scenario::from_toml(text) {
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

/// Replaces the `nth` number in `text` (`nth` modulo their count) with `with`.
fn replace_number(text: &str, nth: usize, with: &str) -> String {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let numeric = c.is_ascii_digit() || c == '.';
        match (numeric, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    let (s, e) = spans[nth % spans.len()];
    format!("{}{with}{}", &text[..s], &text[e..])
}

#[test]
fn the_examples_parse() {
    for text in EXAMPLES {
        Scenario::from_toml(text).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_refused_with_a_message(text in "\\PC{0,200}") {
        parse(&text)?;
    }

    #[test]
    fn damaged_examples_are_refused_with_a_message(
        which in any::<prop::sample::Index>(),
        from in any::<prop::sample::Index>(),
        len in 0usize..40,
        insert in prop::sample::select(vec![
            "", "\"", "[", "]]", "=", "\n", "{", "}", ",", "[network]", "kind = \"x\"", "-",
        ]),
    ) {
        let text = *which.get::<&str>(&EXAMPLES);
        let from = from.index(text.len());
        let to = (from + len).min(text.len());
        if text.is_char_boundary(from) && text.is_char_boundary(to) {
            parse(&format!("{}{insert}{}", &text[..from], &text[to..]))?;
        }
    }

    /// Every number of an example replaced by an extreme or odd one.
    #[test]
    fn extreme_numbers_are_refused_with_a_message(
        which in any::<prop::sample::Index>(),
        nth in any::<usize>(),
        with in prop_oneof![
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("1e308".to_string()),
            Just("9223372036854775807".to_string()),
            Just("0.000001".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
        ],
    ) {
        parse(&replace_number(which.get::<&str>(&EXAMPLES), nth, &with))?;
    }
}
