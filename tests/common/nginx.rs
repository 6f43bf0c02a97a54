//! [`Nginx`]: a real nginx started in the foreground under its own prefix,
//! for tests that put sluice behind it (`auth_request`).

use super::{free_port, port_refuses, wait_for, Foreground, TempDir, START_TIMEOUT};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// A real nginx (master and one worker) on a free loopback port; stopped on
/// drop by its pid (QUIT, then SIGKILL for it and its worker).
pub struct Nginx {
    /// Its port.
    pub port: u16,
    process: Foreground,
}

impl Nginx {
    /// Start nginx in `dir` with `http_body` inside `http { }` (`{port}` and
    /// `{dir}` replaced). `None` when nginx is not installed or does not
    /// listen within 10 s.
    pub fn start(dir: &TempDir, http_body: &str) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = free_port();
        fs::create_dir_all(dir.join("logs")).ok()?;
        let d = dir.path().display();
        let body = http_body
            .replace("{port}", &port.to_string())
            .replace("{dir}", &d.to_string());
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             pid {d}/nginx.pid;\nerror_log {d}/logs/nginx-error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/cb;\n proxy_temp_path {d}/px;\n\
             fastcgi_temp_path {d}/fc;\n uwsgi_temp_path {d}/uw;\n scgi_temp_path {d}/sc;\n{body}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf).ok()?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let nginx = Nginx {
            port,
            process: Foreground { child },
        };
        wait_for(START_TIMEOUT, || (!port_refuses(port)).then_some(()))?;
        Some(nginx)
    }
}
