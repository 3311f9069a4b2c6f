//! Tokens of the expression language, with byte spans.

use std::ops::Range;

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A number literal; `true` when written without `.` or exponent.
    Num(f64, bool),
    Str(String),
    Ident(String),
    True,
    False,
    And,
    Or,
    Not,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Gt,
    Ge,
    Lt,
    Le,
    EqEq,
    Ne,
    LParen,
    RParen,
    Comma,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Num(..) => "a number".into(),
            Tok::Str(s) => format!("the string \"{s}\""),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::And => "`and`".into(),
            Tok::Or => "`or`".into(),
            Tok::Not => "`not`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

/// Splits `src` into tokens (ending with [`Tok::Eof`]) and collects every
/// lexical error.
pub(crate) fn lex(src: &str) -> (Vec<Token>, Vec<ExprError>) {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |t: Tok| Some((t, 1));
        let two = |next: u8, t2: Tok, t1: Option<Tok>| {
            if bytes.get(i + 1) == Some(&next) {
                Some((t2, 2))
            } else {
                t1.map(|t| (t, 1))
            }
        };
        let op = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'+' => single(Tok::Plus),
            b'-' => single(Tok::Minus),
            b'*' => single(Tok::Star),
            b'/' => single(Tok::Slash),
            b'%' => single(Tok::Percent),
            b'(' => single(Tok::LParen),
            b')' => single(Tok::RParen),
            b',' => single(Tok::Comma),
            b'>' => two(b'=', Tok::Ge, Some(Tok::Gt)),
            b'<' => two(b'=', Tok::Le, Some(Tok::Lt)),
            b'!' => two(b'=', Tok::Ne, Some(Tok::Not)),
            b'=' => two(b'=', Tok::EqEq, None),
            b'&' => two(b'&', Tok::And, None),
            b'|' => two(b'|', Tok::Or, None),
            _ => None,
        };
        if let Some((tok, len)) = op {
            i += len;
            toks.push(Token {
                tok,
                span: start..i,
            });
            continue;
        }
        match c {
            b'=' => {
                i += 1;
                errors.push(ExprError {
                    span: start..i,
                    message: "unexpected `=`, expected `==` to compare".into(),
                    hint: Some("use `==` to compare; expressions do not assign".into()),
                });
            }
            b'&' | b'|' => {
                i += 1;
                let (word, op) = if c == b'&' {
                    ("and", "&&")
                } else {
                    ("or", "||")
                };
                errors.push(ExprError {
                    span: start..i,
                    message: format!("unexpected `{}`, expected `{op}`", c as char),
                    hint: Some(format!("write `{op}` or `{word}`")),
                });
            }
            b'0'..=b'9' | b'.' => {
                let mut int = true;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'.' {
                    int = false;
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                    int = false;
                    i += 1;
                    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                        i += 1;
                    }
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // A name glued to a number (`3x`) is an error, not a product.
                let mut end = i;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                let text = &src[start..end];
                match text.parse::<f64>() {
                    Ok(v) if end == i && v.is_finite() => toks.push(Token {
                        tok: Tok::Num(v, int),
                        span: start..i,
                    }),
                    _ => errors.push(ExprError {
                        span: start..end,
                        message: format!("invalid number `{text}`"),
                        hint: Some("numbers are written like `1`, `2.5` or `1e-3`".into()),
                    }),
                }
                i = end;
            }
            b'"' | b'\'' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                while i < bytes.len() {
                    let ch = src[i..].chars().next().unwrap_or('\0');
                    if bytes[i] == quote {
                        i += 1;
                        closed = true;
                        break;
                    }
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        let esc = src[i + 1..].chars().next().unwrap_or('\0');
                        s.push(esc);
                        i += 1 + esc.len_utf8();
                        continue;
                    }
                    s.push(ch);
                    i += ch.len_utf8();
                }
                if closed {
                    toks.push(Token {
                        tok: Tok::Str(s),
                        span: start..i,
                    });
                } else {
                    errors.push(ExprError {
                        span: start..i,
                        message: format!(
                            "unterminated string, expected a closing `{}`",
                            quote as char
                        ),
                        hint: None,
                    });
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match word {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Ident(word.to_string()),
                };
                toks.push(Token {
                    tok,
                    span: start..i,
                });
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('\0');
                i += ch.len_utf8().max(1);
                errors.push(ExprError {
                    span: start..i,
                    message: format!("unexpected character `{ch}`"),
                    hint: None,
                });
            }
        }
    }
    toks.push(Token {
        tok: Tok::Eof,
        span: src.len()..src.len(),
    });
    (toks, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (t, e) = lex(src);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("a>=1.5e3&&!b||c!=2"),
            vec![
                Tok::Ident("a".into()),
                Tok::Ge,
                Tok::Num(1500.0, false),
                Tok::And,
                Tok::Not,
                Tok::Ident("b".into()),
                Tok::Or,
                Tok::Ident("c".into()),
                Tok::Ne,
                Tok::Num(2.0, true),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#"m == "run\"x" or m == 'stop'"#)[2],
            Tok::Str("run\"x".into())
        );
        assert_eq!(toks("not x")[0], Tok::Not);
    }

    #[test]
    fn errors() {
        let (_, e) = lex("a = 1 # \"abc");
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].span, 2..3);
        assert!(e[0].message.contains("`==`"));
        assert_eq!(e[1].span, 6..7);
        assert_eq!(e[1].message, "unexpected character `#`");
        assert_eq!(e[2].span, 8..12);
        let (_, e) = lex("3x + 1e");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].span, 0..2);
        assert_eq!(e[1].message, "invalid number `1e`");
    }
}
