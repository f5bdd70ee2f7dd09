//! Bearer tokens for the HTTP API, with per-bucket permissions
//! (`ringkv server --token-file FILE`).
//!
//! # The token file
//! TOML, one `[[token]]` table per client:
//!
//! ```toml
//! [[token]]
//! name = "carts-service"             # shown in logs and errors, never the secret
//! secret = "kq3V...at least 16 characters..."
//! permissions = ["read:carts", "write:carts"]
//!
//! [[token]]
//! name = "ops"
//! secret = "..."
//! permissions = ["*"]
//! ```
//!
//! Permissions:
//! - `read:BUCKET`: `GET`/`HEAD` of the bucket's keys; `write:BUCKET`: `PUT`
//!   and `DELETE` of them. `BUCKET` may be `*` (every bucket); a bucket name
//!   is matched as its bytes, percent-decoded as in paths.
//! - `admin`: changing bucket properties (`PUT /v1/buckets/{bucket}`) and the
//!   admin routes (`/v1/admin/...`, fault injection).
//! - `*`: everything.
//!
//! Any valid token may read the cluster's own pages (`/v1/cluster`,
//! `/v1/ring`, `/metrics`, bucket properties); `/health` needs none. A
//! request without a valid token is `401`, one whose token lacks the
//! permission `403`; both are JSON errors like every other.
//!
//! Tokens are looked up by a BLAKE3 hash of the presented secret, so the
//! time a lookup takes does not depend on how much of a secret a guess got
//! right.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use axum::http::Method;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// Shortest secret accepted, in bytes.
pub const SECRET_LEN_MIN: usize = 16;

/// The contents of a token file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// One `[[token]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    secret: String,
    permissions: Vec<String>,
}

/// One permission of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Permission {
    /// `*`: everything.
    All,
    /// `admin`: bucket properties, admin routes.
    Admin,
    /// `read:BUCKET` (`None`: every bucket).
    Read(Option<Vec<u8>>),
    /// `write:BUCKET` (`None`: every bucket).
    Write(Option<Vec<u8>>),
}

impl Permission {
    /// Parses `*`, `admin`, `read:BUCKET` or `write:BUCKET`.
    fn parse(s: &str) -> Result<Self, String> {
        let bucket = |b: &str| {
            if b.is_empty() {
                Err(format!(
                    "permission {s:?} names no bucket; write e.g. read:carts or read:*"
                ))
            } else if b == "*" {
                Ok(None)
            } else {
                Ok(Some(b.as_bytes().to_vec()))
            }
        };
        match s.split_once(':') {
            None if s == "*" => Ok(Permission::All),
            None if s == "admin" => Ok(Permission::Admin),
            Some(("read", b)) => Ok(Permission::Read(bucket(b)?)),
            Some(("write", b)) => Ok(Permission::Write(bucket(b)?)),
            _ => Err(format!(
                "unknown permission {s:?}; use read:BUCKET, write:BUCKET (BUCKET may be *), admin or *"
            )),
        }
    }
}

/// A client known by its token.
#[derive(Clone, Debug)]
struct Principal {
    name: String,
    permissions: Vec<Permission>,
}

/// What a request needs, from its method and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing (`/health`).
    Open,
    /// Any valid token (cluster pages, bucket properties).
    Any,
    /// `read:` on this bucket.
    Read(Vec<u8>),
    /// `write:` on this bucket.
    Write(Vec<u8>),
    /// `admin`.
    Admin,
}

impl Need {
    /// What `method` on `path` needs.
    pub(crate) fn of(method: &Method, path: &str) -> Need {
        if path == "/health" {
            return Need::Open;
        }
        if let Some(rest) = path.strip_prefix("/v1/kv/") {
            let bucket: Vec<u8> =
                percent_decode_str(rest.split('/').next().unwrap_or("")).collect();
            return if matches!(*method, Method::GET | Method::HEAD) {
                Need::Read(bucket)
            } else {
                Need::Write(bucket)
            };
        }
        if path.starts_with("/v1/admin/") || path == "/v1/admin" {
            return Need::Admin;
        }
        if path.starts_with("/v1/buckets") && !matches!(*method, Method::GET | Method::HEAD) {
            return Need::Admin;
        }
        Need::Any
    }

