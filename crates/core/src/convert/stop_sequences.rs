//! Stop sequences, applied by the bridge to whatever text comes back.
//!
//! Clients may ignore `stopSequences` (VS Code calls its model with empty options), so the
//! bridge cuts the answer itself, on every client: at the first place a stop sequence is
//! completed (the one a generating model would have stopped at: the earliest end; among
//! sequences ending at the same place, the longest), without the sequence, and the response
//! says `stop_reason: "stop_sequence"` with the `stop_sequence` that matched. A client that
//! honoured them already leaves nothing to cut. The cut applies to the model's raw text,
//! before emulated tool calls are parsed from it or a structured value is extracted: the real
//! API stops generating there, whatever the text was going to be.
//!
//! [`StopCutter`] works on text that arrives in pieces: it sends on at once what can no longer
//! be the start of a stop sequence and holds back at most the longest sequence's length minus
//! one character, so no byte past the cut ever goes out; [`StopCutter::finish`] hands over the
//! rest. Matching is linear in the text (Aho-Corasick), however many sequences a caller sends.
//!
//! `max_tokens` is not applied the same way. Clients that ignore it return the whole answer,
//! and the bridge passes it on whole: the tokens are already spent (and paid for) when the
//! answer arrives, the bridge only estimates tokens and would cut at a place the model never
//! stopped, and a cut breaks exactly the answers that are most useful complete (a structured
//! value, an emulated tool call). `usage.output_tokens` reports the estimate, which may exceed
//! `max_tokens`; `stop_reason` stays the client's (`end_turn`).

use aho_corasick::AhoCorasick;

/// The caller's stop sequences, ready to match.
#[derive(Debug, Clone)]
pub struct StopSequences {
    /// Non-empty sequences, in the caller's order.
    sequences: Vec<String>,
    /// `None` when the automaton could not be built (far past any real request's size): then
    /// each sequence is looked for in turn.
    matcher: Option<AhoCorasick>,
    /// Characters of the longest sequence, minus one: what may have to wait for more text.
    hold_chars: usize,
}

impl StopSequences {
    /// `None` when there is nothing to stop at (no sequences, or only empty ones, which no
    /// model can be said to generate).
    pub fn new(sequences: &[String]) -> Option<Self> {
        let sequences: Vec<String> = sequences
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        if sequences.is_empty() {
            return None;
        }
        let hold_chars = sequences
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        let matcher = AhoCorasick::new(&sequences).ok();
        Some(StopSequences {
            sequences,
            matcher,
            hold_chars,
        })
    }

    /// The first stop in `text`: where it starts and the sequence that matched.
    pub fn find(&self, text: &str) -> Option<(usize, &str)> {
        let (start, index) = match &self.matcher {
            Some(matcher) => {
                let mut best: Option<(usize, usize, usize)> = None;
                // Overlapping matches come in the order they end: the first is where a model
                // would have stopped; others ending there too may start earlier.
                for found in matcher.find_overlapping_iter(text) {
                    match best {
                        Some((end, _, _)) if found.end() > end => break,
                        Some((_, start, _)) if found.start() >= start => {}
                        _ => best = Some((found.end(), found.start(), found.pattern().as_usize())),
                    }
                }
                best.map(|(_, start, index)| (start, index))?
            }
            None => self
                .sequences
                .iter()
                .enumerate()
                .filter_map(|(index, sequence)| {
                    text.find(sequence.as_str())
                        .map(|start| (start + sequence.len(), start, index))
                })
                .min_by_key(|&(end, start, _)| (end, start))
                .map(|(_, start, index)| (start, index))?,
        };
        Some((start, self.sequences.get(index)?.as_str()))
    }

    pub fn cutter(&self) -> StopCutter<'_> {
        StopCutter {
            sequences: self,
            held: String::new(),
            stopped: None,
        }
    }
}

/// Cuts text that arrives in pieces at the first stop.
#[derive(Debug)]
pub struct StopCutter<'a> {
    sequences: &'a StopSequences,
    held: String,
    stopped: Option<&'a str>,
}

