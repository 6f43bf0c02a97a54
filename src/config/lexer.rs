//! Tokenizer for nginx-style configuration text.
//!
//! Owns the character-level rules, following nginx's `ngx_conf_read_token`:
//! words end at whitespace, `;` or `{` (a `{` right after `$` stays in the word,
//! so `${var}` is one word; a `}` inside a word is part of it, as in nginx);
//! `#` at the start of a token comments to the end of the line; `"..."` and
//! `'...'` are quoted words that must be followed by whitespace, `;`, `{`
//! or `)` (which then starts the next word, as in `if ($a = 'x')`).
//! In both plain and quoted words `\"`, `\'`, `\\`, `\n`, `\r`, `\t` are
//! escapes; any other backslash pair is kept as written. `$variables` are
//! left as text. Structure (`unexpected "}"`, missing `;`) is checked by
//! `parse`.

use std::path::Path;

use super::ConfigError;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A plain or quoted word, escapes already applied.
    Word(String),
    /// `;`
    Semicolon,
    /// `{`
    Open,
    /// `}`
    Close,
}

/// One token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Line of its first character.
    pub line: usize,
}

/// Splits `text` into tokens. `file` only names the source in errors.
pub fn tokenize(text: &str, file: &Path) -> Result<Vec<Token>, ConfigError> {
    Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        file,
    }
    .run()
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    file: &'a Path,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Lexer<'_> {
    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            message,
        }
    }

    fn run(mut self) -> Result<Vec<Token>, ConfigError> {
        let mut tokens = Vec::new();
        while let Some(&c) = self.chars.get(self.pos) {
            let line = self.line;
            let tok = match c {
                '\n' => {
                    self.line += 1;
                    self.pos += 1;
                    continue;
                }
                c if is_space(c) => {
                    self.pos += 1;
                    continue;
                }
                '#' => {
                    while self.chars.get(self.pos).is_some_and(|&c| c != '\n') {
                        self.pos += 1;
                    }
                    continue;
                }
                ';' => {
                    self.pos += 1;
                    Tok::Semicolon
                }
                '{' => {
                    self.pos += 1;
                    Tok::Open
                }
                '}' => {
                    self.pos += 1;
                    Tok::Close
                }
                '"' | '\'' => Tok::Word(self.quoted(c)?),
                _ => Tok::Word(self.word()),
            };
            tokens.push(Token { tok, line });
        }
        Ok(tokens)
    }

    /// Consumes a backslash escape starting at `self.pos` (the backslash) and
    /// appends its meaning to `out`.
    fn escape(&mut self, out: &mut String) {
        self.pos += 1;
        let Some(&next) = self.chars.get(self.pos) else {
            out.push('\\');
            return;
        };
        self.pos += 1;
        match next {
            '"' | '\'' | '\\' => out.push(next),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            other => {
                if other == '\n' {
                    self.line += 1;
                }
                out.push('\\');
                out.push(other);
            }
        }
    }

    fn quoted(&mut self, quote: char) -> Result<String, ConfigError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.chars.get(self.pos) else {
                return Err(self.error(start_line, "unterminated quoted string".to_string()));
            };
            if c == '\\' {
                self.escape(&mut out);
                continue;
            }
            self.pos += 1;
            if c == quote {
                break;
            }
            if c == '\n' {
                self.line += 1;
            }
            out.push(c);
        }
        match self.chars.get(self.pos) {
            // nginx: a `)` may follow (`if ($a = 'x')`); it starts a word.
            Some(&c) if !is_space(c) && c != ';' && c != '{' && c != ')' => {
                Err(self.error(self.line, format!("unexpected \"{c}\"")))
            }
            _ => Ok(out),
        }
    }

    fn word(&mut self) -> String {
        let mut out = String::new();
        let mut after_dollar = false;
        while let Some(&c) = self.chars.get(self.pos) {
            if is_space(c) || c == ';' || (c == '{' && !after_dollar) {
                break;
            }
            if c == '\\' {
                self.escape(&mut out);
                after_dollar = false;
                continue;
            }
            self.pos += 1;
            after_dollar = c == '$';
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<(Tok, usize)> {
        match tokenize(text, Path::new("t.conf")) {
            Ok(v) => v.into_iter().map(|t| (t.tok, t.line)).collect(),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn word(s: &str) -> Tok {
        Tok::Word(s.to_string())
    }

    fn lex_err(text: &str) -> String {
        match tokenize(text, Path::new("t.conf")) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn words_punctuation_and_lines() {
        let t = toks("worker_processes 2;\nhttp {\n  server{}\n}\n");
        assert_eq!(
            t,
            vec![
                (word("worker_processes"), 1),
                (word("2"), 1),
                (Tok::Semicolon, 1),
                (word("http"), 2),
                (Tok::Open, 2),
                (word("server"), 3),
                (Tok::Open, 3),
                (Tok::Close, 3),
                (Tok::Close, 4),
            ]
        );
    }

    #[test]
    fn comments_only_at_token_start() {
        let t = toks("# full line\nroot /a#b; # trailing\n#x;\nindex i;");
        assert_eq!(
            t,
            vec![
                (word("root"), 2),
                (word("/a#b"), 2),
                (Tok::Semicolon, 2),
                (word("index"), 4),
                (word("i"), 4),
                (Tok::Semicolon, 4),
            ]
        );
    }

    #[test]
    fn quoted_strings_with_spaces_and_escapes() {
        let t = toks(r#"return 200 "hello \"you\"\n\tC:\\x \d" 'it\'s';"#);
        assert_eq!(t[2].0, word("hello \"you\"\n\tC:\\x \\d"));
        assert_eq!(t[3].0, word("it's"));
        // Adjacent quoted words need a space between them.
        assert!(lex_err(r#"a "x"'y';"#).contains("unexpected \"'\""));
        let t = toks("a 'one two' \"\" \"x\";");
        assert_eq!(t[1].0, word("one two"));
        assert_eq!(t[2].0, word(""));
        assert_eq!(t[3].0, word("x"));
        assert_eq!(t[4].0, Tok::Semicolon);
    }

    #[test]
    fn quoted_string_spanning_lines_keeps_line_count() {
        let t = toks("a \"x\ny\";\nb;");
        assert_eq!(t[1], (word("x\ny"), 1));
        assert_eq!(t[3], (word("b"), 3));
    }

    #[test]
    fn unquoted_escapes_and_variables() {
        let t = toks(r"root /a\ b${host}/x} \;;");
        assert_eq!(t[1].0, word(r"/a\ b${host}/x}"));
        assert_eq!(t[2].0, word("\\;"));
        assert_eq!(t[3].0, Tok::Semicolon);
        let t = toks("set $a{");
        assert_eq!(t[1].0, word("$a"));
        assert_eq!(t[2].0, Tok::Open);
    }

    #[test]
    fn unterminated_quote_reports_opening_line() {
        let e = lex_err("a;\nroot \"abc\n\n");
        assert_eq!(e, "t.conf:2: unterminated quoted string");
        let e = lex_err("x 'abc\\'");
        assert_eq!(e, "t.conf:1: unterminated quoted string");
    }

    #[test]
    fn quote_followed_by_junk_is_an_error() {
        assert_eq!(lex_err("a \"b\"c;"), "t.conf:1: unexpected \"c\"");
        assert_eq!(lex_err("a \"b\"}"), "t.conf:1: unexpected \"}\"");
        assert!(tokenize("a \"b\"{}", Path::new("t")).is_ok());
        // `if ($request_method = 'OPTIONS')`: the `)` is the next word.
        let t = toks("if ($m = 'OPTIONS') {}");
        assert_eq!(t[3].0, word("OPTIONS"));
        assert_eq!(t[4].0, word(")"));
        assert!(tokenize("a \"b\"", Path::new("t")).is_ok());
    }

    #[test]
    fn trailing_backslash_does_not_panic() {
        assert_eq!(toks("a\\")[0].0, word("a\\"));
        assert!(tokenize("\"\\", Path::new("t")).is_err());
    }
}
