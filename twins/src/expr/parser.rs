//! Recursive-descent parser: tokens to a syntax tree with spans.
//!
//! Precedence, loosest first: `or`/`||`, `and`/`&&`, `not`/`!`, comparisons
//! (not chainable), `+ -`, `* / %`, unary `-`, then literals, names, calls and
//! parentheses. Binary operators are left-associative.

use std::ops::Range;

use super::lexer::{Tok, Token, lex};
use super::{CmpOp, ExprError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    /// A number literal; `true` when integral as written.
    Num(f64, bool),
    Str(String),
    Bool(bool),
    Name(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `and` when the flag is true, else `or`.
    Logic(bool, Box<Expr>, Box<Expr>),
    Call {
        name: String,
        name_span: Range<usize>,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub ast: Ast,
    pub span: Range<usize>,
}

/// Parses `src`: all lexical errors, or else the first syntax error.
pub(crate) fn parse(src: &str) -> Result<Expr, Vec<ExprError>> {
    let (toks, errors) = lex(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or().map_err(|e| vec![e])?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        let (message, hint) = match t.tok {
            Tok::RParen => (
                "unexpected `)`, no `(` is open".to_string(),
                Some("remove it or add the matching `(`".to_string()),
            ),
            _ => (
                format!(
                    "expected an operator or the end of the expression, found {}",
                    t.tok.describe()
                ),
                None,
            ),
        };
        return Err(vec![ExprError {
            span: t.span.clone(),
            message,
            hint,
        }]);
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

fn join(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    a.start..b.end
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> Option<Token> {
        if &self.peek().tok == tok {
            Some(self.next())
        } else {
            None
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.and()?;
        while self.eat(&Tok::Or).is_some() {
            let r = self.and()?;
            l = Expr {
                span: join(&l.span, &r.span),
                ast: Ast::Logic(false, Box::new(l), Box::new(r)),
            };
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.not()?;
        while self.eat(&Tok::And).is_some() {
            let r = self.not()?;
            l = Expr {
                span: join(&l.span, &r.span),
                ast: Ast::Logic(true, Box::new(l), Box::new(r)),
            };
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if let Some(t) = self.eat(&Tok::Not) {
            let e = self.not()?;
            return Ok(Expr {
                span: join(&t.span, &e.span),
                ast: Ast::Not(Box::new(e)),
            });
        }
        self.cmp()
    }

    fn cmp_op(tok: &Tok) -> Option<CmpOp> {
        Some(match tok {
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::EqEq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            _ => return None,
        })
    }

    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let l = self.add()?;
        let Some(op) = Self::cmp_op(&self.peek().tok) else {
            return Ok(l);
        };
        self.next();
        let r = self.add()?;
        let t = self.peek();
        if Self::cmp_op(&t.tok).is_some() {
            return Err(ExprError {
                span: t.span.clone(),
                message: format!(
                    "comparisons cannot be chained, found {} after a comparison",
                    t.tok.describe()
                ),
                hint: Some("combine comparisons with `and`: `a < b and b < c`".into()),
            });
        }
        Ok(Expr {
            span: join(&l.span, &r.span),
            ast: Ast::Cmp(op, Box::new(l), Box::new(r)),
        })
    }

    fn add(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.mul()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.next();
            let r = self.mul()?;
            l = Expr {
                span: join(&l.span, &r.span),
                ast: Ast::Bin(op, Box::new(l), Box::new(r)),
            };
        }
    }

    fn mul(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Rem,
                _ => return Ok(l),
            };
            self.next();
            let r = self.unary()?;
            l = Expr {
                span: join(&l.span, &r.span),
                ast: Ast::Bin(op, Box::new(l), Box::new(r)),
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if let Some(t) = self.eat(&Tok::Minus) {
            let e = self.unary()?;
            return Ok(Expr {
                span: join(&t.span, &e.span),
                ast: Ast::Neg(Box::new(e)),
            });
        }
        if let Some(t) = self.eat(&Tok::Plus) {
            let e = self.unary()?;
            return Ok(Expr {
                span: join(&t.span, &e.span),
                ast: e.ast,
            });
        }
        self.primary()
    }

    fn close(&mut self, open: &Range<usize>, what: &str) -> Result<Token, ExprError> {
        if let Some(t) = self.eat(&Tok::RParen) {
            return Ok(t);
        }
        let t = self.peek();
        Err(if t.tok == Tok::Eof {
            ExprError {
                span: open.clone(),
                message: format!(
                    "unclosed `(`{what}, expected `)` before the end of the expression"
                ),
                hint: Some("add the missing `)`".into()),
            }
        } else {
            ExprError {
                span: t.span.clone(),
                message: format!(
                    "expected `)`{} or an operator, found {}",
                    if what.is_empty() { "" } else { ", `,`" },
                    t.tok.describe()
                ),
                hint: None,
            }
        })
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.next();
        let ast = match t.tok {
            Tok::Num(v, int) => Ast::Num(v, int),
            Tok::Str(s) => Ast::Str(s),
            Tok::True => Ast::Bool(true),
            Tok::False => Ast::Bool(false),
            Tok::LParen => {
                let inner = self.or()?;
                let close = self.close(&t.span, "")?;
                return Ok(Expr {
                    span: join(&t.span, &close.span),
                    ast: inner.ast,
                });
            }
            Tok::Ident(name) => {
                if let Some(open) = self.eat(&Tok::LParen) {
                    let mut args = Vec::new();
                    if self.eat(&Tok::RParen).is_none() {
                        loop {
                            args.push(self.or()?);
                            if self.eat(&Tok::Comma).is_some() {
                                continue;
                            }
                            let close = self.close(&open.span, &format!(" of `{name}(`"))?;
                            return Ok(Expr {
                                span: join(&t.span, &close.span),
                                ast: Ast::Call {
                                    name,
                                    name_span: t.span,
                                    args,
                                },
                            });
                        }
                    }
                    let end = self.toks[self.pos - 1].span.end;
                    return Ok(Expr {
                        span: t.span.start..end,
                        ast: Ast::Call {
                            name,
                            name_span: t.span,
                            args,
                        },
                    });
                }
                if name == "if" {
                    return Err(ExprError {
                        span: t.span,
                        message: format!(
                            "expected `(` after `if`, found {}",
                            self.peek().tok.describe()
                        ),
                        hint: Some("conditionals are written `if(condition, then, else)`".into()),
                    });
                }
                Ast::Name(name)
            }
            other => {
                return Err(ExprError {
                    span: t.span,
                    message: format!("expected an expression, found {}", other.describe()),
                    hint: None,
                });
            }
        };
        Ok(Expr { ast, span: t.span })
    }
}

/// Names referenced by `e` (not function names), in order of first use.
pub(crate) fn collect_names(e: &Expr, out: &mut Vec<String>) {
    match &e.ast {
        Ast::Num(..) | Ast::Str(_) | Ast::Bool(_) => {}
        Ast::Name(n) => {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        Ast::Neg(a) | Ast::Not(a) => collect_names(a, out),
        Ast::Bin(_, a, b) | Ast::Cmp(_, a, b) | Ast::Logic(_, a, b) => {
            collect_names(a, out);
            collect_names(b, out);
        }
        Ast::Call { args, .. } => args.iter().for_each(|a| collect_names(a, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fully parenthesised rendering, to check precedence and associativity.
    fn show(e: &Expr) -> String {
        match &e.ast {
            Ast::Num(v, _) => format!("{v}"),
            Ast::Str(s) => format!("{s:?}"),
            Ast::Bool(b) => format!("{b}"),
            Ast::Name(n) => n.clone(),
            Ast::Neg(a) => format!("(-{})", show(a)),
            Ast::Not(a) => format!("(not {})", show(a)),
            Ast::Bin(op, a, b) => format!("({} {} {})", show(a), op.symbol(), show(b)),
            Ast::Cmp(op, a, b) => format!("({} {} {})", show(a), op.symbol(), show(b)),
            Ast::Logic(and, a, b) => {
                format!(
                    "({} {} {})",
                    show(a),
                    if *and { "and" } else { "or" },
                    show(b)
                )
            }
            Ast::Call { name, args, .. } => format!(
                "{name}({})",
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn p(src: &str) -> String {
        show(&parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}")))
    }

    fn err(src: &str) -> ExprError {
        let mut e = parse(src).expect_err(src);
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    #[test]
    fn precedence() {
        assert_eq!(p("a + b * c"), "(a + (b * c))");
        assert_eq!(p("a * b + c"), "((a * b) + c)");
        assert_eq!(p("-a * b"), "((-a) * b)");
        assert_eq!(p("a - -b"), "(a - (-b))");
        assert_eq!(p("a + b > c * 2"), "((a + b) > (c * 2))");
        assert_eq!(p("a > 1 and b < 2 or c"), "(((a > 1) and (b < 2)) or c)");
        assert_eq!(p("a or b and c"), "(a or (b and c))");
        assert_eq!(p("not a > 1 && b"), "((not (a > 1)) and b)");
        assert_eq!(p("!a || !b"), "((not a) or (not b))");
        assert_eq!(p("(a + b) * c"), "((a + b) * c)");
        assert_eq!(p("a % b * c"), "((a % b) * c)");
        assert_eq!(p("+a"), "a");
    }

    #[test]
    fn associativity() {
        assert_eq!(p("a - b - c"), "((a - b) - c)");
        assert_eq!(p("a / b / c"), "((a / b) / c)");
        assert_eq!(p("a and b and c"), "((a and b) and c)");
        assert_eq!(p("a or b or c"), "((a or b) or c)");
    }

    #[test]
    fn literals_and_calls() {
        assert_eq!(p("1e-3 + 2.5"), "(0.001 + 2.5)");
        assert_eq!(p("clamp(x, 0, max(a, b, 3))"), "clamp(x, 0, max(a, b, 3))");
        assert_eq!(p("if(a > 1, 2, 3)"), "if((a > 1), 2, 3)");
        assert_eq!(p("f()"), "f()");
        assert_eq!(p("mode == \"running\""), "(mode == \"running\")");
        assert_eq!(p("true or false"), "(true or false)");
    }

    #[test]
    fn spans() {
        let e = parse("flow * (p + 1)").expect("parses");
        assert_eq!(e.span, 0..14);
        let Ast::Bin(_, l, r) = &e.ast else {
            panic!("{e:?}")
        };
        assert_eq!(l.span, 0..4);
        assert_eq!(r.span, 7..14);
        let e = parse("max(a, b)").expect("parses");
        assert_eq!(e.span, 0..9);
        let e = parse("f()").expect("parses");
        assert_eq!(e.span, 0..3);
    }

    #[test]
    fn unexpected_token() {
        let e = err("flow * * 2");
        assert_eq!(e.span, 7..8);
        assert_eq!(e.message, "expected an expression, found `*`");
        let e = err("flow 2");
        assert_eq!(e.span, 5..6);
        assert_eq!(
            e.message,
            "expected an operator or the end of the expression, found a number"
        );
        let e = err("a + ");
        assert_eq!(e.span, 4..4);
        assert_eq!(
            e.message,
            "expected an expression, found the end of the expression"
        );
        let e = err("a + b)");
        assert_eq!(e.span, 5..6);
        assert!(e.message.contains("no `(` is open"));
        let e = err("a < b < c");
        assert_eq!(e.span, 6..7);
        assert!(e.message.starts_with("comparisons cannot be chained"));
        let e = err("if x then 1 else 2");
        assert_eq!(e.span, 0..2);
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("if(condition, then, else)")
        );
    }

    #[test]
    fn unclosed_paren() {
        let e = err("(a + b * 2");
        assert_eq!(e.span, 0..1);
        assert_eq!(
            e.message,
            "unclosed `(`, expected `)` before the end of the expression"
        );
        let e = err("x + max(a, b");
        assert_eq!(e.span, 7..8);
        assert!(
            e.message.starts_with("unclosed `(` of `max(`"),
            "{}",
            e.message
        );
        let e = err("(a + b c");
        assert_eq!(e.span, 7..8);
        assert_eq!(e.message, "expected `)` or an operator, found `c`");
    }

    #[test]
    fn names() {
        let e = parse("a + max(b, a) * f(c)").expect("parses");
        let mut out = Vec::new();
        collect_names(&e, &mut out);
        assert_eq!(out, ["a", "b", "c"]);
    }
}
