//! The rewrite module's directives: ops in order, conditions, the blocks
//! of `if`s, script variables, and their `file:line` errors.

use super::tests::{assert_err, http, load_ok};
use super::*;

fn loc_ops(body: &str) -> (Config, Vec<Op>) {
    let c = load_ok(&http(&format!("server {{\nlocation / {{\n{body}\n}}\n}}")));
    let ops = c.http.servers[0].locations[0].rewrite.ops.clone();
    (c, ops)
}

#[test]
fn ops_keep_config_order_and_flags() {
    let (_, ops) = loc_ops(
        "set $a 1;\nrewrite ^/a /b last;\nrewrite ^/c http://x/;\nrewrite ^/d /e? permanent;\nbreak;\nreturn 204;",
    );
    assert!(matches!(ops[0], Op::Set { args: false, .. }));
    let flags: Vec<RewriteFlag> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Rewrite(r) => Some(r.flag),
            _ => None,
        })
        .collect();
    assert_eq!(
        flags,
        [
            RewriteFlag::Last,
            RewriteFlag::Redirect,
            RewriteFlag::Permanent
        ]
    );
    let Op::Rewrite(d) = &ops[3] else { panic!() };
    assert!(d.drop_args);
    assert_eq!(d.replacement.source, "/e");
    assert!(matches!(ops[4], Op::Break));
    assert!(matches!(ops[5], Op::Return(ReturnConf { code: 204, .. })));
}

#[test]
fn every_condition_form_parses() {
    for (cond, want) in [
        ("($a)", "var"),
        ("( $a )", "var"),
        ("($a = x)", "eq"),
        ("($request_method = 'OPTIONS')", "eq"),
        ("($a != \"\")", "ne"),
        ("($uri ~ ^/(a|b)$)", "re"),
        ("($uri ~* \\.(gif|jpg)$)", "re"),
        ("($uri !~ x)", "nre"),
        ("($uri !~* x)", "nre"),
        ("(-f $request_filename)", "f"),
        ("(!-f $request_filename)", "nf"),
        ("(-d /tmp)", "f"),
        ("(!-d /tmp)", "nf"),
        ("(-e /tmp)", "f"),
        ("(!-e /tmp)", "nf"),
        ("(-x /bin/sh)", "f"),
        ("(!-x /bin/sh)", "nf"),
    ] {
        let (c, ops) = loc_ops(&format!("set $a 1;\nif {cond} {{ return 200; }}"));
        let Op::If { cond: got, loc, .. } = &ops[1] else {
            panic!("{cond}")
        };
        let kind = match got {
            Cond::Var(_) => "var",
            Cond::Eq { negate: false, .. } => "eq",
            Cond::Eq { negate: true, .. } => "ne",
            Cond::Regex { negate: false, .. } => "re",
            Cond::Regex { negate: true, .. } => "nre",
            Cond::File { negate: false, .. } => "f",
            Cond::File { negate: true, .. } => "nf",
        };
        assert_eq!(kind, want, "{cond}");
        // The block has a configuration of its own, after the locations.
        let l = loc.expect("an if in a location has a block");
        assert_eq!(c.http.servers[0].locations[l].match_kind, LocationMatch::If);
    }
}

#[test]
fn if_blocks_inherit_their_location_and_override_it() {
    let c = load_ok(&http(
        "server {\nlocation /a {\nroot /r1;\nadd_header X-Loc 1;\n\
         if ($arg_x) { add_header X-If 1; root /r2; if ($arg_y) { gzip on; } }\n}\n}",
    ));
    let s = &c.http.servers[0];
    let locs: Vec<(LocationMatch, &str)> = s
        .locations
        .iter()
        .map(|l| (l.match_kind, l.path.as_str()))
        .collect();
    assert_eq!(
        locs,
        [
            (LocationMatch::Prefix, "/a"),
            (LocationMatch::Prefix, "/"),
            (LocationMatch::If, "/a"),
            (LocationMatch::If, "/a"),
        ]
    );
    let (outer, inner) = (&s.locations[2], &s.locations[3]);
    assert_eq!(outer.root, std::path::Path::new("/r2"));
    assert_eq!(outer.add_headers[0].name, "X-If");
    assert_eq!(inner.root, std::path::Path::new("/r2"));
    assert!(inner.gzip.on && !outer.gzip.on);
    let Op::If { ops, loc, .. } = &s.locations[0].rewrite.ops[0] else {
        panic!()
    };
    assert_eq!(*loc, Some(2));
    assert!(matches!(ops[0], Op::If { loc: Some(3), .. }));
}

