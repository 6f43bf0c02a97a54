//! Static files and `return`: bodies, index files, directory redirects,
//! conditional requests (ETag / Last-Modified), single ranges, HEAD, 405,
//! path traversal, MIME types, `return` variants (incl. 444 and `$uri`),
//! `add_header` and `server_tokens`.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

fn raw_get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// One request with extra header lines (each ending in "\r\n").
fn get_with(srv: &Server, path: &str, extra_headers: &str) -> Response {
    let mut c = srv.client();
    c.send(&raw_get(path, extra_headers));
    c.read_response()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn expected_etag(srv: &Server, rel: &str) -> String {
    let p = srv.path(rel);
    let size = fs::metadata(&p).expect("stat").len();
    format!("\"{:x}-{:x}\"", mtime_secs(&p), size)
}

#[test]
fn serves_file_with_length_type_etag_and_last_modified() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
    assert_eq!(r.content_length(), Some(HELLO_TXT.len()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("etag"),
        Some(expected_etag(&srv, "www/hello.txt").as_str())
    );
    let lm = http_date(mtime_secs(&srv.path("www/hello.txt")));
    assert_eq!(r.header("last-modified"), Some(lm.as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
}

#[test]
fn serves_large_binary_file_byte_exact() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/64k.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIN_64K_BYTES);
    assert_eq!(
        r.body,
        fs::read(srv.path("www/64k.bin")).expect("read 64k.bin")
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
}

#[test]
fn root_and_directory_with_slash_serve_index_html() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), INDEX_HTML_BYTES);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = srv.get("/dir/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), DIR_INDEX);
}

#[test]
fn directory_without_slash_redirects_with_301_keeping_query() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/dir");
    assert_eq!(r.status, 301);
    let loc = r.header("location").expect("Location on 301");
    assert!(loc.ends_with("/dir/"), "Location {loc:?}");
    let r = srv.get("/dir?a=1");
    assert_eq!(r.status, 301);
    let loc = r.header("location").expect("Location on 301");
    assert!(loc.ends_with("/dir/?a=1"), "Location {loc:?}");
}

#[test]
fn directory_without_index_is_403_and_missing_file_is_404() {
    let srv = Server::start(Conf::new());
    assert_eq!(srv.get("/emptydir/").status, 403);
    let r = srv.get("/nope.txt");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(r.text().contains("404"), "error page body: {}", r.text());
    assert_eq!(r.content_length(), Some(r.body.len()));
}

#[test]
fn if_none_match_with_current_etag_gives_304_without_body() {
    let srv = Server::start(Conf::new());
    let etag = expected_etag(&srv, "www/hello.txt");
    let r = get_with(&srv, "/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get_with(&srv, "/hello.txt", "If-None-Match: \"other\"\r\n");
    assert_eq!(r.status, 200);
    let r = get_with(&srv, "/hello.txt", "If-None-Match: *\r\n");
    assert_eq!(r.status, 304);
}

#[test]
fn if_modified_since_gives_304_when_unchanged_and_200_when_older() {
    let srv = Server::start(Conf::new());
    let mtime = mtime_secs(&srv.path("www/hello.txt"));
    let same = format!("If-Modified-Since: {}\r\n", http_date(mtime));
    assert_eq!(get_with(&srv, "/hello.txt", &same).status, 304);
    let older = format!("If-Modified-Since: {}\r\n", http_date(mtime - 3600));
    let r = get_with(&srv, "/hello.txt", &older);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
}

#[test]
fn if_match_mismatch_gives_412_and_match_gives_200() {
    let srv = Server::start(Conf::new());
    let r = get_with(&srv, "/hello.txt", "If-Match: \"nope\"\r\n");
    assert_eq!(r.status, 412);
    let etag = expected_etag(&srv, "www/hello.txt");
    let r = get_with(&srv, "/hello.txt", &format!("If-Match: {etag}\r\n"));
    assert_eq!(r.status, 200);
}

#[test]
fn etag_changes_when_the_file_changes() {
    let srv = Server::start(Conf::new());
    let p = srv.path("www/hello.txt");
    set_mtime(&p, 1_000_000_000);
    let before = wait_for(Duration::from_secs(3), || {
        let r = srv.get("/hello.txt");
        (r.header("etag") == Some(expected_etag(&srv, "www/hello.txt").as_str())).then_some(r)
    })
    .expect("ETag follows the file's mtime");
    fs::write(&p, "changed content, longer than before\n").expect("rewrite");
    set_mtime(&p, 1_000_000_100);
    let after = wait_for(Duration::from_secs(3), || {
        let r = srv.get("/hello.txt");
        (r.text() == "changed content, longer than before\n").then_some(r)
    })
    .expect("changed file served within 3 s");
    assert_ne!(before.header("etag"), after.header("etag"));
    assert_eq!(
        after.header("etag"),
        Some(expected_etag(&srv, "www/hello.txt").as_str())
    );
    assert_eq!(
        after.header("last-modified"),
        Some(http_date(1_000_000_100).as_str())
    );
}

