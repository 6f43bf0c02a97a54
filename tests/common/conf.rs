//! [`Conf`]: the config a test wants, rendered into nginx syntax for one
//! server's directory and port.

use std::path::Path;

/// What a test wants from the config; rendered into nginx syntax by
/// [`Conf::render`] with the test's directory and port.
#[derive(Debug, Clone)]
pub struct Conf {
    /// `worker_processes`.
    pub workers: usize,
    /// `daemon on|off` (written only when `Some`).
    pub daemon: Option<bool>,
    /// `worker_connections`.
    pub worker_connections: usize,
    /// `accept_mode`.
    pub accept_mode: &'static str,
    /// Parameters after the access log path.
    pub access_log_params: String,
    /// Extra main-context directives.
    pub main_extra: String,
    /// Extra http-level directives.
    pub http_extra: String,
    /// Extra server-level directives (locations go here too).
    pub server_extra: String,
    /// Extra parameters of the `listen` directive.
    pub listen_params: String,
}

impl Default for Conf {
    fn default() -> Self {
        Conf {
            workers: 2,
            daemon: Some(true),
            worker_connections: 1024,
            accept_mode: "handoff",
            access_log_params: "combined buffer=64k flush=1s".into(),
            main_extra: String::new(),
            http_extra: String::new(),
            server_extra: String::new(),
            listen_params: String::new(),
        }
    }
}

impl Conf {
    /// The default test config: 2 workers, handoff, `/ret`, `/status`, `/r/`.
    pub fn new() -> Conf {
        Conf::default()
    }

    /// Set `worker_processes`.
    pub fn workers(mut self, n: usize) -> Conf {
        self.workers = n;
        self
    }

    /// Set `worker_connections`.
    pub fn worker_connections(mut self, n: usize) -> Conf {
        self.worker_connections = n;
        self
    }

    /// Set `accept_mode`.
    pub fn accept_mode(mut self, mode: &'static str) -> Conf {
        self.accept_mode = mode;
        self
    }

    /// Set the access log parameters (after the path).
    pub fn access_log(mut self, params: &str) -> Conf {
        self.access_log_params = params.into();
        self
    }

    /// Add main-context directives.
    pub fn main(mut self, text: &str) -> Conf {
        self.main_extra.push_str(text);
        self.main_extra.push('\n');
        self
    }

    /// Add http-level directives.
    pub fn http(mut self, text: &str) -> Conf {
        self.http_extra.push_str(text);
        self.http_extra.push('\n');
        self
    }

    /// Add server-level directives.
    pub fn server(mut self, text: &str) -> Conf {
        self.server_extra.push_str(text);
        self.server_extra.push('\n');
        self
    }

    /// Omit the `daemon` directive (for `-g "daemon off;"`).
    pub fn no_daemon_directive(mut self) -> Conf {
        self.daemon = None;
        self
    }

    /// Extra `listen` parameters, e.g. "reuseport".
    pub fn listen_params(mut self, params: &str) -> Conf {
        self.listen_params = params.into();
        self
    }

    /// The config text for a server living in `dir` on `port` (`@PORT@` in
    /// the http-level text becomes the port: more servers on it).
    pub fn render(&self, dir: &Path, port: u16) -> String {
        let d = dir.display();
        let daemon = match self.daemon {
            Some(true) => "daemon on;\n",
            Some(false) => "daemon off;\n",
            None => "",
        };
        format!(
            "worker_processes {workers};\n{daemon}pid {d}/sluice.pid;\n\
             error_log {d}/error.log info;\nstate_dir {d}/state;\n\
             worker_shutdown_timeout 10s;\n{main}\
             events {{\n    worker_connections {wc};\n    accept_mode {mode};\n}}\n\
             http {{\n    access_log {d}/access.log {alp};\n    keepalive_timeout 75s;\n\
             \x20   client_header_timeout 60s;\n    large_client_header_buffers 4 8k;\n\
             \x20   client_max_body_size 1m;\n{http}\
             \x20   server {{\n        listen 127.0.0.1:{port} {lp};\n        root {d}/www;\n\
             \x20       index index.html;\n\
             \x20       location = /ret {{ return 200 \"ret-ok\"; }}\n\
             \x20       location = /status {{ status; }}\n\
             \x20       location /r/ {{ return 301 /new$uri; }}\n{server}\
             \x20   }}\n}}\n",
            workers = self.workers,
            main = self.main_extra,
            wc = self.worker_connections,
            mode = self.accept_mode,
            alp = self.access_log_params,
            http = self.http_extra.replace("@PORT@", &port.to_string()),
            lp = self.listen_params,
            server = self.server_extra,
        )
    }
}
