//! The Markdown file the suite writes (docs/benchmarks.md by default): one
//! section per `--label` between marker comments. Running the suite again
//! with a label replaces that section and keeps everything else, so results
//! before and after a change sit side by side.

use std::path::Path;

use anyhow::{Context as _, bail};

/// Refuses a label that cannot name a section: empty, several lines, or
/// containing the `-->` that would end its marker comment.
pub(super) fn check_label(label: &str) -> anyhow::Result<()> {
    if label.trim().is_empty() || label.contains("-->") || label.contains('\n') {
        bail!("--label must be a non-empty single line without \"-->\"");
    }
    Ok(())
}

/// The top of a new Markdown file, before the first section.
const HEADER: &str = "# ringkv benchmarks

Written by `ringkv bench suite` (see `ringkv bench suite --help`). Each section below is one
run of the suite, named by its `--label`; running the suite again with the same label
replaces that section and keeps the others, so results before and after a change sit side
by side. The suite starts a 3-node cluster (N=3, R=2, W=2), a 1-node cluster (N=1) and the
HTTP ceiling server on loopback, and measures all of them with the same load generator
(`ringkv bench`) in one session. Reproduce with:

```sh
cargo build --release
cargo build --release --manifest-path bench/http-ceiling/Cargo.toml
./target/release/ringkv bench suite --label \"my change\"
```
";

/// The comments that open and close the section of `label`.
fn markers(label: &str) -> (String, String) {
    (
        format!("<!-- ringkv-bench-suite:begin {label} -->"),
        format!("<!-- ringkv-bench-suite:end {label} -->"),
    )
}

/// Replaces (or appends) the section of `label` in `path`, keeping the rest.
pub(super) fn write_markdown(path: &Path, label: &str, section: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = splice(old.as_deref(), label, section);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `old` (the file's text, `None` if there is no file yet) with the
/// section of `label` replaced by `section`, or appended when it has none.
pub(super) fn splice(old: Option<&str>, label: &str, section: &str) -> String {
    let (begin, end) = markers(label);
    let block = format!("{begin}\n{section}{end}\n");
    let Some(old) = old else {
        return format!("{HEADER}\n{block}");
    };
    if let Some(b) = old.find(&begin)
        && let Some(e) = old[b..].find(&end)
    {
        let after = b + e + end.len();
        let rest = old[after..].strip_prefix('\n').unwrap_or(&old[after..]);
        return format!("{}{block}{rest}", &old[..b]);
    }
    let sep = if old.ends_with("\n\n") || old.is_empty() {
        ""
    } else if old.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{old}{sep}{block}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_by_label_and_others_kept() {
        let first = splice(None, "before", "A\n");
        assert!(first.starts_with("# ringkv benchmarks"));
        assert!(first.contains(
            "<!-- ringkv-bench-suite:begin before -->\nA\n<!-- ringkv-bench-suite:end before -->\n"
        ));
        let second = splice(Some(&first), "after", "B\n");
        assert!(second.contains("A\n") && second.contains("B\n"));
        let third = splice(Some(&second), "before", "C\n");
        assert!(!third.contains("\nA\n") && third.contains("C\n") && third.contains("B\n"));
        assert!(
            third.find("C\n").unwrap() < third.find("B\n").unwrap(),
            "order kept"
        );
        assert_eq!(splice(Some(&third), "before", "C\n"), third, "idempotent");
    }

    #[test]
    fn a_file_without_the_label_gets_it_appended_after_a_blank_line() {
        let block = "<!-- ringkv-bench-suite:begin x -->\nX\n<!-- ringkv-bench-suite:end x -->\n";
        assert_eq!(splice(Some("# t"), "x", "X\n"), format!("# t\n\n{block}"));
        assert_eq!(splice(Some("# t\n"), "x", "X\n"), format!("# t\n\n{block}"));
        assert_eq!(
            splice(Some("# t\n\n"), "x", "X\n"),
            format!("# t\n\n{block}")
        );
        assert_eq!(splice(Some(""), "x", "X\n"), block);
    }

    #[test]
    fn a_section_without_its_end_marker_is_left_alone() {
        let broken = "<!-- ringkv-bench-suite:begin x -->\nold\n";
        let out = splice(Some(broken), "x", "new\n");
        assert!(out.starts_with(broken) && out.contains("new\n"), "{out}");
    }

    #[test]
    fn labels_must_fit_in_a_marker() {
        assert!(check_label("before optimisation").is_ok());
        assert!(check_label(" ").is_err());
        assert!(check_label("a\nb").is_err());
        assert!(check_label("a --> b").is_err());
    }

    #[test]
    fn the_file_is_written_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs").join("benchmarks.md");
        write_markdown(&path, "one", "1\n").unwrap();
        write_markdown(&path, "two", "2\n").unwrap();
        write_markdown(&path, "one", "3\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("3\n") && text.contains("2\n") && !text.contains("\n1\n"));
    }
}
