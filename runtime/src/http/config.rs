//! The node configuration file (`node.toml`): where the API listens, its
//! limits, and the tokens it accepts (hashed).
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:7878"
//!
//! [[tokens]]
//! id = "hq-admin"
//! role = "admin"          # viewer | operator | engineer | admin
//! scope = "acme"          # the subtree the token sees
//! sha256 = "9f86d0…"      # hash of the secret; the secret itself is never stored
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use twins::TwinPath;

use super::auth::{Role, TokenInfo, Tokens, generate_secret, hash_token, parse_hash};
use twins::store::hex;

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// `[http]`: every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address to listen on; loopback unless you mean otherwise.
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: String,
    /// Time a client has to send its request body.
    pub body_timeout: String,
    /// Time a client may take no bytes of its answer before it is cut off.
    pub write_timeout: String,
    /// Between heartbeat comments on live streams.
    pub sse_heartbeat: String,
    /// How often a live client gets the latest state of each changed twin.
    pub sse_coalesce: String,
    /// Events queued for one live client before it starts losing them.
    pub sse_queue: usize,
    /// Recent changes kept for clients that resume with `Last-Event-ID`.
    pub sse_buffer: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            max_connections: 1024,
            header_timeout: "10s".into(),
            body_timeout: "30s".into(),
            write_timeout: "30s".into(),
            sse_heartbeat: "15s".into(),
            sse_coalesce: "250ms".into(),
            sse_queue: 1024,
            sse_buffer: 65_536,
        }
    }
}

/// `[[tokens]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub id: String,
    pub role: Role,
    pub scope: String,
    pub sha256: String,
}

/// The HTTP layer's settings, validated.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub sse_heartbeat: Duration,
    pub sse_coalesce: Duration,
    pub sse_queue: usize,
    pub sse_buffer: usize,
    pub tokens: Tokens,
}

impl HttpConfig {
    /// Settings with defaults and the given tokens (for tests and embedding).
    pub fn with_tokens(tokens: Tokens) -> Self {
        let file = NodeFile::default();
        let mut c = file
            .validate(Path::new("<defaults>"), None)
            .expect("the defaults are valid");
        c.tokens = tokens;
        c
    }
}

impl NodeFile {
    /// Reads and parses a node configuration file.
    pub fn read(path: &Path) -> anyhow::Result<NodeFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the node configuration `{}`", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            .context("the node configuration is invalid")
    }

    /// Writes the file, readable by its owner only (it names every token).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = String::from(
            "# twinrt node configuration. Tokens are stored as SHA-256 hashes only;\n\
             # add one with `twinrt token add ID --role ROLE --scope PATH`.\n\n",
        );
        text.push_str(&toml::to_string_pretty(self).context("cannot encode the configuration")?);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict `{}`", tmp.display()))?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace `{}`", path.display()))?;
        Ok(())
    }

    /// Checks every field; `root` is the model's root path, if known (every
    /// token's scope must lie within it).
    pub fn validate(&self, path: &Path, root: Option<&TwinPath>) -> anyhow::Result<HttpConfig> {
        let at = path.display();
        let dur = |name: &str, text: &str| -> anyhow::Result<Duration> {
            twins::model::parse_duration(text).ok_or_else(|| {
                anyhow::anyhow!(
                    "{at}: [http] {name} = \"{text}\" is not a duration (\"10s\", \"250ms\")"
                )
            })
        };
        let h = &self.http;
        if h.max_connections == 0 || h.sse_queue == 0 || h.sse_buffer == 0 {
            bail!("{at}: [http] max_connections, sse_queue and sse_buffer must be at least 1");
        }
        let mut tokens = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for t in &self.tokens {
            if !ids.insert(t.id.as_str()) {
                bail!("{at}: token id `{}` appears twice", t.id);
            }
            let scope = TwinPath::parse(t.scope.trim_end_matches("/**")).map_err(|e| {
                anyhow::anyhow!(
                    "{at}: token `{}`: scope `{}` is not a twin path: {e}",
                    t.id,
                    t.scope
                )
            })?;
            if let Some(root) = root
                && !scope.is_within(root)
            {
                bail!(
                    "{at}: token `{}`: scope `{scope}` is not within the model's root `{root}`",
                    t.id
                );
            }
            let hash = parse_hash(&t.sha256).ok_or_else(|| {
                anyhow::anyhow!(
                    "{at}: token `{}`: sha256 must be 64 hex digits (the hash, not the token)",
                    t.id
                )
            })?;
            tokens.push((
                hash,
                TokenInfo {
                    id: t.id.clone(),
                    role: t.role,
                    scope,
                },
            ));
        }
        Ok(HttpConfig {
            listen: h.listen,
            max_connections: h.max_connections,
            header_timeout: dur("header_timeout", &h.header_timeout)?,
            body_timeout: dur("body_timeout", &h.body_timeout)?,
            write_timeout: dur("write_timeout", &h.write_timeout)?,
            sse_heartbeat: dur("sse_heartbeat", &h.sse_heartbeat)?,
            sse_coalesce: dur("sse_coalesce", &h.sse_coalesce)?,
            sse_queue: h.sse_queue,
            sse_buffer: h.sse_buffer,
            tokens: Tokens::new(tokens),
        })
    }

    /// Adds a token and returns its secret (shown once, never stored).
    pub fn add_token(&mut self, id: &str, role: Role, scope: &TwinPath) -> anyhow::Result<String> {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!("token id `{id}`: use letters, digits, `-`, `_` and `.`");
        }
        if self.tokens.iter().any(|t| t.id == id) {
            bail!("a token with id `{id}` exists already");
        }
        let secret = generate_secret();
        self.tokens.push(TokenEntry {
            id: id.to_string(),
            role,
            scope: scope.to_string(),
            sha256: hex(&hash_token(&secret)),
        });
        Ok(secret)
    }
}