impl<'a> StopCutter<'a> {
    /// Takes the next piece; returns the text that can go out now (possibly empty). After a
    /// stop, everything is dropped.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped.is_some() {
            return String::new();
        }
        self.held.push_str(piece);
        if let Some((start, sequence)) = self.sequences.find(&self.held) {
            self.stopped = Some(sequence);
            self.held.truncate(start);
            return std::mem::take(&mut self.held);
        }
        // A stop completed later includes at least one character still to come, so it starts
        // within the last `hold_chars` characters: everything before them is safe.
        let keep_from = match self.sequences.hold_chars {
            0 => self.held.len(),
            hold => self
                .held
                .char_indices()
                .rev()
                .nth(hold - 1)
                .map_or(0, |(at, _)| at),
        };
        let rest = self.held.split_off(keep_from);
        std::mem::replace(&mut self.held, rest)
    }

    /// The text held back, once no more comes (nothing after a stop).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The sequence the text stopped at, if it did.
    pub fn stopped(&self) -> Option<&'a str> {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stops(sequences: &[&str]) -> StopSequences {
        StopSequences::new(&sequences.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_first_completed_sequence_wins() {
        type Case<'a> = (&'a [&'a str], &'a str, Option<(usize, &'a str)>);
        let table: &[Case] = &[
            (&["END"], "one two END three", Some((8, "END"))),
            (&["END"], "no stop here", None),
            // "b" is complete before "abc" is.
            (&["abc", "b"], "xabc", Some((2, "b"))),
            // Both end at once: the longer (earlier) one.
            (&["bc", "abc"], "xabc", Some((1, "abc"))),
            (
                &["\n\nHuman:", "###"],
                "answer\n\nHuman: more ### x",
                Some((6, "\n\nHuman:")),
            ),
            (&["é!"], "café! ok", Some((3, "é!"))),
        ];
        for (sequences, text, expected) in table {
            assert_eq!(
                stops(sequences).find(text),
                *expected,
                "{sequences:?} in {text:?}"
            );
        }
        assert!(StopSequences::new(&[]).is_none());
        assert!(StopSequences::new(&[String::new()]).is_none());
    }

    #[test]
    fn nothing_past_the_cut_goes_out_and_the_hold_is_bounded() {
        let sequences = stops(&["STOP", "xy"]);
        let mut cutter = sequences.cutter();
        // Three characters (the longest sequence minus one) wait for what follows.
        assert_eq!(cutter.push("Hello S"), "Hell");
        assert_eq!(cutter.push("T"), "o");
        assert_eq!(cutter.push("OP and more"), " ");
        assert_eq!(cutter.stopped(), Some("STOP"));
        assert_eq!(cutter.push("anything"), "");
        assert_eq!(cutter.finish(), "");
        // Without a stop, the rest comes out at the end.
        let mut cutter = sequences.cutter();
        assert_eq!(cutter.push("abcdef"), "abc");
        assert_eq!(cutter.push("g"), "d");
        assert_eq!(cutter.finish(), "efg");
        assert_eq!(cutter.stopped(), None);
    }

    proptest! {
        /// However the text is split, the pieces sent add up to the text before the first stop,
        /// and no piece ever includes a byte past it.
        #[test]
        fn pieces_add_up_to_the_whole_cut(
            text in "[abS TOP\u{e9}x]{0,60}",
            sequences in proptest::collection::vec("[abS TOP\u{e9}]{1,4}", 1..4),
            cuts in proptest::collection::vec(0usize..70, 0..8),
        ) {
            let stops = StopSequences::new(&sequences).unwrap();
            let expected = match stops.find(&text) {
                Some((start, sequence)) => (text[..start].to_string(), Some(sequence.to_string())),
                None => (text.clone(), None),
            };
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|&at| text.is_char_boundary(at) && at <= text.len()).collect();
            bounds.push(text.len());
            bounds.sort_unstable();
            let mut cutter = stops.cutter();
            let mut sent = String::new();
            let mut from = 0;
            for at in bounds {
                let piece = cutter.push(&text[from..at]);
                sent.push_str(&piece);
                prop_assert!(expected.0.starts_with(&sent), "sent {sent:?} beyond {:?}", expected.0);
                // Held back: at most the longest sequence minus one character.
                let held = text[..at].chars().count() - sent.chars().count();
                if cutter.stopped().is_none() {
                    prop_assert!(held <= stops.hold_chars, "held {held}");
                }
                from = at;
            }
            sent.push_str(&cutter.finish());
            prop_assert_eq!(&sent, &expected.0);
            prop_assert_eq!(cutter.stopped().map(str::to_string), expected.1);
        }
    }
}
