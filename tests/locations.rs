//! Locations the nginx way: `=` first, then the longest prefix (kept at once
//! when it is `^~`), then regexes (`~`, `~*`) in config order, then that
//! prefix; `$1`..`$9` from the matching regex; `@name` locations are never
//! matched by a URI; bad patterns fail `-t` at their line.

mod common;

use common::*;

fn start() -> Server {
    Server::start(Conf::new().workers(1).server(
        "        location = /exact { return 200 \"exact\"; }\n\
         \x20       location /images/ { return 200 \"prefix images\"; }\n\
         \x20       location ^~ /static/ { return 200 \"no-regex static\"; }\n\
         \x20       location ~ \\.(php|cgi)$ { return 200 \"regex $1 for $uri\"; }\n\
         \x20       location ~* ^/images/(.+)\\.(jpe?g|png)$ { return 200 \"image $1 as $2\"; }\n\
         \x20       location ~ ^/images/ { return 200 \"second regex\"; }\n\
         \x20       location @fallback { return 200 \"named\"; }\n\
         \x20       location ~ ^/api/(?<version>v[0-9]+)/(.*)$ { return 200 \"api [$1] [$2] [$3]\"; }",
    ))
}

#[test]
fn nginx_location_order_and_captures() {
    let s = start();
    let cases = [
        ("/exact", "exact"),
        // The longest prefix is /images/, but a regex matches: the first
        // matching regex in config order wins, case-insensitively for ~*.
        ("/images/cat.JPG", "image cat as JPG"),
        ("/images/dir/a.png", "image dir/a as png"),
        ("/images/readme.txt", "second regex"),
        // ^~ stops the regex search even though `\.php$` would match.
        ("/static/x.php", "no-regex static"),
        ("/a/b/index.php", "regex php for /a/b/index.php"),
        ("/x.CGI", "ret-ok-not"),
        // Named captures count in the numbering.
        ("/api/v2/users/7", "api [v2] [users/7] []"),
    ];
    for (path, want) in cases {
        let r = s.get(path);
        if want == "ret-ok-not" {
            // `~` is case-sensitive: /x.CGI falls to the `/` prefix (a 404).
            assert_eq!(r.status, 404, "{path}: {}", r.text());
            continue;
        }
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
    // A named location is not reachable by its name as a URI.
    assert_eq!(s.get("/@fallback").status, 404);
    // Captures come from the decoded, normalized path.
    assert_eq!(s.get("/images/a%20b.png").text(), "image a b as png");
}

#[test]
fn bad_location_patterns_fail_t_with_file_and_line() {
    let port = free_port();
    let server = |loc: &str| format!("  server {{\n    listen 127.0.0.1:{port};\n    {loc}\n  }}");
    assert_t_fails(
        "loc-re",
        &server("location ~ ^/(unclosed { }"),
        7,
        "invalid regex \"^/(unclosed\"",
    );
    assert_t_fails(
        "loc-var",
        &server("location ~ ^/x { return 200 \"$10\"; }"),
        7,
        "unknown \"10\" variable",
    );
    assert_t_fails("loc-dup", &format!("  server {{\n    listen 127.0.0.1:{port};\n    location @a {{ }}\n    location @a {{ }}\n  }}"), 8, "duplicate location \"@a\"");
}

#[test]
fn alias_maps_a_prefix_or_a_regex_capture_to_another_directory() {
    let dir = TempDir::new("alias");
    std::fs::create_dir_all(dir.join("other/sub")).unwrap();
    std::fs::write(dir.join("other/a.txt"), "aliased\n").unwrap();
    std::fs::write(dir.join("other/sub/b.txt"), "deeper\n").unwrap();
    std::fs::write(dir.join("other/index.html"), "other index\n").unwrap();
    let o = dir.path().join("other").display().to_string();
    let s = Server::start_in(
        dir,
        Conf::new().workers(1).server(&format!(
            "        location /files/ {{ alias {o}/; }}\n\
             \x20       location = /one {{ alias {o}/a.txt; }}\n\
             \x20       location ~ ^/dl/(.+)$ {{ alias {o}/sub/$1; }}"
        )),
    );
    assert_eq!(s.get("/files/a.txt").text(), "aliased\n");
    assert_eq!(s.get("/files/sub/b.txt").text(), "deeper\n");
    assert_eq!(s.get("/files/").text(), "other index\n");
    assert_eq!(s.get("/one").text(), "aliased\n");
    assert_eq!(s.get("/dl/b.txt").text(), "deeper\n");
    assert_eq!(s.get("/files/nope").status, 404);
    // The root's files are not reachable through the alias, nor above it.
    assert_eq!(
        s.get("/files/../hello.txt").status,
        200,
        "normalized to /hello.txt under root"
    );
    assert_eq!(s.get("/files/%2e%2e/hello.txt").text(), HELLO_TXT);
    let port = free_port();
    assert_t_fails(
        "alias-root",
        &format!("  server {{\n    listen 127.0.0.1:{port};\n    location /x/ {{ root /tmp; alias /tmp/; }}\n  }}"),
        7,
        "\"alias\" directive is duplicate",
    );
}
