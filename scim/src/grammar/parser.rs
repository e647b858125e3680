//! A recursive-descent parser over the lexer's tokens, with a depth counter.
//!
//! Precedence, loosest first: `or`, `and`, `not`, then a comparison, a value path or a
//! parenthesised filter. `and` and `or` chains are kept flat, so the tree is only as deep as
//! the input's nesting, which [`DEPTH_MAX`] bounds.

use super::lexer::{Token, TokenKind, tokenize};
use super::syntax::{AttrPath, CompareOp, Filter, GrammarError, Literal, PatchPath};

/// The longest filter or path accepted, in bytes.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) const FILTER_LEN_MAX: usize = 8 * 1024;
/// The deepest nesting of parentheses, `not` and value paths accepted.
pub(super) const DEPTH_MAX: usize = 32;

/// Parses a filter (`userName eq "bjensen" and not (emails co "@example.com")`).
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn parse_filter(input: &str) -> Result<Filter, GrammarError> {
    let mut parser = Parser::new(input)?;
    let filter = parser.or_expression(Scope::Resource)?;
    parser.expect_end()?;
    Ok(filter)
}

/// Parses a PATCH path (`members[value eq "2819c223"]`, `name.givenName`,
/// `urn:…:enterprise:2.0:User:manager`).
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn parse_patch_path(input: &str) -> Result<PatchPath, GrammarError> {
    let mut parser = Parser::new(input)?;
    let (word, position) = parser.word("an attribute path")?;
    let mut attr = attr_path(&word, position)?;
    let filter = if parser.eat(&TokenKind::OpenBracket) {
        if attr.sub.is_some() {
            return Err(parser.error_at(position, "a value filter applies to an attribute, not a sub-attribute"));
        }
        let filter = parser.nested(|parser| parser.or_expression(Scope::Value))?;
        parser.expect(&TokenKind::CloseBracket, "`]`")?;
        if let Some(Token {
            kind: TokenKind::Word(tail),
            position,
        }) = parser.peek().cloned()
        {
            parser.next();
            attr.sub = Some(sub_attribute(&tail, position)?);
        }
        Some(filter)
    } else {
        None
    };
    parser.expect_end()?;
    Ok(PatchPath { attr, filter })
}

/// Parses one attribute path (`emails.value`, `urn:…:User:employeeNumber`), as in
/// `attributes=` and `sortBy=`.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn parse_attr_path(input: &str) -> Result<AttrPath, GrammarError> {
    if input.len() > FILTER_LEN_MAX {
        return Err(too_long());
    }
    attr_path(input.trim(), 0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Paths name a resource's attributes.
    Resource,
    /// Inside `attr[...]`: paths name sub-attributes, and value paths cannot nest.
    Value,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end: usize,
    depth: usize,
}

fn too_long() -> GrammarError {
    GrammarError {
        position: FILTER_LEN_MAX,
        reason: format!("longer than {FILTER_LEN_MAX} bytes"),
    }
}

