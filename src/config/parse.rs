//! Raw directive tree: tokens -> `Directive`s, with `include` expanded.
//!
//! Owns block structure (`unexpected "}"`, missing `;` at end of file), the
//! `include FILE;` directive (relative to the including file's directory,
//! `*`/`?` globs in the last path component, sorted, depth limit against
//! cycles) and reading config files: regular files only (`include /dev/zero`
//! would read forever), at most [`MAX_CONFIG_BYTES`] for the main file and
//! every included one together. Every directive remembers the file it came
//! from so that later errors name the right file.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::{tokenize, Tok};
use super::ConfigError;

/// How many `include` levels may nest (a file including itself stops here).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// How many blocks may nest, across includes (keeps recursion in later stages
/// and in `Drop` shallow whatever the input).
pub const MAX_BLOCK_DEPTH: usize = 64;

/// Most bytes of configuration read for one load: the main file and all the
/// files it includes, together.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Directive name (first word).
    pub name: String,
    /// The remaining words.
    pub args: Vec<String>,
    /// File the directive is written in.
    pub file: Arc<PathBuf>,
    /// 1-based line of the name.
    pub line: usize,
    /// `Some` for a `{ }` block, `None` for a `;`-terminated directive.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// An error located at this directive.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.as_ref().clone(),
            line: self.line,
            message: message.into(),
        }
    }

    /// The block's directives (empty for a non-block directive).
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Why a config file could not be read.
pub enum ReadError {
    /// The OS refused (missing, permissions, a directory...).
    Io(std::io::Error),
    /// Not UTF-8; the 1-based line of the first bad byte.
    Utf8(usize),
    /// A device, FIFO, socket or directory.
    NotAFile,
    /// Past what is left of [`MAX_CONFIG_BYTES`].
    TooLarge,
}

impl ReadError {
    /// The error for `file`, located at `at` (the `include` directive) or at
    /// the file as a whole.
    pub fn located(self, file: &Path, at: Option<&Directive>) -> ConfigError {
        let message = match self {
            ReadError::Utf8(line) => return utf8_error(file, line),
            ReadError::Io(e) if at.is_none() => format!("cannot open: {e}"),
            ReadError::Io(e) => format!("cannot open \"{}\": {e}", file.display()),
            ReadError::NotAFile => format!("\"{}\" is not a regular file", file.display()),
            ReadError::TooLarge => format!(
                "configuration is larger than {} MiB (with \"{}\")",
                MAX_CONFIG_BYTES >> 20,
                file.display()
            ),
        };
        match at {
            Some(d) => d.error(message),
            None => ConfigError {
                file: file.to_path_buf(),
                line: 0,
                message,
            },
        }
    }
}

/// Reads a config file as UTF-8 text, taking its size from `budget_bytes`
/// (what is left of [`MAX_CONFIG_BYTES`]). Opened non-blocking, so a FIFO
/// cannot hold the master, and refused unless it is a regular file.
pub fn read_text(path: &Path, budget_bytes: &mut u64) -> Result<String, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > *budget_bytes {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never past the budget.
    file.take(*budget_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > *budget_bytes {
        return Err(ReadError::TooLarge);
    }
    *budget_bytes -= bytes.len() as u64;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ReadError::Utf8(line)
    })
}

/// Error for a file that is not UTF-8.
pub fn utf8_error(file: &Path, line: usize) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line,
        message: "invalid UTF-8 in configuration".to_string(),
    }
}

/// Parses `text` (the contents of `file`) into directives, expanding
/// `include`s whose relative paths resolve against `include_base`; `text`
/// and the included files together stay within [`MAX_CONFIG_BYTES`].
pub fn parse_text(
    text: &str,
    file: Arc<PathBuf>,
    include_base: &Path,
) -> Result<Vec<Directive>, ConfigError> {
    let Some(mut budget_bytes) = MAX_CONFIG_BYTES.checked_sub(text.len() as u64) else {
        return Err(ReadError::TooLarge.located(&file, None));
    };
    let mut n = Nesting {
        include_depth: 0,
        block_depth: 0,
        budget_bytes: &mut budget_bytes,
    };
    parse_nested(text, file, include_base, &mut n)
}

/// Where a parse is: how deep in includes and blocks, and how many bytes
/// of configuration may still be read.
struct Nesting<'a> {
    include_depth: usize,
    block_depth: usize,
    budget_bytes: &'a mut u64,
}

/// An open block while parsing: the directive header and the children so far.
struct Frame {
    name: String,
    args: Vec<String>,
    line: usize,
    parent: Vec<Directive>,
}