#[test]
fn single_range_gives_206_with_content_range() {
    let srv = Server::start(Conf::new());
    let file = fs::read(srv.path("www/64k.bin")).expect("read 64k.bin");
    let cases: [(&str, usize, usize); 4] = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-100", BIN_64K_BYTES - 100, BIN_64K_BYTES - 1),
        ("bytes=65500-", 65500, BIN_64K_BYTES - 1),
    ];
    for (range, first, last) in cases {
        let r = get_with(&srv, "/64k.bin", &format!("Range: {range}\r\n"));
        assert_eq!(r.status, 206, "{range}");
        let cr = format!("bytes {first}-{last}/{BIN_64K_BYTES}");
        assert_eq!(r.header("content-range"), Some(cr.as_str()), "{range}");
        assert_eq!(r.content_length(), Some(last - first + 1), "{range}");
        assert_eq!(r.body, &file[first..=last], "{range}");
    }
    // A range past the end is clamped.
    let r = get_with(&srv, "/hello.txt", "Range: bytes=0-99999\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), HELLO_TXT);
}

#[test]
fn unsatisfiable_range_gives_416_with_star_content_range() {
    let srv = Server::start(Conf::new());
    let r = get_with(&srv, "/hello.txt", "Range: bytes=9999-\r\n");
    assert_eq!(r.status, 416);
    let cr = format!("bytes */{}", HELLO_TXT.len());
    assert_eq!(r.header("content-range"), Some(cr.as_str()));
}

