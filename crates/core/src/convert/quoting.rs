//! Where a model's answer only quotes text, in Markdown terms: inside a fenced code block
//! (```` ``` ```` or `~~~`), on a block-quote line (`>`), or inside an inline code span
//! (`` `…` ``). Tool emulation uses it so that a `<tool_call>` the model shows (explaining the
//! convention, quoting a previous call) is not taken for one it makes.
//!
//! The rules are CommonMark's, reduced to what decides this: fences open and close on lines
//! indented by at most three spaces (a closing fence uses the same character, at least as many
//! times, and nothing else); an unclosed fence runs to the end. A code span opens at a backtick
//! run and closes at the next run of the same length on the same line (spans over several lines
//! are rare in answers, and a stray backtick must not quote the rest of the answer); a run with
//! no such partner is literal.
//!
//! Positions are asked for in increasing order, and regions the caller consumes (a parsed call)
//! are skipped with [`Quoting::skip_to`]: every byte is looked at a bounded number of times, so
//! the cost is linear in the text.

use std::collections::HashMap;

/// Tracks the Markdown context of one text as positions in it are asked about.
pub struct Quoting<'a> {
    bytes: &'a [u8],
    /// Where the lines not classified yet start.
    next_line: usize,
    /// Whether `next_line` begins a line (false after a skipped region that ends mid-line).
    at_line_start: bool,
    /// The fence open at `next_line`: its character and length.
    fence: Option<(u8, usize)>,
    /// The line (or rest of a line) the last position was on.
    line: Line,
    /// Backtick runs of the current line, found when a position on it is first asked about.
    runs: Runs,
}

/// One line, or the rest of one after a skipped region: `[start, end)`, `end` at its newline
/// or the end of the text.
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// Inside a fence or a block quote: everything on it is quoted.
    quoted: bool,
}

#[derive(Default)]
struct Runs {
    /// For the line starting here (`usize::MAX`: not found yet).
    line_start: usize,
    /// Each run's start and length, in order.
    runs: Vec<(usize, usize)>,
    /// For each run, the index of the next run of the same length on the line.
    partner: Vec<Option<usize>>,
    /// The first run not looked at yet.
    cursor: usize,
    /// The start of the run that closes the span the last position was in.
    span_closes_at: Option<usize>,
    /// Scratch for the partner links: the latest run seen per length.
    latest: HashMap<usize, usize>,
}

impl<'a> Quoting<'a> {
    pub fn new(text: &'a str) -> Self {
        Quoting {
            bytes: text.as_bytes(),
            next_line: 0,
            at_line_start: true,
            fence: None,
            line: Line {
                start: 0,
                end: 0,
                quoted: false,
            },
            runs: Runs {
                line_start: usize::MAX,
                ..Runs::default()
            },
        }
    }

    /// Whether the byte at `at` is quoted. `at` must not decrease from one call to the next,
    /// nor fall inside a region passed to [`Quoting::skip_to`].
    pub fn is_quoted(&mut self, at: usize) -> bool {
        while at >= self.line.end && self.next_line <= at && self.next_line < self.bytes.len() {
            self.line = self.classify_next_line();
        }
        if self.line.quoted {
            return true;
        }
        if self.runs.line_start != self.line.start {
            self.runs.find(self.bytes, self.line);
        }
        self.runs.in_span(at)
    }

    /// Treats everything before `end` as consumed: nothing in it opens or closes anything, and
    /// the text from `end` on is read as the rest of a line (or a new line, after a newline).
    pub fn skip_to(&mut self, end: usize) {
        let end = end.min(self.bytes.len());
        if end < self.line.end {
            // On the same line: its runs inside the region no longer count.
            if self.runs.line_start != self.line.start {
                self.runs.find(self.bytes, self.line);
            }
            self.runs.skip_to(end);
            return;
        }
        self.next_line = end;
        self.at_line_start = end == 0 || self.bytes.get(end - 1) == Some(&b'\n');
        self.line = Line {
            start: end,
            end,
            quoted: false,
        };
    }

    /// Reads the line at `next_line`, updating the fence state.
    fn classify_next_line(&mut self) -> Line {
        let start = self.next_line;
        let end =
            memchr::memchr(b'\n', &self.bytes[start..]).map_or(self.bytes.len(), |n| start + n);
        let line = &self.bytes[start..end];
        let quoted = if !self.at_line_start {
            // The rest of a line whose start was consumed: a fence cannot be open (the region
            // began at a position that was not quoted), and it is not at a line start.
            false
        } else if let Some((character, length)) = self.fence {
            if closes_fence(line, character, length) {
                self.fence = None;
            }
            true
        } else {
            let content = strip_indent(line);
            if content.first() == Some(&b'>') {
                true
            } else if let Some(fence) = opens_fence(content) {
                self.fence = Some(fence);
                true
            } else {
                false
            }
        };
        self.next_line = end + 1;
        self.at_line_start = true;
        Line { start, end, quoted }
    }
}

