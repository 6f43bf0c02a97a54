//! Built-in MIME table, used when the configuration has no `types { }` block.
//!
//! Mirrors nginx's `conf/mime.types`, plus a few modern extensions (`mjs`,
//! `ttf`, `otf`, `gz`, `tar`, `wav`, `csv`, `md`, `map`, `webmanifest`).

/// `(type, extensions)` rows in nginx `mime.types` order.
const TABLE: &[(&str, &[&str])] = &[
    ("text/html", &["html", "htm", "shtml"]),
    ("text/css", &["css"]),
    ("text/xml", &["xml"]),
    ("image/gif", &["gif"]),
    ("image/jpeg", &["jpeg", "jpg"]),
    ("application/javascript", &["js", "mjs"]),
    ("application/atom+xml", &["atom"]),
    ("application/rss+xml", &["rss"]),
    ("text/mathml", &["mml"]),
    ("text/plain", &["txt"]),
    ("text/vnd.sun.j2me.app-descriptor", &["jad"]),
    ("text/vnd.wap.wml", &["wml"]),
    ("text/x-component", &["htc"]),
    ("text/csv", &["csv"]),
    ("text/markdown", &["md"]),
    ("text/calendar", &["ics"]),
    ("image/avif", &["avif"]),
    ("image/png", &["png"]),
    ("image/svg+xml", &["svg", "svgz"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/vnd.wap.wbmp", &["wbmp"]),
    ("image/webp", &["webp"]),
    ("image/x-icon", &["ico"]),
    ("image/x-jng", &["jng"]),
    ("image/x-ms-bmp", &["bmp"]),
    ("font/woff", &["woff"]),
    ("font/woff2", &["woff2"]),
    ("font/ttf", &["ttf"]),
    ("font/otf", &["otf"]),
    ("application/java-archive", &["jar", "war", "ear"]),
    ("application/json", &["json", "map"]),
    ("application/manifest+json", &["webmanifest"]),
    ("application/mac-binhex40", &["hqx"]),
    ("application/msword", &["doc"]),
    ("application/pdf", &["pdf"]),
    ("application/postscript", &["ps", "eps", "ai"]),
    ("application/rtf", &["rtf"]),
    ("application/vnd.apple.mpegurl", &["m3u8"]),
    ("application/vnd.google-earth.kml+xml", &["kml"]),
    ("application/vnd.google-earth.kmz", &["kmz"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("application/vnd.ms-fontobject", &["eot"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    ("application/vnd.oasis.opendocument.graphics", &["odg"]),
    ("application/vnd.oasis.opendocument.presentation", &["odp"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    ("application/vnd.wap.wmlc", &["wmlc"]),
    ("application/wasm", &["wasm"]),
    ("application/gzip", &["gz"]),
    ("application/x-tar", &["tar"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/x-cocoa", &["cco"]),
    ("application/x-java-archive-diff", &["jardiff"]),
    ("application/x-java-jnlp-file", &["jnlp"]),
    ("application/x-makeself", &["run"]),
    ("application/x-perl", &["pl", "pm"]),
    ("application/x-pilot", &["prc", "pdb"]),
    ("application/x-rar-compressed", &["rar"]),
    ("application/x-redhat-package-manager", &["rpm"]),
    ("application/x-sea", &["sea"]),
    ("application/x-shockwave-flash", &["swf"]),
    ("application/x-stuffit", &["sit"]),
    ("application/x-tcl", &["tcl", "tk"]),
    ("application/x-x509-ca-cert", &["der", "pem", "crt"]),
    ("application/x-xpinstall", &["xpi"]),
    ("application/xhtml+xml", &["xhtml"]),
    ("application/xspf+xml", &["xspf"]),
    ("application/zip", &["zip"]),
    (
        "application/octet-stream",
        &[
            "bin", "exe", "dll", "deb", "dmg", "iso", "img", "msi", "msp", "msm",
        ],
    ),
    ("audio/midi", &["mid", "midi", "kar"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/ogg", &["ogg"]),
    ("audio/x-m4a", &["m4a"]),
    ("audio/x-realaudio", &["ra"]),
    ("audio/wav", &["wav"]),
    ("video/3gpp", &["3gpp", "3gp"]),
    ("video/mp2t", &["ts"]),
    ("video/mp4", &["mp4"]),
    ("video/mpeg", &["mpeg", "mpg"]),
    ("video/quicktime", &["mov"]),
    ("video/webm", &["webm"]),
    ("video/x-flv", &["flv"]),
    ("video/x-m4v", &["m4v"]),
    ("video/x-mng", &["mng"]),
    ("video/x-ms-asf", &["asx", "asf"]),
    ("video/x-ms-wmv", &["wmv"]),
    ("video/x-msvideo", &["avi"]),
];

/// The built-in table as `(extension, type)` pairs, the shape of
/// `HttpConf::mime_types`.
pub fn default_mime_types() -> Vec<(String, String)> {
    TABLE
        .iter()
        .flat_map(|(ty, exts)| exts.iter().map(|e| (e.to_string(), ty.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn extensions_are_unique_lowercase_and_cover_the_basics() {
        let table = default_mime_types();
        let mut seen = HashSet::new();
        for (ext, _) in &table {
            assert!(seen.insert(ext.as_str()), "duplicate extension {ext}");
            assert_eq!(ext, &ext.to_ascii_lowercase());
        }
        let lookup = |e: &str| table.iter().find(|(x, _)| x == e).map(|(_, t)| t.as_str());
        assert_eq!(lookup("html"), Some("text/html"));
        assert_eq!(lookup("css"), Some("text/css"));
        assert_eq!(lookup("png"), Some("image/png"));
        assert_eq!(lookup("wasm"), Some("application/wasm"));
        assert_eq!(lookup("woff2"), Some("font/woff2"));
        for e in [
            "htm", "shtml", "xml", "gif", "jpeg", "jpg", "js", "mjs", "json", "atom", "rss", "txt",
            "svg", "svgz", "webp", "ico", "bmp", "tif", "tiff", "woff", "ttf", "otf", "eot", "pdf",
            "zip", "gz", "tar", "mp3", "mp4", "webm", "ogg", "wav", "avi", "mov", "mpeg", "mpg",
            "csv", "md", "map",
        ] {
            assert!(lookup(e).is_some(), "missing {e}");
        }
    }
}