    /// The permission to name in a refusal.
    fn describe(&self) -> String {
        match self {
            Need::Open | Need::Any => "a valid token".into(),
            Need::Read(b) => format!("read:{}", String::from_utf8_lossy(b)),
            Need::Write(b) => format!("write:{}", String::from_utf8_lossy(b)),
            Need::Admin => "admin".into(),
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token, or one the file does not list: `401`.
    Unauthenticated(String),
    /// A known token without the permission: `403`.
    Forbidden(String),
}

/// The tokens of a token file.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// By BLAKE3 hash of the secret.
    by_hash: HashMap<[u8; 32], Principal>,
}

impl Tokens {
    /// Reads and checks a token file.
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        Tokens::parse(&text)
            .map_err(|e| anyhow::anyhow!("the token file {} is not valid: {e}", path.display()))
    }

    /// Parses the text of a token file; every problem is an error naming
    /// the token (never its secret).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let file: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.token.is_empty() {
            return Err(
                "it lists no token; add [[token]] tables with name, secret and permissions".into(),
            );
        }
        let mut by_hash = HashMap::new();
        let mut names = std::collections::BTreeSet::new();
        for t in file.token {
            if t.name.is_empty() || !names.insert(t.name.clone()) {
                return Err(format!(
                    "token name {:?} is empty or given twice; name each token once",
                    t.name
                ));
            }
            if t.secret.len() < SECRET_LEN_MIN || t.secret.trim() != t.secret {
                return Err(format!(
                    "the secret of token {:?} is shorter than {SECRET_LEN_MIN} characters or has \
                     blanks around it; use a long random string",
                    t.name
                ));
            }
            let permissions = t
                .permissions
                .iter()
                .map(|p| Permission::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("token {:?}: {e}", t.name))?;
            let principal = Principal {
                name: t.name.clone(),
                permissions,
            };
            if by_hash
                .insert(*blake3::hash(t.secret.as_bytes()).as_bytes(), principal)
                .is_some()
            {
                return Err(format!(
                    "token {:?} has the same secret as another token; give each its own",
                    t.name
                ));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Whether the `Authorization` header value `auth` allows `need`;
    /// the name of the token when it does.
    pub(crate) fn check(&self, auth: Option<&[u8]>, need: &Need) -> Result<Option<&str>, Denied> {
        if *need == Need::Open {
            return Ok(None);
        }
        let Some(auth) = auth else {
            return Err(Denied::Unauthenticated(
                "this node requires a bearer token: send the header `Authorization: Bearer \
                 <token>` (ringkv --token or RINGKV_TOKEN)"
                    .into(),
            ));
        };
        let secret = auth
            .strip_prefix(b"Bearer ")
            .or_else(|| auth.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Denied::Unauthenticated(
                    "the Authorization header is not `Bearer <token>`; send the token as a \
                     bearer token"
                        .into(),
                )
            })?;
        let hash = blake3::hash(trim_ascii(secret));
        let principal = self.by_hash.get(hash.as_bytes()).ok_or_else(|| {
            Denied::Unauthenticated(
                "the bearer token is not one this node knows; check --token or RINGKV_TOKEN".into(),
            )
        })?;
        if principal.permissions.iter().any(|p| allows(p, need)) {
            Ok(Some(&principal.name))
        } else {
            Err(Denied::Forbidden(format!(
                "token {:?} lacks the permission {} this request needs; ask for it to be added \
                 to the token file",
                principal.name,
                need.describe()
            )))
        }
    }
}