impl Runs {
    /// Finds the backtick runs of `line` and links each to its partner.
    fn find(&mut self, bytes: &[u8], line: Line) {
        self.line_start = line.start;
        self.runs.clear();
        self.partner.clear();
        self.cursor = 0;
        self.span_closes_at = None;
        let text = &bytes[line.start..line.end];
        let mut at = 0;
        while let Some(found) = memchr::memchr(b'`', &text[at..]) {
            let run_start = at + found;
            let length = text[run_start..]
                .iter()
                .take_while(|&&byte| byte == b'`')
                .count();
            self.runs.push((line.start + run_start, length));
            at = run_start + length;
        }
        self.partner.resize(self.runs.len(), None);
        self.latest.clear();
        for (index, &(_, length)) in self.runs.iter().enumerate().rev() {
            self.partner[index] = self.latest.insert(length, index);
        }
    }

    /// Whether `at` is inside a code span, walking the runs up to it.
    fn in_span(&mut self, at: usize) -> bool {
        loop {
            if let Some(close) = self.span_closes_at {
                if at < close {
                    return true;
                }
                self.span_closes_at = None;
            }
            let Some(&(start, _)) = self.runs.get(self.cursor) else {
                return false;
            };
            if start > at {
                return false;
            }
            match self.partner[self.cursor] {
                Some(partner) => {
                    self.span_closes_at = Some(self.runs[partner].0);
                    self.cursor = partner + 1;
                }
                // No partner: a literal run.
                None => self.cursor += 1,
            }
        }
    }

    /// Drops the runs before `end` (a consumed region on this line).
    fn skip_to(&mut self, end: usize) {
        self.span_closes_at = None;
        while self
            .runs
            .get(self.cursor)
            .is_some_and(|&(start, _)| start < end)
        {
            self.cursor += 1;
        }
        // Partner links point forward only; a link from a run after `end` never lands inside
        // the region.
    }
}

/// Up to three spaces of indentation removed (four make an indented code block, which is not
/// treated as quoting: models indent calls in lists).
fn strip_indent(line: &[u8]) -> &[u8] {
    let spaces = line
        .iter()
        .take(3)
        .take_while(|&&byte| byte == b' ')
        .count();
    &line[spaces..]
}

/// A fence opening: three or more backticks (with no backtick in the info string after them)
/// or tildes.
fn opens_fence(content: &[u8]) -> Option<(u8, usize)> {
    let character = *content.first()?;
    if character != b'`' && character != b'~' {
        return None;
    }
    let length = content
        .iter()
        .take_while(|&&byte| byte == character)
        .count();
    if length < 3 {
        return None;
    }
    if character == b'`' && content[length..].contains(&b'`') {
        return None;
    }
    Some((character, length))
}

fn closes_fence(line: &[u8], character: u8, length: usize) -> bool {
    let content = strip_indent(line);
    let run = content
        .iter()
        .take_while(|&&byte| byte == character)
        .count();
    run >= length && content[run..].iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of the `@` in `text` are quoted.
    fn quoted(text: &str) -> Vec<bool> {
        let mut quoting = Quoting::new(text);
        text.match_indices('@')
            .map(|(at, _)| quoting.is_quoted(at))
            .collect()
    }

    #[test]
    fn fences_quote_their_lines_until_they_close() {
        assert_eq!(
            quoted("@\n```json\n@\n ``\n@\n```\n@"),
            [false, true, true, false]
        );
        // A closing fence uses the same character, at least as many, and nothing after.
        assert_eq!(
            quoted("~~~~\n@\n```\n@\n~~~ x\n@\n~~~~~\n@"),
            [true, true, true, false]
        );
        // Unclosed: to the end. Indented four spaces: not a fence.
        assert_eq!(quoted("```\n@\n\n@"), [true, true]);
        assert_eq!(quoted("    ```\n@"), [false]);
        // Backticks in a backtick fence's info string make it inline code instead.
        assert_eq!(quoted("``` a ` b\n@"), [false]);
    }

    #[test]
    fn block_quote_lines_are_quoted() {
        assert_eq!(quoted("> @\n   > @\n@ > @"), [true, true, false, false]);
    }

    #[test]
    fn code_spans_pair_runs_of_equal_length_on_one_line() {
        assert_eq!(
            quoted("`@` @ ``@ ` @`` @"),
            [true, false, true, true, false]
        );
        // A run without a partner is literal.
        assert_eq!(quoted("` @ `` @"), [false, false]);
        // Spans end with their line.
        assert_eq!(quoted("`a\n@`"), [false]);
    }

    #[test]
    fn skipped_regions_do_not_count() {
        let text = "@ {`} @ {`} @";
        let mut quoting = Quoting::new(text);
        let ats: Vec<usize> = text.match_indices('@').map(|(at, _)| at).collect();
        assert!(!quoting.is_quoted(ats[0]));
        quoting.skip_to(ats[1] - 1);
        assert!(!quoting.is_quoted(ats[1]));
        quoting.skip_to(ats[2] - 1);
        assert!(!quoting.is_quoted(ats[2]));
        // Without the skips, the two backticks make a span around the middle one.
        assert_eq!(quoted(text), [false, true, false]);
        // A region over several lines: the text after it is the rest of a line, not a fence.
        let text = "x\n```\n@";
        let mut quoting = Quoting::new(text);
        quoting.skip_to(3);
        assert!(!quoting.is_quoted(6));
    }
}
