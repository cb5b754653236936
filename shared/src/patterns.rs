//! A list of patterns in regex-lite's syntax, matched by one lazy DFA
//! (regex-automata's hybrid engine): a single pass over a text, linear in
//! its length, says whether any pattern matches and which one matched first.
//!
//! The syntax and meaning stay regex-lite's, which docs/ai-prompt-guard.md documents:
//! `\d`, `\s`, `\w` and `\b` are ASCII, `.` and negated classes match whole
//! characters. The one difference: `(?i)` also folds non-ASCII letters
//! (`é` matches `É`), where regex-lite folds ASCII only.

use crate::config::ConfigError;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::Input;
use regex_syntax::ast::{self, Ast, ClassAscii, ClassAsciiKind, ClassPerl, ClassPerlKind, ClassSet, ClassSetItem};
use regex_syntax::hir::Hir;
use std::sync::Mutex;

/// regex-lite's nesting limit.
const NEST_LIMIT: u32 = 250;
/// What the compiled patterns may take (the regex crate's default size
/// limit): a counted repetition like `\d{55555554}` is refused at load
/// instead of exhausting the VM's memory.
const NFA_SIZE_LIMIT: usize = 10 * (1 << 20);

pub struct PatternSet {
    dfa: DFA,
    /// The lazy DFA's state cache: grows as states are first needed. A
    /// wasm VM runs one request at a time, so the lock is never contended
    /// there; it keeps the type shareable natively.
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PatternSet({} patterns)", self.dfa.pattern_len())
    }
}