impl Parser {
    fn new(input: &str) -> Result<Parser, GrammarError> {
        if input.len() > FILTER_LEN_MAX {
            return Err(too_long());
        }
        Ok(Parser {
            tokens: tokenize(input)?,
            at: 0,
            end: input.len(),
            depth: 0,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += usize::from(token.is_some());
        token
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |token| token.position)
    }

    fn error_at(&self, position: usize, reason: impl Into<String>) -> GrammarError {
        GrammarError {
            position,
            reason: reason.into(),
        }
    }

    fn error(&self, reason: impl Into<String>) -> GrammarError {
        self.error_at(self.position(), reason)
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.peek().is_some_and(|token| token.kind == *kind) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Result<(), GrammarError> {
        if self.eat(kind) {
            return Ok(());
        }
        Err(self.error(format!("expected {what}")))
    }

    fn expect_end(&self) -> Result<(), GrammarError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("unexpected text after the end of the expression")),
        }
    }

    fn word(&mut self, what: &str) -> Result<(String, usize), GrammarError> {
        match self.next() {
            Some(Token {
                kind: TokenKind::Word(word),
                position,
            }) => Ok((word, position)),
            _ => {
                self.at = self.at.saturating_sub(1);
                Err(self.error(format!("expected {what}")))
            }
        }
    }

    /// Whether the next token is the keyword `keyword` (in any case).
    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(word), .. }) if word.eq_ignore_ascii_case(keyword))
    }

    fn nested<T>(&mut self, parse: impl FnOnce(&mut Parser) -> Result<T, GrammarError>) -> Result<T, GrammarError> {
        if self.depth >= DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn or_expression(&mut self, scope: Scope) -> Result<Filter, GrammarError> {
        let mut parts = vec![self.and_expression(scope)?];
        while self.at_keyword("or") {
            self.next();
            parts.push(self.and_expression(scope)?);
        }
        Ok(flatten(parts, Filter::Or, |filter| match filter {
            Filter::Or(parts) => Ok(parts),
            other => Err(other),
        }))
    }

    fn and_expression(&mut self, scope: Scope) -> Result<Filter, GrammarError> {
        let mut parts = vec![self.unary(scope)?];
        while self.at_keyword("and") {
            self.next();
            parts.push(self.unary(scope)?);
        }
        Ok(flatten(parts, Filter::And, |filter| match filter {
            Filter::And(parts) => Ok(parts),
            other => Err(other),
        }))
    }

    fn unary(&mut self, scope: Scope) -> Result<Filter, GrammarError> {
        if self.at_keyword("not")
            && self
                .tokens
                .get(self.at + 1)
                .is_some_and(|token| token.kind == TokenKind::OpenParen)
        {
            self.next();
            self.next();
            let inner = self.nested(|parser| parser.or_expression(scope))?;
            self.expect(&TokenKind::CloseParen, "`)`")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat(&TokenKind::OpenParen) {
            let inner = self.nested(|parser| parser.or_expression(scope))?;
            self.expect(&TokenKind::CloseParen, "`)`")?;
            return Ok(inner);
        }
        self.attribute_expression(scope)
    }

    fn attribute_expression(&mut self, scope: Scope) -> Result<Filter, GrammarError> {
        let (word, position) = self.word("an attribute name, `not` or `(`")?;
        let path = attr_path(&word, position)?;
        if self.peek().is_some_and(|token| token.kind == TokenKind::OpenBracket) {
            if scope == Scope::Value {
                return Err(self.error("value filters cannot nest"));
            }
            if path.sub.is_some() {
                return Err(self.error_at(position, "a value filter applies to an attribute, not a sub-attribute"));
            }
            self.next();
            let mut inner = self.nested(|parser| parser.or_expression(Scope::Value))?;
            self.expect(&TokenKind::CloseBracket, "`]`")?;
            // Entra's `emails[type eq "work"].value eq "x"`, outside RFC 7644's grammar, means
            // `emails[type eq "work" and value eq "x"]`.
            if let Some(Token {
                kind: TokenKind::Word(tail),
                position,
            }) = self.peek().cloned()
                && tail.starts_with('.')
            {
                self.next();
                let sub = AttrPath::named(&sub_attribute(&tail, position)?);
                let condition = self.comparison(sub)?;
                inner = flatten(vec![inner, condition], Filter::And, |filter| match filter {
                    Filter::And(parts) => Ok(parts),
                    other => Err(other),
                });
            }
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        if scope == Scope::Value && (path.urn.is_some() || path.sub.is_some()) {
            return Err(self.error_at(position, "inside a value filter, name a sub-attribute"));
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, GrammarError> {
        let (operator, position) = self.word("an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")?;
        if operator.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(&operator) else {
            return Err(self.error_at(position, format!("unknown operator {operator:?}")));
        };
        let value = self.literal()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn literal(&mut self) -> Result<Literal, GrammarError> {
        match self.next() {
            Some(Token {
                kind: TokenKind::Quoted(text),
                ..
            }) => Ok(Literal::String(text)),
            Some(Token {
                kind: TokenKind::Word(word),
                ..
            }) => Ok(bare_literal(word)),
            _ => {
                self.at = self.at.saturating_sub(1);
                Err(self.error("expected a value"))
            }
        }
    }
}

/// A value without quotes: a keyword, a number, or (leniently, as Entra's documentation and
/// test suites send them) a string.
fn bare_literal(word: String) -> Literal {
    if word.eq_ignore_ascii_case("true") {
        return Literal::Bool(true);
    }
    if word.eq_ignore_ascii_case("false") {
        return Literal::Bool(false);
    }
    if word.eq_ignore_ascii_case("null") {
        return Literal::Null;
    }
    if is_json_number(&word) {
        return Literal::Number(word);
    }
    tracing::debug!(quirk = "unquoted filter value", value = %word, "read a bare word as a string");
    Literal::String(word)
}

/// Whether `text` is a number in JSON's syntax.
pub(crate) fn is_json_number(text: &str) -> bool {
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && matches!(
            serde_json::from_str::<serde_json::Value>(text),
            Ok(serde_json::Value::Number(_))
        )
}

/// Builds an `And`/`Or` of `parts`, merging parts of the same kind so that chains stay flat.
fn flatten(
    parts: Vec<Filter>,
    build: fn(Vec<Filter>) -> Filter,
    split: fn(Filter) -> Result<Vec<Filter>, Filter>,
) -> Filter {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        match split(part) {
            Ok(inner) => flat.extend(inner),
            Err(other) => flat.push(other),
        }
    }
    build(flat)
}

/// Parses `[urn:]name[.sub]`. The URN is everything up to the last `:`, so the dot in `2.0`
/// never splits a name.
fn attr_path(word: &str, position: usize) -> Result<AttrPath, GrammarError> {
    let error = |reason: String| GrammarError { position, reason };
    let (urn, rest) = if word.len() > 4 && word.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:")) {
        match word.rfind(':') {
            Some(colon) => (Some(word[..colon].to_owned()), &word[colon + 1..]),
            None => (None, word),
        }
    } else {
        (None, word)
    };
    let mut parts = rest.split('.');
    let name = parts.next().unwrap_or_default();
    let sub = parts.next();
    if parts.next().is_some() {
        return Err(error(format!("{word:?} nests deeper than attribute.subAttribute")));
    }
    if !is_attr_name(name) {
        return Err(error(format!("{word:?} is not an attribute path")));
    }
    let sub = match sub {
        Some(sub) if is_attr_name(sub) => Some(sub.to_owned()),
        Some(_) => return Err(error(format!("{word:?} has an invalid sub-attribute"))),
        None => None,
    };
    Ok(AttrPath {
        urn,
        name: name.to_owned(),
        sub,
    })
}

/// Parses the `.sub` after a value filter.
fn sub_attribute(tail: &str, position: usize) -> Result<String, GrammarError> {
    match tail.strip_prefix('.') {
        Some(sub) if is_attr_name(sub) => Ok(sub.to_owned()),
        _ => Err(GrammarError {
            position,
            reason: format!("expected `.subAttribute` after `]`, found {tail:?}"),
        }),
    }
}

/// RFC 7643 §2.1: `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`, and
/// `$ref`.
fn is_attr_name(name: &str) -> bool {
    if name == "$ref" {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
