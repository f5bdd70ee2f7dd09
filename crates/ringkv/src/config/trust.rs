//! The trust settings of `ringkv server`: the cluster secret that signs
//! context tokens (`--context-secret-file`), the client bearer tokens
//! (`--token-file`) and the HTTP API's TLS identity (`--http-cert`,
//! `--http-key`, checked when the node starts). Each flag wins over the file's key; the files are read
//! once, at start, and a file that is missing or invalid stops the node.

use std::sync::Arc;

use ringkv_server::Config;
use ringkv_server::auth::Tokens;
use ringkv_server::config::load_context_keys;

use super::FileConfig;
use crate::cli::ServerArgs;

/// Loads the files named by the flags (or the config file) into `config`.
pub(crate) fn load_trust(
    flags: &ServerArgs,
    file: &FileConfig,
    config: &mut Config,
) -> anyhow::Result<()> {
    let secret = flags
        .context_secret_file
        .as_ref()
        .or(file.context_secret_file.as_ref());
    if let Some(path) = secret {
        config.context_keys = Some(load_context_keys(path)?);
    }
    let tokens = flags.token_file.as_ref().or(file.token_file.as_ref());
    if let Some(path) = tokens {
        config.tokens = Some(Arc::new(Tokens::load(path)?));
    }
    let (cert, key) = match (&flags.http_cert, &flags.http_key) {
        (Some(c), Some(k)) => (Some(c), Some(k)),
        _ => (file.http_cert.as_ref(), file.http_key.as_ref()),
    };
    config.http_tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => anyhow::bail!("http_cert and http_key go together: give both, or neither"),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::with_identity;
    use super::super::{merge, parse_file};
    use super::*;

    #[test]
    fn the_files_come_from_the_flags_or_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("cluster.secret");
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&secret, "ab".repeat(32)).unwrap();
        std::fs::write(
            &tokens,
            "[[token]]\nname = \"app\"\nsecret = \"0123456789abcdef\"\npermissions = [\"*\"]\n",
        )
        .unwrap();
        let flags = with_identity(&[]);
        let none = FileConfig::default();
        let mut c = merge(&flags, &none).unwrap();
        load_trust(&flags, &none, &mut c).unwrap();
        assert!(c.context_keys.is_none() && c.tokens.is_none());
        let file = parse_file(&format!(
            "context_secret_file = {:?}\ntoken-file = {:?}",
            secret.display().to_string(),
            tokens.display().to_string()
        ))
        .unwrap();
        load_trust(&flags, &file, &mut c).unwrap();
        assert!(c.context_keys.is_some() && c.tokens.is_some());
        // A flag naming a missing file wins over the file's key, and fails.
        let missing = dir.path().join("nope").display().to_string();
        let bad = super::super::testing::flags(&[
            "--node-id",
            "n1",
            "--data-dir",
            "/d",
            "--listen",
            "127.0.0.1:1",
            "--http",
            "127.0.0.1:2",
            "--token-file",
            missing.as_str(),
        ]);
        let err = load_trust(&bad, &file, &mut c).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