#[test]
fn if_range_with_stale_etag_sends_whole_file() {
    let srv = Server::start(Conf::new());
    let r = get_with(
        &srv,
        "/hello.txt",
        "Range: bytes=0-3\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
    let etag = expected_etag(&srv, "www/hello.txt");
    let r = get_with(
        &srv,
        "/hello.txt",
        &format!("Range: bytes=0-3\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), &HELLO_TXT[..4]);
}

#[test]
fn head_sends_headers_with_content_length_and_no_body() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(b"HEAD /64k.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read_head_response().expect("HEAD response");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(BIN_64K_BYTES));
    assert!(r.header("etag").is_some());
    // No body follows: the next response on the connection comes right after.
    let r = c.get("/hello.txt").expect("GET after HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO_TXT);
    c.send(b"HEAD /nope HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.read_head_response().expect("HEAD 404");
    assert_eq!(r.status, 404);
    assert!(
        c.read_until_close(Duration::from_secs(3)).is_empty(),
        "bytes after a HEAD response"
    );
}

#[test]
fn post_to_static_file_is_405_with_allow() {
    let srv = Server::start(Conf::new());
    for method in ["POST", "PUT", "DELETE"] {
        let raw = srv.exchange(
            format!("{method} /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
                .as_bytes(),
        );
        let rs = parse_responses(&raw);
        assert_eq!(rs.len(), 1, "{method}: {}", String::from_utf8_lossy(&raw));
        assert_eq!(rs[0].status, 405, "{method}");
        assert_eq!(rs[0].header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn path_traversal_above_root_is_400() {
    let srv = Server::start(Conf::new());
    for target in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/dir/../../etc/passwd",
        "/..%2f..%2fetc/passwd",
    ] {
        let r = srv.get(target);
        assert_eq!(r.status, 400, "{target}");
        assert!(!r.text().contains("root:"), "{target} leaked a file");
    }
}

#[test]
fn dot_segments_inside_root_are_normalized() {
    let srv = Server::start(Conf::new());
    for target in [
        "/dir/../hello.txt",
        "/./hello.txt",
        "//hello.txt",
        "/%68ello.txt",
    ] {
        let r = srv.get(target);
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.text(), HELLO_TXT, "{target}");
    }
}

#[test]
fn mime_types_and_default_type_come_from_config() {
    let srv =
        Server::start(Conf::new().http(
            "types { text/x-custom cst; application/json json; }\ndefault_type text/x-default;",
        ));
    fs::write(srv.path("www/a.cst"), "c").expect("write");
    fs::write(srv.path("www/b.JSON"), "{}").expect("write");
    fs::write(srv.path("www/noext"), "n").expect("write");
    assert_eq!(
        srv.get("/a.cst").header("content-type"),
        Some("text/x-custom")
    );
    assert_eq!(
        srv.get("/b.JSON").header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        srv.get("/noext").header("content-type"),
        Some("text/x-default")
    );
    // A `types` block replaces the built-in table.
    assert_eq!(
        srv.get("/hello.txt").header("content-type"),
        Some("text/x-default")
    );
}

#[test]
fn builtin_mime_types_cover_common_extensions() {
    let srv = Server::start(Conf::new());
    for (name, ty) in [
        ("a.css", "text/css"),
        ("a.json", "application/json"),
        ("a.htm", "text/html"),
        ("a.unknownext", "application/octet-stream"),
    ] {
        fs::write(srv.path(&format!("www/{name}")), "x").expect("write");
        assert_eq!(
            srv.get(&format!("/{name}")).header("content-type"),
            Some(ty),
            "{name}"
        );
    }
}

#[test]
fn return_200_with_text_body() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/ret");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ret-ok");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // POST is fine for `return` (no static file involved).
    let raw = srv.exchange(
        b"POST /ret HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&raw), vec![200]);
}

#[test]
fn return_301_expands_uri_into_location() {
    let srv = Server::start(Conf::new());
    let r = srv.get("/r/some/page.html?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/new/r/some/page.html"));
    // $uri is the normalized, decoded path.
    let r = srv.get("/r/a/../b");
    assert_eq!(r.header("location"), Some("/new/r/b"));
}

#[test]
fn return_variants_codes_urls_and_variables() {
    let srv = Server::start(Conf::new().server(
        "location = /gone { return 404; }\n\
         location = /empty { return 204; }\n\
         location = /tmp { return 302 http://$host/elsewhere?$args; }\n\
         location = /echo { return 200 \"uri=$uri args=$args ru=$request_uri\"; }\n\
         location = /url { return http://example.test/; }",
    ));
    let r = srv.get("/gone");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404"));
    let r = srv.get("/empty");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(r.content_length().is_none_or(|n| n == 0));
    let mut c = srv.client();
    c.send(b"GET /tmp?q=2 HTTP/1.1\r\nHost: host.test:8080\r\nConnection: close\r\n\r\n");
    let r = c.read_response().expect("302");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://host.test/elsewhere?q=2"));
    let r = srv.get("/echo?k=v");
    assert_eq!(r.text(), "uri=/echo args=k=v ru=/echo?k=v");
    let r = srv.get("/url");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.test/"));
}

#[test]
fn return_444_closes_without_any_response() {
    let srv = Server::start(Conf::new().server("location = /drop { return 444; }"));
    let mut c = srv.client();
    c.send(b"GET /drop HTTP/1.1\r\nHost: t\r\n\r\n");
    let got = c.read_until_close(Duration::from_secs(3));
    assert!(
        got.is_empty(),
        "444 sent bytes: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        c.closed_within(Duration::from_millis(100)),
        "444 left the connection open"
    );
    // Logged as 444.
    srv.quit();
    assert!(
        srv.access_log().contains("\"GET /drop HTTP/1.1\" 444 0"),
        "{}",
        srv.access_log()
    );
}

#[test]
fn add_header_on_success_and_always_on_errors() {
    let srv = Server::start(
        Conf::new().server("add_header X-Test yes;\nadd_header X-Always \"a b\" always;"),
    );
    let r = srv.get("/hello.txt");
    assert_eq!(r.header("x-test"), Some("yes"));
    assert_eq!(r.header("x-always"), Some("a b"));
    let r = srv.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-test"),
        None,
        "add_header without always on a 404"
    );
    assert_eq!(r.header("x-always"), Some("a b"));
    // A location with its own add_header replaces the inherited list.
    let srv2 = Server::start(
        Conf::new().server("add_header X-Server s;\nlocation /dir/ { add_header X-Loc l; }"),
    );
    let r = srv2.get("/dir/");
    assert_eq!(r.header("x-loc"), Some("l"));
    assert_eq!(r.header("x-server"), None);
    assert_eq!(srv2.get("/hello.txt").header("x-server"), Some("s"));
}

#[test]
fn server_tokens_on_shows_version_and_off_hides_it() {
    let srv = Server::start(Conf::new());
    let want = format!("sluice/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(srv.get("/hello.txt").header("server"), Some(want.as_str()));
    let srv = Server::start(Conf::new().http("server_tokens off;"));
    let r = srv.get("/hello.txt");
    assert_eq!(r.header("server"), Some("sluice"));
    assert_eq!(r.header_count("server"), 1);
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    let srv = Server::start(Conf::new());
    let lm = http_date(mtime_secs(&srv.path("www/hello.txt")));
    let r = get_with(
        &srv,
        "/hello.txt",
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn percent_encoded_names_are_decoded_and_redirects_re_encoded() {
    let srv = Server::start(Conf::new());
    fs::write(srv.path("www/a b.txt"), "spaced").expect("write");
    fs::create_dir_all(srv.path("www/my dir")).expect("mkdir");
    let r = srv.get("/a%20b.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "spaced"));
    let r = srv.get("/my%20dir");
    assert_eq!(r.status, 301);
    let loc = r.header("location").expect("Location");
    assert!(loc.ends_with("/my%20dir/"), "Location {loc:?}");
}

#[test]
fn head_on_return_sends_length_without_body() {
    let srv = Server::start(Conf::new());
    let mut c = srv.client();
    c.send(b"HEAD /ret HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_head_response().expect("HEAD /ret");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some("ret-ok".len()));
    assert_eq!(c.get("/hello.txt").expect("next").text(), HELLO_TXT);
}

#[test]
fn error_on_keep_alive_connection_keeps_it_usable() {
    let srv = Server::start(Conf::new());
    let raw = srv.exchange(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&raw), vec![405, 404, 200]);
}