fn parse_nested(
    text: &str,
    file: Arc<PathBuf>,
    include_base: &Path,
    n: &mut Nesting<'_>,
) -> Result<Vec<Directive>, ConfigError> {
    let block_depth = n.block_depth;
    let tokens = tokenize(text, &file)?;
    let err = |line: usize, message: String| ConfigError {
        file: file.as_ref().clone(),
        line,
        message,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut current: Vec<Directive> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut words_line = 0;
    let mut last_line = 1;
    for token in tokens {
        last_line = token.line;
        match token.tok {
            Tok::Word(w) => {
                if words.is_empty() {
                    words_line = token.line;
                }
                words.push(w);
            }
            Tok::Semicolon => {
                let mut it = std::mem::take(&mut words).into_iter();
                let Some(name) = it.next() else {
                    return Err(err(token.line, "unexpected \";\"".to_string()));
                };
                let d = Directive {
                    name,
                    args: it.collect(),
                    file: Arc::clone(&file),
                    line: words_line,
                    block: None,
                };
                if d.name == "include" {
                    let mut inner = Nesting {
                        include_depth: n.include_depth,
                        block_depth: block_depth + stack.len(),
                        budget_bytes: n.budget_bytes,
                    };
                    current.extend(include(&d, include_base, &mut inner)?);
                } else {
                    current.push(d);
                }
            }
            Tok::Open => {
                let mut it = std::mem::take(&mut words).into_iter();
                let Some(name) = it.next() else {
                    return Err(err(token.line, "unexpected \"{\"".to_string()));
                };
                if name == "include" {
                    return Err(err(
                        words_line,
                        "directive \"include\" is not terminated by \";\"".to_string(),
                    ));
                }
                if block_depth + stack.len() >= MAX_BLOCK_DEPTH {
                    return Err(err(
                        words_line,
                        format!("blocks are nested deeper than {MAX_BLOCK_DEPTH} levels"),
                    ));
                }
                stack.push(Frame {
                    name,
                    args: it.collect(),
                    line: words_line,
                    parent: std::mem::take(&mut current),
                });
            }
            Tok::Close => {
                if !words.is_empty() {
                    return Err(err(token.line, "unexpected \"}\"".to_string()));
                }
                let Some(frame) = stack.pop() else {
                    return Err(err(token.line, "unexpected \"}\"".to_string()));
                };
                let children = std::mem::replace(&mut current, frame.parent);
                current.push(Directive {
                    name: frame.name,
                    args: frame.args,
                    file: Arc::clone(&file),
                    line: frame.line,
                    block: Some(children),
                });
            }
        }
    }
    if !words.is_empty() {
        return Err(err(
            last_line,
            "unexpected end of file, expecting \";\" or \"}\"".to_string(),
        ));
    }
    if !stack.is_empty() {
        return Err(err(
            last_line,
            "unexpected end of file, expecting \"}\"".to_string(),
        ));
    }
    Ok(current)
}

/// Expands `include PATTERN;` into the directives of the matching files.
fn include(d: &Directive, base: &Path, n: &mut Nesting<'_>) -> Result<Vec<Directive>, ConfigError> {
    let [pattern] = d.args.as_slice() else {
        return Err(d.error("invalid number of arguments in \"include\" directive"));
    };
    if n.include_depth >= MAX_INCLUDE_DEPTH {
        return Err(d.error(format!(
            "include depth limit ({MAX_INCLUDE_DEPTH}) exceeded (include cycle?) at \"{pattern}\""
        )));
    }
    let path = absolute(base, pattern);
    let files = if has_glob(pattern) {
        expand_glob(d, &path)?
    } else {
        vec![path]
    };
    let mut out = Vec::new();
    for file in files {
        let text = read_text(&file, n.budget_bytes).map_err(|e| e.located(&file, Some(d)))?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut inner = Nesting {
            include_depth: n.include_depth + 1,
            block_depth: n.block_depth,
            budget_bytes: n.budget_bytes,
        };
        out.extend(parse_nested(&text, Arc::new(file), &dir, &mut inner)?);
    }
    Ok(out)
}

/// `base.join(p)` without `.` components or doubled slashes. Does not touch
/// the file system (the path need not exist yet).
pub fn absolute(base: &Path, p: &str) -> PathBuf {
    base.join(p).components().collect()
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Files in `pattern`'s directory whose names match its last component,
/// sorted by name. A missing directory or no match gives no files (nginx).
fn expand_glob(d: &Directive, pattern: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    use std::os::unix::ffi::OsStrExt;

    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Err(d.error(format!("invalid include pattern \"{}\"", pattern.display())));
    };
    if dir.to_str().is_some_and(has_glob) {
        return Err(d.error(format!(
            "wildcards are supported only in the last component of \"{}\"",
            pattern.display()
        )));
    }
    let pat = name.as_bytes();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.as_bytes();
            (!n.starts_with(b".") || pat.starts_with(b"."))
                && glob_match(pat, n)
                && e.metadata().is_ok_and(|m| !m.is_dir())
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Matches `name` against `pat` where `*` is any run and `?` any one byte.
/// Linear backtracking on the last `*`, so no exponential blow-up.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn parse(text: &str) -> Result<Vec<Directive>, ConfigError> {
        parse_text(text, Arc::new(PathBuf::from("t.conf")), Path::new("/"))
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sluice-parse-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn parse_file(path: &Path) -> Result<Vec<Directive>, ConfigError> {
        let text = fs::read_to_string(path).unwrap();
        parse_text(&text, Arc::new(path.to_path_buf()), path.parent().unwrap())
    }

    #[test]
    fn builds_tree_with_lines() {
        let t = parse("a 1 2;\nb {\n  c;\n  d x { }\n}\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].line), ("a", 1));
        assert_eq!(t[0].args, ["1", "2"]);
        assert!(t[0].block.is_none());
        let b = t[1].children();
        assert_eq!((t[1].name.as_str(), t[1].line), ("b", 2));
        assert_eq!((b[0].name.as_str(), b[0].line), ("c", 3));
        assert_eq!(
            (b[1].name.as_str(), b[1].line, b[1].args.len()),
            ("d", 4, 1)
        );
        assert_eq!(b[1].block, Some(vec![]));
        assert_eq!(t[1].file.as_path(), Path::new("t.conf"));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse_err("}"), "t.conf:1: unexpected \"}\"");
        assert_eq!(parse_err("a;\n\nb }"), "t.conf:3: unexpected \"}\"");
        assert_eq!(
            parse_err("a;\nroot /x"),
            "t.conf:2: unexpected end of file, expecting \";\" or \"}\""
        );
        assert_eq!(
            parse_err("http {\n server {\n}\n"),
            "t.conf:3: unexpected end of file, expecting \"}\""
        );
        assert_eq!(parse_err("a;\n;"), "t.conf:2: unexpected \";\"");
        assert_eq!(parse_err("{ }"), "t.conf:1: unexpected \"{\"");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "a {".repeat(100_000);
        assert!(parse_err(&text).contains("nested deeper than 64"));
        let ok = format!("{}{}", "a {".repeat(63), "}".repeat(63));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"*.conf", b"a.conf"));
        assert!(glob_match(b"*.conf", b".conf"));
        assert!(!glob_match(b"*.conf", b"a.confx"));
        assert!(glob_match(b"a?c*", b"abc"));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxbc"));
        assert!(!glob_match(b"a", b"ab"));
        assert!(glob_match(b"**", b""));
        assert!(!glob_match(b"*a*a*a*a*a*b", &[b'a'; 60]));
    }

    #[test]
    fn include_glob_sorted_and_relative_to_including_file() {
        let tmp = TempDir::new("glob");
        tmp.write("conf.d/b.conf", "b_directive;\n");
        tmp.write("conf.d/a.conf", "a_directive 1;\ninclude ../sub/x.inc;\n");
        tmp.write("conf.d/c.txt", "not_included;\n");
        tmp.write("conf.d/.hidden.conf", "not_included;\n");
        tmp.write("sub/x.inc", "\n\nx_directive;\n");
        let main = tmp.write("main.conf", "first;\nhttp {\n  include conf.d/*.conf;\n}\n");
        let t = parse_file(&main).unwrap();
        assert_eq!(t[0].name, "first");
        let names: Vec<&str> = t[1].children().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a_directive", "x_directive", "b_directive"]);
        let x = &t[1].children()[1];
        assert_eq!(x.line, 3);
        assert_eq!(x.file.as_path(), tmp.0.join("conf.d/../sub/x.inc"));
        // A glob that matches nothing is fine, as in nginx.
        let main = tmp.write(
            "empty.conf",
            "include none/*.conf;\ninclude conf.d/*.none;\n",
        );
        assert!(parse_file(&main).unwrap().is_empty());
    }

    #[test]
    fn include_errors_name_the_included_file() {
        let tmp = TempDir::new("err");
        let inc = tmp.write("inc.conf", "ok;\nbad {\n");
        let main = tmp.write("main.conf", "include inc.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!(e.file, inc);
        assert_eq!(e.line, 2);
        // A `}` in an included file cannot close the including file's block.
        tmp.write("close.conf", "}\n");
        let main = tmp.write("main2.conf", "http {\ninclude close.conf;\n}\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!(e.file, tmp.0.join("close.conf"));
        assert_eq!(e.message, "unexpected \"}\"");
    }

    #[test]
    fn include_missing_file_and_bad_forms() {
        let tmp = TempDir::new("missing");
        let main = tmp.write("main.conf", "a;\n\ninclude nope.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (main.clone(), 3));
        assert!(e.message.starts_with("cannot open \""), "{e}");
        assert!(e.message.contains("nope.conf"), "{e}");
        let e = parse_err("include a b;");
        assert_eq!(
            e,
            "t.conf:1: invalid number of arguments in \"include\" directive"
        );
        let e = parse_err("include x { }");
        assert_eq!(
            e,
            "t.conf:1: directive \"include\" is not terminated by \";\""
        );
        let e = parse_err("include /*/x.conf;");
        assert!(
            e.contains("wildcards are supported only in the last"),
            "{e}"
        );
    }

    #[test]
    fn include_dev_zero_is_refused_not_read() {
        // Regression: `include /dev/zero;` read without end (2.4 GB of RSS
        // after 4 s in `sluice -t` and in a reloading master).
        let tmp = TempDir::new("devzero");
        let main = tmp.write("main.conf", "a;\ninclude /dev/zero;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (main.clone(), 2));
        assert_eq!(e.message, "\"/dev/zero\" is not a regular file");
        // A directory, and a FIFO nobody writes to (opening it must not wait).
        fs::create_dir_all(tmp.0.join("dir.conf")).unwrap();
        nix::unistd::mkfifo(&tmp.0.join("fifo.conf"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        for name in ["dir.conf", "fifo.conf"] {
            let main = tmp.write("m.conf", &format!("include {name};\n"));
            let e = parse_file(&main).unwrap_err();
            assert!(e.message.ends_with("is not a regular file"), "{name}: {e}");
        }
        // The main file too.
        let mut budget = MAX_CONFIG_BYTES;
        assert!(matches!(
            read_text(Path::new("/dev/zero"), &mut budget),
            Err(ReadError::NotAFile)
        ));
    }

    #[test]
    fn config_over_16_mib_in_one_file_or_in_all_includes_is_refused() {
        let tmp = TempDir::new("big");
        // One sparse file past the cap: refused by its size, unread.
        let big = tmp.0.join("big.conf");
        fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES + 1)
            .unwrap();
        let main = tmp.write("main.conf", "include big.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (main.clone(), 1));
        assert!(
            e.message.starts_with("configuration is larger than 16 MiB"),
            "{e}"
        );
        // Two files under the cap each, over it together: the second is refused.
        let comment = format!("#{}\n", "x".repeat(9 << 20));
        tmp.write("a.conf", &comment);
        tmp.write("b.conf", &comment);
        let main = tmp.write("two.conf", "include a.conf;\nok;\ninclude b.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (main, 3));
        assert!(e.message.contains("b.conf"), "{e}");
        // One of them alone is fine.
        let main = tmp.write("one.conf", "include a.conf;\nok;\n");
        assert_eq!(parse_file(&main).unwrap().len(), 1);
    }

    #[test]
    fn include_cycle_hits_depth_limit() {
        let tmp = TempDir::new("cycle");
        tmp.write("a.conf", "include b.conf;\n");
        tmp.write("b.conf", "x;\ninclude a.conf;\n");
        let main = tmp.write("main.conf", "include a.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert!(e.message.contains("include depth limit (16)"), "{e}");
        assert!(e.file == tmp.0.join("a.conf") || e.file == tmp.0.join("b.conf"));
        assert_ne!(e.line, 0);
    }

    #[test]
    fn include_of_non_utf8_file_names_line() {
        let tmp = TempDir::new("utf8");
        let bad = tmp.0.join("bad.conf");
        fs::write(&bad, b"a;\nb \xff;\n").unwrap();
        let main = tmp.write("main.conf", "include bad.conf;\n");
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file, e.line), (bad, 2));
    }

    #[test]
    fn absolute_paths_are_lexically_tidied() {
        assert_eq!(
            absolute(Path::new("/etc/s"), "./x//y"),
            Path::new("/etc/s/x/y")
        );
        assert_eq!(absolute(Path::new("/etc/s"), "/abs"), Path::new("/abs"));
        assert_eq!(
            absolute(Path::new("/etc/s"), "../r"),
            Path::new("/etc/s/../r")
        );
    }
}
