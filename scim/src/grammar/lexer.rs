//! Tokens of the filter and path grammar: brackets, parentheses, quoted strings, and words
//! (attribute paths, keywords, operators, numbers and bare values all lex as words; the parser
//! decides which by position).

use super::syntax::GrammarError;

/// One token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) position: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    OpenParen,
    CloseParen,
    OpenBracket,
    CloseBracket,
    /// A quoted string, unescaped.
    Quoted(String),
    /// A run of characters up to whitespace, a bracket, a parenthesis or a quote.
    Word(String),
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// Splits `input` into tokens.
pub(super) fn tokenize(input: &str) -> Result<Vec<Token>, GrammarError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(position, c)) = chars.peek() {
        let kind = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '(' => TokenKind::OpenParen,
            ')' => TokenKind::CloseParen,
            '[' => TokenKind::OpenBracket,
            ']' => TokenKind::CloseBracket,
            '"' => {
                let (text, end) = quoted(input, position)?;
                while chars.peek().is_some_and(|&(at, _)| at < end) {
                    chars.next();
                }
                tokens.push(Token {
                    kind: TokenKind::Quoted(text),
                    position,
                });
                continue;
            }
            c if c.is_control() => {
                return Err(GrammarError {
                    position,
                    reason: format!("control character {c:?} outside a quoted string"),
                });
            }
            _ => {
                let mut end = position;
                while let Some(&(at, c)) = chars.peek() {
                    if ends_word(c) {
                        break;
                    }
                    end = at + c.len_utf8();
                    chars.next();
                }
                tokens.push(Token {
                    kind: TokenKind::Word(input[position..end].to_owned()),
                    position,
                });
                continue;
            }
        };
        chars.next();
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

/// Reads the JSON string starting at `start` (a `"`); returns its text and the byte after it.
fn quoted(input: &str, start: usize) -> Result<(String, usize), GrammarError> {
    let bytes = input.as_bytes();
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => {
                let literal = &input[start..=at];
                return serde_json::from_str::<String>(literal)
                    .map(|text| (text, at + 1))
                    .map_err(|error| GrammarError {
                        position: start,
                        reason: format!("invalid string {literal}: {error}"),
                    });
            }
            _ => at += 1,
        }
    }
    Err(GrammarError {
        position: start,
        reason: "unterminated string".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input).unwrap().into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn words_stop_at_brackets_and_quotes() {
        assert_eq!(
            kinds(r#"emails[type eq "work"].value"#),
            vec![
                TokenKind::Word("emails".into()),
                TokenKind::OpenBracket,
                TokenKind::Word("type".into()),
                TokenKind::Word("eq".into()),
                TokenKind::Quoted("work".into()),
                TokenKind::CloseBracket,
                TokenKind::Word(".value".into()),
            ]
        );
    }

    #[test]
    fn strings_unescape_like_json() {
        assert_eq!(
            kinds(r#""a \"b\" \u00e9\\""#),
            vec![TokenKind::Quoted("a \"b\" é\\".into())]
        );
    }

    #[test]
    fn control_characters_outside_strings_are_errors() {
        assert!(tokenize("userName eq a\u{0}b").is_err());
        assert!(tokenize("userName eq \"a\\u0000b\"").is_ok());
    }

    #[test]
    fn unterminated_strings_are_errors() {
        assert!(tokenize(r#"userName eq "abc"#).is_err());
        assert!(tokenize(r#"userName eq "abc\"#).is_err());
    }
}