impl PatternSet {
    /// Compiles `patterns` (config field `field`); errors name the pattern.
    /// None for an empty list.
    pub fn new(field: &str, patterns: &[String]) -> Result<Option<PatternSet>, ConfigError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let hirs = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| hir(p).map_err(|e| ConfigError::new(format!("{field}[{i}]"), format!("invalid pattern: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let too_big = |e: String| ConfigError::new(field, format!("patterns too large to compile: {e}"));
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build_many_from_hir(&hirs)
            .map_err(|e| too_big(e.to_string()))?;
        // Never give up on a text however often the cache must be cleared:
        // a search always answers.
        let dfa = DFA::builder()
            .configure(DFA::config().minimum_cache_clear_count(None))
            .build_from_nfa(nfa)
            .map_err(|e| too_big(e.to_string()))?;
        let cache = Mutex::new(dfa.create_cache());
        Ok(Some(PatternSet { dfa, cache }))
    }

    /// The index of the pattern whose match ends first in `text`, if any.
    /// Should the engine fail (it is configured not to give up), the text
    /// counts as matching pattern 0: a guard fails closed.
    pub fn first_match(&self, text: &str) -> Option<usize> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.dfa.try_search_fwd(&mut cache, &Input::new(text).earliest(true)) {
            Ok(found) => found.map(|m| m.pattern().as_usize()),
            Err(e) => {
                log::error!("pattern search failed ({e}); treated as a match");
                Some(0)
            }
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.first_match(text).is_some()
    }
}

/// Parses one pattern and gives it regex-lite's ASCII meaning of Perl
/// classes and word boundaries, the rest in Unicode mode.
fn hir(pattern: &str) -> Result<Hir, String> {
    let mut ast = ast::parse::ParserBuilder::new().nest_limit(NEST_LIMIT).build().parse(pattern).map_err(|e| e.to_string())?;
    asciify(&mut ast);
    regex_syntax::hir::translate::TranslatorBuilder::new().build().translate(pattern, &ast).map_err(|e| e.to_string())
}

fn ascii_class(p: &ClassPerl) -> ClassAscii {
    let kind = match p.kind {
        ClassPerlKind::Digit => ClassAsciiKind::Digit,
        ClassPerlKind::Space => ClassAsciiKind::Space,
        ClassPerlKind::Word => ClassAsciiKind::Word,
    };
    ClassAscii { span: p.span, kind, negated: p.negated }
}

fn asciify_set(set: &mut ClassSet) {
    match set {
        ClassSet::Item(item) => asciify_item(item),
        ClassSet::BinaryOp(op) => {
            asciify_set(&mut op.lhs);
            asciify_set(&mut op.rhs);
        }
    }
}

fn asciify_item(item: &mut ClassSetItem) {
    match item {
        ClassSetItem::Perl(p) => *item = ClassSetItem::Ascii(ascii_class(p)),
        ClassSetItem::Bracketed(b) => asciify_set(&mut b.kind),
        ClassSetItem::Union(u) => u.items.iter_mut().for_each(asciify_item),
        _ => {}
    }
}

/// `\d \s \w` become `[[:digit:]] [[:space:]] [[:word:]]` (ASCII even in
/// Unicode mode); `\b \B` become `(?-u:\b) (?-u:\B)`.
fn asciify(node: &mut Ast) {
    match node {
        Ast::ClassPerl(p) => {
            let class = ast::ClassBracketed { span: p.span, negated: false, kind: ClassSet::Item(ClassSetItem::Ascii(ascii_class(p))) };
            *node = Ast::class_bracketed(class);
        }
        Ast::ClassBracketed(b) => asciify_set(&mut b.kind),
        Ast::Assertion(a) if matches!(a.kind, ast::AssertionKind::WordBoundary | ast::AssertionKind::NotWordBoundary) => {
            let span = a.span;
            let not_unicode = vec![
                ast::FlagsItem { span, kind: ast::FlagsItemKind::Negation },
                ast::FlagsItem { span, kind: ast::FlagsItemKind::Flag(ast::Flag::Unicode) },
            ];
            let assertion = std::mem::replace(node, Ast::empty(span));
            let kind = ast::GroupKind::NonCapturing(ast::Flags { span, items: not_unicode });
            *node = Ast::group(ast::Group { span, kind, ast: Box::new(assertion) });
        }
        Ast::Repetition(r) => asciify(&mut r.ast),
        Ast::Group(g) => asciify(&mut g.ast),
        Ast::Alternation(a) => a.asts.iter_mut().for_each(asciify),
        Ast::Concat(c) => c.asts.iter_mut().for_each(asciify),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn set(patterns: &[&str]) -> PatternSet {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        PatternSet::new("p", &owned).unwrap().unwrap()
    }

    #[test]
    fn same_meaning_as_regex_lite() {
        let patterns = ["\\w+", "\\d", "\\s", "\\bx\\b", "a.b", "[^a]", "[\\w-]+", "\\W", "\\D", "(?i)abc", "[[:alpha:]]", "x\\B", "^é$", ".{2}", "[\\d\\s]"];
        let texts = ["δ", "᠕", "\u{2000}", "áxβ", "aéb", "é", "a-b_c", "ABC", "xé", "éé", "a b", "x1"];
        for p in patterns {
            let lite = regex_lite::Regex::new(p).unwrap();
            let ours = set(&[p]);
            for t in texts {
                assert_eq!(ours.is_match(t), lite.is_match(t), "{p:?} on {t:?}");
            }
        }
    }

    #[test]
    fn case_folding_also_covers_non_ascii_letters() {
        assert!(set(&["(?i)été"]).is_match("ÉTÉ"));
    }

    #[test]
    fn the_first_match_in_the_text_names_its_pattern() {
        let s = set(&["password", "api key"]);
        assert_eq!(s.first_match("my api key and my password"), Some(1));
        assert_eq!(s.first_match("my password and my api key"), Some(0));
        assert_eq!(s.first_match("nothing here"), None);
    }

    #[test]
    fn errors_name_the_pattern() {
        for bad in ["\\p{L}", "(?<=a)b", "a{2,1}", "(", &"(".repeat(300)] {
            let e = PatternSet::new("deny_patterns", &["ok".to_string(), bad.to_string()]).err().unwrap();
            assert_eq!(e.path, "deny_patterns[1]", "{bad}");
        }
        assert!(PatternSet::new("x", &[]).unwrap().is_none());
        let huge = PatternSet::new("deny_patterns", &[r"\d{7}-\d{2}-\d{55555554}".to_string()]).err().unwrap();
        assert!(huge.message.contains("too large"), "{}", huge.message);
    }

    #[test]
    fn long_texts_are_linear() {
        // A pattern that backtracking engines take exponential time on.
        let s = set(&["(a+)+$"]);
        let text = format!("{}b", "a".repeat(100_000));
        assert!(!s.is_match(&text));
    }
}
