//! Located errors of a model: `file:line:col`, the source line, a caret
//! underline and an optional hint.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use super::SourceFile;

/// One error of a model, located in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the caller named it.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the error points into, without its line break.
    pub snippet: String,
    /// Length of the underlined part, in characters (at least 1).
    pub span_len: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        writeln!(f, "{pad} |")?;
        writeln!(f, "{gutter} | {}", self.snippet)?;
        // Keep tabs so the caret lines up under the snippet as a terminal shows it.
        let lead: String = self
            .snippet
            .chars()
            .take(self.col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad} | {lead}{}", "^".repeat(self.span_len.max(1)))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{pad} = help: {hint}")?;
        }
        Ok(())
    }
}

/// A place in a model file, kept in the compiled model so that checks made
/// later (a source's configuration, a point address) can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpan {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// The source line, without its line break.
    pub snippet: String,
    /// Length of the spanned part, in characters (at least 1).
    pub span_len: usize,
}

impl SourceSpan {
    /// An error at this place.
    pub fn error(&self, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
            hint,
            snippet: self.snippet.clone(),
            span_len: self.span_len,
        }
    }
}

/// Every error found in a model, sorted by file, line and column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}\n")?;
        }
        match self.0.len() {
            1 => write!(f, "1 error"),
            n => write!(f, "{n} errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A place in one of the files being compiled: file index and byte span.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub file: usize,
    pub span: Range<usize>,
}

impl Loc {
    pub fn new(file: usize, span: Range<usize>) -> Self {
        Self { file, span }
    }
}

/// Collects diagnostics while compiling a set of files.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    files: &'a [SourceFile],
    out: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(files: &'a [SourceFile]) -> Self {
        Self {
            files,
            out: Vec::new(),
        }
    }

    pub fn error(&mut self, at: &Loc, message: impl Into<String>) {
        self.push(at, message.into(), None);
    }

    pub fn error_hint(&mut self, at: &Loc, message: impl Into<String>, hint: Option<String>) {
        self.push(at, message.into(), hint);
    }

    /// The text of a file being compiled.
    pub fn text(&self, file: usize) -> &'a str {
        &self.files[file].text
    }

    pub fn has_errors(&self) -> bool {
        !self.out.is_empty()
    }

    /// `file:line:col` of a location, for "first declared at" hints.
    pub fn describe(&self, at: &Loc) -> String {
        let d = locate(&self.files[at.file], &at.span);
        format!("{}:{}:{}", self.files[at.file].path.display(), d.0, d.1)
    }

    /// The place `at` as kept in the compiled model.
    pub fn span(&self, at: &Loc) -> SourceSpan {
        let file = &self.files[at.file];
        let (line, col, snippet, span_len) = locate(file, &at.span);
        SourceSpan {
            file: file.path.clone(),
            line,
            col,
            snippet,
            span_len,
        }
    }

    fn push(&mut self, at: &Loc, message: String, hint: Option<String>) {
        let file = &self.files[at.file];
        let (line, col, snippet, span_len) = locate(file, &at.span);
        self.out.push(Diagnostic {
            file: file.path.clone(),
            line,
            col,
            message,
            hint,
            snippet,
            span_len,
        });
    }

    /// Sorted by file, line and column, without exact duplicates (an
    /// inherited error is found once per subclass).
    pub fn finish(mut self) -> Diagnostics {
        self.out.sort_by(|a, b| {
            (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
        });
        self.out.dedup();
        Diagnostics(self.out)
    }
}

/// Line, column, source line and underline length of a byte span.
fn locate(file: &SourceFile, span: &Range<usize>) -> (usize, usize, String, usize) {
    let text = file.text.as_str();
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..line_start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let snippet = text[line_start..line_end]
        .trim_end_matches('\r')
        .to_string();
    let mut end = span.end.clamp(start, line_end);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let span_len = text[start..end].chars().count().max(1);
    (line, col, snippet, span_len)
}

/// Optimal-string-alignment distance (Levenshtein with transpositions).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub(crate) fn closest<'c, I>(name: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let limit = (name.chars().count() / 3).max(1);
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let d = if c.to_lowercase() == lower {
                0
            } else {
                edit_distance(name, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate.
pub fn did_you_mean<'c, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'c str>,
{
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `a`, `b` or `c`.
pub fn one_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_transpositions_once() {
        assert_eq!(edit_distance("unit", "unti"), 1);
        assert_eq!(edit_distance("flow", "flow"), 0);
        assert_eq!(edit_distance("discharge_presure", "discharge_pressure"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_ignores_far_names() {
        let names = ["flow", "speed", "discharge_pressure"];
        assert_eq!(closest("flwo", names), Some("flow"));
        assert_eq!(closest("temperature", names), None);
        assert_eq!(closest("Flow", names), Some("flow"));
    }

    #[test]
    fn renders_location_snippet_caret_and_help() {
        let files = vec![SourceFile {
            path: "m/pump.toml".into(),
            text: "[class.P]\nflow = { unit = \"m3/hr\" }\n".into(),
        }];
        let mut sink = Sink::new(&files);
        let at = files[0].text.find("\"m3/hr\"").unwrap();
        sink.error_hint(
            &Loc::new(0, at..at + 7),
            "unknown unit `m3/hr`",
            Some("did you mean `m3/h`?".into()),
        );
        let d = sink.finish();
        assert_eq!((d.0[0].line, d.0[0].col, d.0[0].span_len), (2, 17, 7));
        let text = d.to_string();
        assert!(text.starts_with("m/pump.toml:2:17: error: unknown unit `m3/hr`\n"));
        assert!(text.contains("2 | flow = { unit = \"m3/hr\" }\n"));
        assert!(text.contains("  |                 ^^^^^^^\n"));
        assert!(text.contains("  = help: did you mean `m3/h`?"));
        assert!(text.ends_with("1 error"));
    }

    #[test]
    fn one_of_joins_with_or() {
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
