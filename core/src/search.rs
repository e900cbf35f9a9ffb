//! Full-text search terms for Chinese and mixed text, for SQLite FTS5.
//!
//! FTS5's `unicode61` tokenizer would take a whole run of Chinese characters as one token, and
//! its `trigram` tokenizer cannot match queries shorter than three characters — but most
//! Chinese search words are two characters (火灾, 违建, 群租). So the text is indexed as
//! overlapping character bigrams (火灾隐患 → 火灾 灾隐 隐患), and a query becomes a phrase of
//! its bigrams, which matches exactly where the characters are adjacent. Latin words and
//! numbers are indexed whole, lowercased, and matched by prefix. A one-character Chinese query
//! has no bigram; [`Query::singles`] lists those characters for a substring fallback.

/// Whether `c` is written without spaces between words (CJK ideographs, kana, hangul).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B–F and supplement
}

enum Run {
    Cjk(Vec<char>),
    Word(String),
}

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cjk: Vec<char> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.extend(c.to_lowercase());
        } else {
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
        }
    }
    if !cjk.is_empty() {
        out.push(Run::Cjk(cjk));
    }
    if !word.is_empty() {
        out.push(Run::Word(word));
    }
    out
}

/// The terms to index for `text`: space-separated bigrams and words, for an FTS5 column that
/// uses the `unicode61` tokenizer.
pub fn index_terms(text: &str) -> String {
    let mut terms = String::with_capacity(text.len() * 2);
    for run in runs(text) {
        match run {
            Run::Cjk(chars) if chars.len() == 1 => {
                push_term(&mut terms, chars[0].encode_utf8(&mut [0; 4]))
            }
            Run::Cjk(chars) => {
                for pair in chars.windows(2) {
                    let bigram: String = pair.iter().collect();
                    push_term(&mut terms, &bigram);
                }
            }
            Run::Word(word) => push_term(&mut terms, &word),
        }
    }
    terms
}

fn push_term(terms: &mut String, term: &str) {
    if !terms.is_empty() {
        terms.push(' ');
    }
    terms.push_str(term);
}

/// A search query turned into an FTS5 expression plus characters that need a substring match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// FTS5 MATCH expression (phrases and prefix terms, implicitly AND-ed); `None` when the
    /// query has nothing FTS can match.
    pub fts: Option<String>,
    /// Single Chinese characters that stood alone in the query: match them as substrings.
    pub singles: Vec<char>,
}

/// Parses what a person typed into the search box.
pub fn query(text: &str) -> Query {
    let mut parts = Vec::new();
    let mut singles = Vec::new();
    for run in runs(text) {
        match run {
            Run::Cjk(chars) if chars.len() == 1 => singles.push(chars[0]),
            Run::Cjk(chars) => {
                let bigrams: Vec<String> = chars.windows(2).map(|p| p.iter().collect()).collect();
                // Terms contain only letters and digits, so quoting is enough to keep FTS5
                // operators (AND, NEAR, *, ") out of what a user typed.
                parts.push(format!("\"{}\"", bigrams.join(" ")));
            }
            Run::Word(word) => parts.push(format!("\"{word}\"*")),
        }
    }
    Query {
        fts: (!parts.is_empty()).then(|| parts.join(" ")),
        singles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_indexed_as_bigrams_and_latin_as_words() {
        assert_eq!(index_terms("火灾隐患"), "火灾 灾隐 隐患");
        assert_eq!(
            index_terms("A栋3楼 消防通道堵塞!"),
            "a 栋 3 楼 消防 防通 通道 道堵 堵塞"
        );
        assert_eq!(index_terms("E-Bike 充电"), "e bike 充电");
        assert_eq!(index_terms(""), "");
    }

    #[test]
    fn queries_become_phrases_prefixes_and_singles() {
        assert_eq!(query("火灾").fts.as_deref(), Some("\"火灾\""));
        assert_eq!(query("消防通道").fts.as_deref(), Some("\"消防 防通 通道\""));
        assert_eq!(query("火").fts, None);
        assert_eq!(query("火").singles, vec!['火']);
        assert_eq!(
            query("WiFi 占道").fts.as_deref(),
            Some("\"wifi\"* \"占道\"")
        );
        // Operators and quotes typed by a user are just separators.
        assert_eq!(
            query("a\" OR \"b").fts.as_deref(),
            Some("\"a\"* \"or\"* \"b\"*")
        );
    }
}