/// `s` without ASCII blanks around it.
fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Whether `p` grants `need`.
fn allows(p: &Permission, need: &Need) -> bool {
    let bucket_ok =
        |granted: &Option<Vec<u8>>, asked: &[u8]| granted.as_deref().is_none_or(|g| g == asked);
    match (p, need) {
        (_, Need::Open | Need::Any) | (Permission::All, _) => true,
        (Permission::Admin, Need::Admin) => true,
        (Permission::Read(g), Need::Read(b)) => bucket_ok(g, b),
        (Permission::Write(g), Need::Write(b)) => bucket_ok(g, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[token]]
        name = "carts"
        secret = "carts-secret-0123456789"
        permissions = ["read:carts", "write:carts", "read:catalog"]

        [[token]]
        name = "ops"
        secret = "ops-secret-0123456789"
        permissions = ["admin", "read:*"]

        [[token]]
        name = "root"
        secret = "root-secret-0123456789"
        permissions = ["*"]
    "#;

    fn bearer(s: &str) -> Vec<u8> {
        format!("Bearer {s}").into_bytes()
    }

    #[test]
    fn permissions_decide_per_route() {
        let t = Tokens::parse(FILE).unwrap();
        let carts = bearer("carts-secret-0123456789");
        let ops = bearer("ops-secret-0123456789");
        let root = bearer("root-secret-0123456789");
        let check = |auth: &[u8], m: Method, p: &str| t.check(Some(auth), &Need::of(&m, p));
        assert_eq!(
            check(&carts, Method::GET, "/v1/kv/carts/k"),
            Ok(Some("carts"))
        );
        assert!(check(&carts, Method::PUT, "/v1/kv/carts/k").is_ok());
        assert!(check(&carts, Method::GET, "/v1/kv/catalog/k").is_ok());
        assert!(matches!(
            check(&carts, Method::PUT, "/v1/kv/catalog/k"),
            Err(Denied::Forbidden(m)) if m.contains("write:catalog") && m.contains("\"carts\"")
        ));
        assert!(check(&carts, Method::GET, "/v1/cluster").is_ok());
        assert!(check(&carts, Method::PUT, "/v1/buckets/carts").is_err());
        assert!(check(&carts, Method::PUT, "/v1/admin/faults/n2").is_err());
        assert!(check(&ops, Method::GET, "/v1/kv/anything/k").is_ok());
        assert!(check(&ops, Method::DELETE, "/v1/kv/anything/k").is_err());
        assert!(check(&ops, Method::PUT, "/v1/buckets/carts").is_ok());
        assert!(check(&ops, Method::DELETE, "/v1/admin/faults").is_ok());
        assert!(check(&root, Method::DELETE, "/v1/kv/x/k").is_ok());
        assert!(check(&root, Method::PUT, "/v1/admin/faults/n2").is_ok());
        // Percent-encoded bucket names match their bytes.
        assert!(check(&carts, Method::GET, "/v1/kv/c%61rts/k").is_ok());
        // No token, a wrong one, or another scheme: 401; /health is open.
        for auth in [
            None,
            Some(&b"Bearer nope-nope-nope-nope"[..]),
            Some(&b"Basic abc"[..]),
        ] {
            assert!(matches!(
                t.check(auth, &Need::of(&Method::GET, "/v1/cluster")),
                Err(Denied::Unauthenticated(_))
            ));
        }
        assert_eq!(t.check(None, &Need::of(&Method::GET, "/health")), Ok(None));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let bad = |text: &str, want: &str| {
            let err = Tokens::parse(text).unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(
                !err.contains("0123456789abcdef"),
                "the secret leaked: {err}"
            );
        };
        bad("", "no token");
        bad(
            "[[token]]\nname=\"a\"\nsecret=\"short\"\npermissions=[]",
            "shorter than 16",
        );
        bad(
            "[[token]]\nname=\"a\"\nsecret=\"0123456789abcdef\"\npermissions=[\"red:x\"]",
            "unknown permission",
        );
        bad(
            "[[token]]\nname=\"a\"\nsecret=\"0123456789abcdef\"\npermissions=[\"read:\"]",
            "names no bucket",
        );
        bad(
            "[[token]]\nname=\"a\"\nsecret=\"0123456789abcdef\"\npermissions=[]\n\
             [[token]]\nname=\"b\"\nsecret=\"0123456789abcdef\"\npermissions=[]",
            "same secret",
        );
        bad(
            "[[token]]\nname=\"a\"\nsecret=\"0123456789abcdef\"\npermissions=[]\n\
             [[token]]\nname=\"a\"\nsecret=\"0123456789abcdefg\"\npermissions=[]",
            "given twice",
        );
        bad("[[token]]\nname=\"a\"\ntoken=\"x\"", "unknown field");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary text is tokens or an error that says why, never a panic.
        #[test]
        fn arbitrary_token_files_are_refused_with_a_reason(text in "\\PC{0,200}") {
            if let Err(e) = Tokens::parse(&text) {
                proptest::prop_assert!(!e.is_empty());
            }
        }

        /// The valid file with a slice cut out and TOML-ish text put in.
        #[test]
        fn damaged_token_files_are_refused_with_a_reason(
            from in 0..FILE.len(),
            len in 0usize..40,
            insert in proptest::sample::select(vec![
                "", "\"", "[", "]]", "=", "\n", "[[token]]", "read:", "*", "\\u{0}", "\u{1F600}", "permissions = []",
            ]),
        ) {
            let to = (from + len).min(FILE.len());
            let text = format!("{}{insert}{}", &FILE[..from], &FILE[to..]);
            match Tokens::parse(&text) {
                Ok(t) => proptest::prop_assert!(!t.by_hash.is_empty()),
                Err(e) => proptest::prop_assert!(!e.is_empty()),
            }
        }
    }
}
