//! Tokens, roles and scopes.
//!
//! A token is a random secret given to a person or system once; the node
//! configuration keeps only its SHA-256 hash, with an id (named in the audit
//! log), a [`Role`] and a scope (a subtree). Secrets are 256 random bits, so
//! one unsalted hash suffices: there is nothing to guess by dictionary.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twins::TwinPath;
use utoipa::ToSchema;

use super::error::ApiError;
use super::glob::Glob;

/// What a token may do; each role may do everything the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads twins, history, journal, alarms and live streams.
    Viewer,
    /// Also acknowledges and shelves alarms and writes setpoints.
    Operator,
    /// Also takes alarms out of service.
    Engineer,
    /// Also reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Engineer, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configured token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub role: Role,
    /// The subtree the token may see.
    pub scope: TwinPath,
}

/// The SHA-256 of a token's secret, as stored in the node configuration.
pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Parses 64 hex digits.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random token secret: `twr_` and 64 hex digits.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("twr_{}", twins::store::hex(&bytes))
}

/// The tokens a node accepts, by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Arc<TokenInfo>>,
}

impl Tokens {
    pub fn new(tokens: impl IntoIterator<Item = ([u8; 32], TokenInfo)>) -> Self {
        Self {
            by_hash: tokens.into_iter().map(|(h, t)| (h, Arc::new(t))).collect(),
        }
    }

    /// The token whose secret this is.
    pub fn lookup(&self, secret: &str) -> Option<Arc<TokenInfo>> {
        self.by_hash.get(&hash_token(secret)).cloned()
    }
}

/// Who is asking: the token presented and the client's address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: Arc<TokenInfo>,
    pub addr: Option<SocketAddr>,
}

/// Why a request was refused; the API turns it into a 403 and an audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub message: String,
}

impl Caller {
    /// Refuses unless the token's role is at least `role`.
    pub fn require(&self, role: Role, action: &str) -> Result<(), Denial> {
        if self.token.role >= role {
            Ok(())
        } else {
            Err(Denial {
                message: format!(
                    "token `{}` has role {}; {action} needs role {role} or higher",
                    self.token.id, self.token.role
                ),
            })
        }
    }

    /// Refuses unless `path` lies within the token's scope.
    pub fn require_twin(&self, path: &TwinPath) -> Result<(), Denial> {
        if path.is_within(&self.token.scope) {
            Ok(())
        } else {
            Err(Denial {
                message: format!(
                    "twin `{path}` is outside the scope `{}/**` of token `{}`",
                    self.token.scope, self.token.id
                ),
            })
        }
    }

    /// Refuses unless every path `glob` can match lies within the scope.
    pub fn require_glob(&self, glob: &Glob) -> Result<(), Denial> {
        if glob.within(&self.token.scope) {
            Ok(())
        } else {
            Err(Denial {
                message: format!(
                    "`{glob}` reaches outside the scope `{}/**` of token `{}`",
                    self.token.scope, self.token.id
                ),
            })
        }
    }

    /// The glob of the whole scope, for listings without a path filter.
    pub fn scope_glob(&self) -> Glob {
        Glob::subtree(&self.token.scope)
    }

    pub fn source(&self) -> Option<String> {
        self.addr.map(|a| a.to_string())
    }
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> Self {
        ApiError::forbidden(d.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, scope: &str) -> Caller {
        Caller {
            token: Arc::new(TokenInfo {
                id: "t".into(),
                role,
                scope: TwinPath::parse(scope).unwrap(),
            }),
            addr: None,
        }
    }

    #[test]
    fn roles_are_ordered_and_each_includes_the_ones_below() {
        let op = caller(Role::Operator, "acme");
        assert!(op.require(Role::Viewer, "reading").is_ok());
        assert!(op.require(Role::Operator, "acknowledging").is_ok());
        let e = op
            .require(Role::Engineer, "taking out of service")
            .unwrap_err();
        assert!(e.message.contains("role operator"), "{}", e.message);
        assert!(e.message.contains("needs role engineer"), "{}", e.message);
    }

    #[test]
    fn scope_admits_its_subtree_only() {
        let east = caller(Role::Viewer, "acme/east");
        let p = |s: &str| TwinPath::parse(s).unwrap();
        assert!(east.require_twin(&p("acme/east")).is_ok());
        assert!(east.require_twin(&p("acme/east/baytown/crude-1")).is_ok());
        assert!(east.require_twin(&p("acme")).is_err());
        assert!(east.require_twin(&p("acme/west")).is_err());
        // A sibling whose name starts alike is not inside.
        assert!(east.require_twin(&p("acme/eastern")).is_err());
    }

    #[test]
    fn tokens_are_found_by_the_hash_of_their_secret() {
        let secret = generate_secret();
        assert!(secret.starts_with("twr_") && secret.len() == 68);
        let info = TokenInfo {
            id: "hq".into(),
            role: Role::Admin,
            scope: TwinPath::parse("acme").unwrap(),
        };
        let tokens = Tokens::new([(hash_token(&secret), info.clone())]);
        assert_eq!(tokens.lookup(&secret).as_deref(), Some(&info));
        assert!(tokens.lookup("twr_wrong").is_none());
        let h = hash_token(&secret);
        assert_eq!(parse_hash(&twins::store::hex(&h)), Some(h));
        assert_eq!(parse_hash("xyz"), None);
    }
}