/// The configuration a node starts with, and the secret of an admin token
/// made for this start if there was none.
#[derive(Debug)]
pub struct Loaded {
    pub config: HttpConfig,
    /// Set when an admin token was generated: print it once.
    pub generated: Option<String>,
    /// The file it came from (`None`: in memory only).
    pub path: Option<PathBuf>,
}

/// Loads the node configuration at `path`, creating it at first start with
/// an admin token for the whole company. Without a path (an in-memory
/// node), a fresh admin token is made for this run only.
pub fn load_or_init(path: Option<&Path>, root: &TwinPath) -> anyhow::Result<Loaded> {
    let Some(path) = path else {
        let mut file = NodeFile::default();
        let secret = file.add_token("admin", Role::Admin, root)?;
        return Ok(Loaded {
            config: file.validate(Path::new("<in memory>"), Some(root))?,
            generated: Some(secret),
            path: None,
        });
    };
    let mut file = if path.exists() {
        NodeFile::read(path)?
    } else {
        NodeFile::default()
    };
    let mut generated = None;
    if file.tokens.is_empty() {
        generated = Some(file.add_token("admin", Role::Admin, root)?);
        file.write(path)?;
    }
    let config = file.validate(path, Some(root))?;
    Ok(Loaded {
        config,
        generated,
        path: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_a_hashed_admin_token_and_later_starts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let root = TwinPath::parse("acme").unwrap();
        let first = load_or_init(Some(&path), &root).unwrap();
        let secret = first
            .generated
            .expect("a token is generated at first start");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret), "the secret must not be stored");
        assert!(text.contains(&hex(&hash_token(&secret))));
        let tok = first.config.tokens.lookup(&secret).unwrap();
        assert_eq!((tok.id.as_str(), tok.role), ("admin", Role::Admin));
        let again = load_or_init(Some(&path), &root).unwrap();
        assert!(again.generated.is_none());
        assert!(again.config.tokens.lookup(&secret).is_some());
    }

    #[test]
    fn invalid_files_are_reported_with_the_file_and_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let root = TwinPath::parse("acme").unwrap();
        std::fs::write(
            &path,
            "[[tokens]]\nid = \"east\"\nrole = \"viewer\"\nscope = \"other/east\"\nsha256 = \"00\"\n",
        )
        .unwrap();
        let e = format!("{:#}", load_or_init(Some(&path), &root).unwrap_err());
        assert!(e.contains("node.toml") && e.contains("token `east`"), "{e}");
        std::fs::write(&path, "[http]\nlisten = \"nowhere\"\n").unwrap();
        let e = format!("{:#}", load_or_init(Some(&path), &root).unwrap_err());
        assert!(e.contains("node.toml") && e.contains("listen"), "{e}");
        std::fs::write(&path, "[http]\nheader_timeout = \"soon\"\n").unwrap();
        let e = format!("{:#}", load_or_init(Some(&path), &root).unwrap_err());
        assert!(e.contains("header_timeout"), "{e}");
    }
}