#[test]
fn script_variables_are_known_everywhere_in_the_block() {
    // Used before its `set`, in another server, and a named capture.
    let c = load_ok(&http(
        "server {\nreturn 200 \"$later $name\";\n}\nserver {\nset $later 1;\n\
         rewrite ^/(?<name>\\w+) /x;\n}",
    ));
    let Some(ReturnConf { text: Some(t), .. }) = c.http.servers[0].rewrite.first_return() else {
        panic!()
    };
    assert!(t
        .parts
        .iter()
        .any(|p| matches!(p, Part::Var(Var::Script(_, n)) if n == "later")));
    let (_, ops) = loc_ops("set $args a=1;");
    assert!(matches!(ops[0], Op::Set { args: true, .. }));
}

#[test]
fn rewrite_errors_name_file_and_line() {
    let srv = |body: &str| http(&format!("server {{\nlocation / {{\n{body}\n}}\n}}"));
    assert_err(&srv("if ($a = x { }"), 5, "invalid condition \"($a\"");
    assert_err(
        &srv("if ($uri) {\ntry_files $uri =404;\n}"),
        6,
        "\"try_files\" directive is not allowed here",
    );
    assert_err(
        &srv("if ($uri) {\nno_such x;\n}"),
        6,
        "unknown directive \"no_such\"",
    );
    assert_err(&srv("if ($uri) {\nproxy_pass http://127.0.0.1:1/x;\n}"), 6,
        "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block");
    assert_err(
        &srv("if ($uri ^ x) { }"),
        5,
        "unexpected \"^\" in condition",
    );
    assert_err(&srv("if (-q /x) { }"), 5, "invalid condition \"-q\"");
    assert_err(
        &srv("if ($uri ~ \"(\") { }"),
        5,
        "invalid regex \"(\": error: unclosed group",
    );
    assert_err(&srv("set $uri x;"), 5, "the duplicate \"uri\" variable");
    assert_err(&srv("set a x;"), 5, "invalid variable name \"a\"");
    assert_err(&srv("set $a $nope;"), 5, "unknown \"nope\" variable");
    assert_err(
        &srv("rewrite ^ /x bogus;"),
        5,
        "invalid parameter \"bogus\"",
    );
    assert_err(
        &srv("rewrite ^(x /x;"),
        5,
        "invalid regex \"^(x\": error: unclosed group",
    );
    assert_err(
        &srv("break 1;"),
        5,
        "invalid number of arguments in \"break\" directive",
    );
    // A server's `if` holds only rewrite directives.
    assert_err(
        &http("server {\nif ($uri) {\nroot /x;\n}\n}"),
        5,
        "\"root\" directive is not allowed here",
    );
    assert_err(
        &http("rewrite ^ /x;"),
        3,
        "\"rewrite\" directive is not allowed here",
    );
    // A directive over several lines: the error names its first line.
    assert_err(
        &srv("rewrite\n  ^/a\n  /b\n  bogus;"),
        5,
        "invalid parameter \"bogus\"",
    );
    assert_err(&srv("if ($a\n  =\n  b) {\n}"), 5, "unknown \"a\" variable");
}

#[test]
fn rewrite_log_and_uninitialized_variable_warn_inherit() {
    let c = load_ok(&http(
        "rewrite_log on;\nuninitialized_variable_warn off;\nserver {\nlocation /a { rewrite_log off; }\n}",
    ));
    let s = &c.http.servers[0];
    assert!(s.rewrite.log && !s.rewrite.uninit_warn);
    assert!(!s.locations[0].rewrite.log && !s.locations[0].rewrite.uninit_warn);
    assert!(s.locations[1].rewrite.log);
}
