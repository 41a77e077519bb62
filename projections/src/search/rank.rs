//! Relevance of the candidates a search found, computed here rather than
//! by FTS5's `bm25()`: that function first counts every row matching each
//! phrase in the whole index (a pass over each term's full posting list,
//! positions included for phrases), which for common words at 1M messages
//! cost more than the whole latency target. Here the candidates' own text
//! is scored: BM25's term-frequency saturation and length normalization
//! (k1 = 1.2, b = 0.75, average length over the candidates), every query
//! term weighted alike (there is no corpus-wide IDF), file names at half
//! weight. Depending only on the candidate set, the score does not move as
//! new messages arrive, which keeps pages stable.
//!
//! Tokens are approximated as the index cuts them: runs of letters and
//! digits, lowercased, common Latin diacritics removed; text of unspaced
//! scripts is matched by substring.

use switchboard_core::search::{Query, Term, TermKind};

const K1: f64 = 1.2;
const B: f64 = 0.75;
const FILES_WEIGHT: f64 = 0.5;

/// A character as the index folds it (lowercase, no diacritic).
fn fold(c: char) -> char {
    let c = c.to_lowercase().next().unwrap_or(c);
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ş' => 's',
        'ť' | 'ţ' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        c => c,
    }
}

/// The folded tokens of a text.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().map(fold).collect())
        .collect()
}

enum Matcher {
    /// A run of tokens (the last one a prefix when `prefix`).
    Tokens { toks: Vec<String>, prefix: bool },
    /// A substring (unspaced scripts).
    Substring(String),
}

impl Matcher {
    fn of(t: &Term) -> Matcher {
        if t.is_unspaced() {
            return Matcher::Substring(t.text.chars().map(fold).collect());
        }
        Matcher::Tokens {
            toks: tokens(&t.text),
            prefix: t.kind == TermKind::Prefix,
        }
    }

    fn count(&self, toks: &[String], folded: &str) -> f64 {
        match self {
            Matcher::Substring(s) if !s.is_empty() => folded.matches(s.as_str()).count() as f64,
            Matcher::Substring(_) => 0.0,
            Matcher::Tokens { toks: want, prefix } => {
                if want.is_empty() || want.len() > toks.len() {
                    return 0.0;
                }
                let last = want.len() - 1;
                (0..=toks.len() - want.len())
                    .filter(|&i| {
                        want.iter().enumerate().all(|(j, w)| {
                            let have = &toks[i + j];
                            if *prefix && j == last {
                                have.starts_with(w.as_str())
                            } else {
                                have == w
                            }
                        })
                    })
                    .count() as f64
            }
        }
    }
}

/// One candidate's text, as the ranker needs it.
pub struct Doc<'a> {
    pub text: &'a str,
    pub files: &'a str,
}

/// The relevance of each of `docs` for `q` (positive; 0 when nothing of
/// the query is found in the text, e.g. a match only the index saw).
pub fn relevance(q: &Query, docs: &[Doc<'_>]) -> Vec<f64> {
    let matchers: Vec<Matcher> = q.terms.iter().map(Matcher::of).collect();
    let prepared: Vec<(Vec<String>, String, Vec<String>, String)> = docs
        .iter()
        .map(|d| {
            let folded = |s: &str| s.chars().map(fold).collect::<String>();
            (
                tokens(d.text),
                folded(d.text),
                tokens(d.files),
                folded(d.files),
            )
        })
        .collect();
    let len = |p: &(Vec<String>, String, Vec<String>, String)| {
        p.0.len() as f64 + FILES_WEIGHT * p.2.len() as f64
    };
    let avg = if prepared.is_empty() {
        1.0
    } else {
        (prepared.iter().map(len).sum::<f64>() / prepared.len() as f64).max(1.0)
    };
    prepared
        .iter()
        .map(|p| {
            let norm = K1 * (1.0 - B + B * len(p) / avg);
            matchers
                .iter()
                .map(|m| {
                    let tf = m.count(&p.0, &p.1) + FILES_WEIGHT * m.count(&p.2, &p.3);
                    tf * (K1 + 1.0) / (tf + norm)
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::search::parse;

    fn score(q: &str, texts: &[&str]) -> Vec<f64> {
        let q = parse(q).expect("parse");
        let docs: Vec<Doc<'_>> = texts.iter().map(|t| Doc { text: t, files: "" }).collect();
        relevance(&q, &docs)
    }

    #[test]
    fn more_occurrences_and_shorter_texts_rank_higher() {
        let s = score(
            "outage",
            &["outage outage", "outage", "an outage in a long text here"],
        );
        assert!(s[0] > s[1] && s[1] > s[2] && s[2] > 0.0, "{s:?}");
        let s = score("cafe", &["Café crème", "nothing"]);
        assert!(s[0] > 0.0 && s[1] == 0.0, "{s:?}");
        let s = score("deploy*", &["deploying now"]);
        assert!(s[0] > 0.0);
        let s = score(
            "\"release train\"",
            &["the release train", "train the release"],
        );
        assert!(s[0] > 0.0 && s[1] == 0.0, "{s:?}");
        let s = score("東京", &["明日は東京タワー", "大阪"]);
        assert!(s[0] > 0.0 && s[1] == 0.0, "{s:?}");
    }
}
