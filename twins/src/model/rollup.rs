//! Roll-up calls: `sum(power)`, `wavg(temperature, flow)`,
//! `count_true(running, class = CentrifugalPump | Compressor)`.

use std::ops::Range;

use super::diag::{did_you_mean, one_of};
use super::types::AggFunc;

pub(crate) const FUNCS: &[AggFunc] = &AggFunc::ALL;

/// A parsed roll-up call; ranges are byte offsets into the call text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub func: AggFunc,
    pub func_at: Range<usize>,
    pub input: (String, Range<usize>),
    pub weight: Option<(String, Range<usize>)>,
    pub classes: Vec<(String, Range<usize>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallError {
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

fn err(span: Range<usize>, message: impl Into<String>, hint: Option<String>) -> CallError {
    CallError {
        span,
        message: message.into(),
        hint,
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.src[self.pos..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.src[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// An identifier, or a `"quoted"` name when `quoted` is allowed.
    fn name(&mut self, quoted: bool) -> Option<(String, Range<usize>)> {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.src[start..];
        if quoted && rest.starts_with('"') {
            let end = rest[1..].find('"')? + 1;
            self.pos = start + end + 1;
            return Some((rest[1..end].to_string(), start + 1..start + end));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos = start + len;
        Some((rest[..len].to_string(), start..start + len))
    }

    fn here(&self) -> Range<usize> {
        let end = self.src[self.pos..]
            .chars()
            .next()
            .map_or(self.pos, |c| self.pos + c.len_utf8());
        self.pos..end
    }
}

/// Parses a roll-up call.
pub(crate) fn parse(src: &str) -> Result<Call, CallError> {
    let names: Vec<&str> = FUNCS.iter().map(|f| f.name()).collect();
    let mut lx = Lexer { src, pos: 0 };
    let Some((fname, func_at)) = lx.name(false) else {
        lx.skip_ws();
        return Err(err(
            lx.here(),
            format!(
                "expected a roll-up like `sum(power)`, found `{}`",
                src.trim()
            ),
            Some(format!("roll-up functions are {}", one_of(&names))),
        ));
    };
    let Some(func) = FUNCS.iter().copied().find(|f| f.name() == fname) else {
        return Err(err(
            func_at,
            format!(
                "unknown roll-up function `{fname}`: expected {}",
                one_of(&names)
            ),
            did_you_mean(&fname, names.iter().copied()),
        ));
    };
    if !lx.eat('(') {
        return Err(err(
            lx.here(),
            format!("expected `(` after `{fname}`"),
            Some(format!("write `{fname}(property)`")),
        ));
    }
    let mut args = Vec::new();
    let mut classes = Vec::new();
    loop {
        if lx.peek() == Some(')') && args.is_empty() && classes.is_empty() {
            break;
        }
        let Some(arg) = lx.name(false) else {
            return Err(err(
                lx.here(),
                "expected a property name of the children",
                None,
            ));
        };
        if arg.0 == "class" && lx.eat('=') {
            loop {
                let Some(c) = lx.name(true) else {
                    return Err(err(
                        lx.here(),
                        "expected a class name after `class =`",
                        None,
                    ));
                };
                classes.push(c);
                if !lx.eat('|') {
                    break;
                }
            }
        } else if !classes.is_empty() {
            return Err(err(
                arg.1,
                "expected `class = ...` to come last in a roll-up call",
                None,
            ));
        } else {
            args.push(arg);
        }
        if lx.eat(',') {
            continue;
        }
        if lx.peek() == Some(')') {
            break;
        }
        return Err(err(lx.here(), "expected `,` or `)` in roll-up call", None));
    }
    let close = lx.here();
    lx.eat(')');
    lx.skip_ws();
    if lx.pos < src.len() {
        return Err(err(
            lx.pos..src.len(),
            format!(
                "unexpected `{}` after the roll-up call",
                src[lx.pos..].trim_end()
            ),
            None,
        ));
    }
    let want = if func == AggFunc::WAvg { 2 } else { 1 };
    if args.len() != want {
        let (message, hint) = match (func, args.len()) {
            (AggFunc::WAvg, 1) => (
                "`wavg` needs a weight: expected `wavg(value, weight)`, found one argument"
                    .to_string(),
                Some(format!("for example `wavg({}, flow)`", args[0].0)),
            ),
            (_, 0) => (
                format!("`{fname}` needs a property of the children, found none"),
                Some(format!("for example `{fname}(power)`")),
            ),
            (_, n) => (
                format!(
                    "`{fname}` takes {want} propert{}, found {n}",
                    if want == 1 { "y" } else { "ies" }
                ),
                None,
            ),
        };
        let span = args.last().map_or(close, |a| a.1.clone());
        return Err(err(span, message, hint));
    }
    let mut args = args.into_iter();
    let input = args.next().unwrap_or_default();
    Ok(Call {
        func,
        func_at,
        input,
        weight: args.next(),
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_calls() {
        let c = parse("sum(power)").unwrap();
        assert_eq!(c.func, AggFunc::Sum);
        assert_eq!(c.input.0, "power");
        let c = parse(" wavg( temperature , flow ) ").unwrap();
        assert_eq!(c.weight.unwrap().0, "flow");
        let c = parse("count_true(running, class = Pump | \"Compressor\")").unwrap();
        let names: Vec<_> = c.classes.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["Pump", "Compressor"]);
        assert_eq!(
            &"count_true(running, class = Pump | \"Compressor\")"[c.classes[1].1.clone()],
            "Compressor"
        );
    }

    #[test]
    fn reports_errors_with_spans() {
        let e = parse("summ(power)").unwrap_err();
        assert_eq!(e.span, 0..4);
        assert_eq!(e.hint.as_deref(), Some("did you mean `sum`?"));
        let e = parse("wavg(temperature)").unwrap_err();
        assert!(
            e.message.starts_with("`wavg` needs a weight"),
            "{}",
            e.message
        );
        assert!(parse("sum(power").is_err());
        assert!(parse("sum(power) + 1").is_err());
        assert!(parse("sum(a, b)").is_err());
    }
}
