//! network-rust: a NETWORK (L4) Proxy-Wasm plugin (proxy-wasm 0.2.2, StreamContext) that counts
//! the bytes of each connection and, when configured, changes them. See README.md.
//!
//! pluginConfig (all optional):
//!   "uppercase": true        client bytes are upper-cased (ASCII) on their way upstream
//!   "line_buffered": true    client bytes are held (Pause) until a newline or the end of stream,
//!                            then passed on together
//!   "close_on": "QUIT"       a client chunk containing this text closes the connection
//!   "upstream_banner": "..." prepended to the first bytes the upstream sends back

use log::info;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: Rc::new(Config::default()) }) });
}}

#[derive(Default)]
struct Config {
    uppercase: bool,
    line_buffered: bool,
    close_on: Option<String>,
    upstream_banner: Option<String>,
}

// ---- configuration: a tiny hand-written lookup, no JSON crate ----

fn json_value<'a>(cfg: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{}\"", key);
    let at = cfg.find(&pat)?;
    cfg[at + pat.len()..].trim_start().strip_prefix(':').map(|r| r.trim_start())
}

fn json_bool(cfg: &str, key: &str) -> bool {
    json_value(cfg, key).map_or(false, |v| v.starts_with("true"))
}

fn json_string(cfg: &str, key: &str) -> Option<String> {
    let rest = json_value(cfg, key)?.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let cfg = String::from_utf8_lossy(&bytes);
        self.config = Rc::new(Config {
            uppercase: json_bool(&cfg, "uppercase"),
            line_buffered: json_bool(&cfg, "line_buffered"),
            close_on: json_string(&cfg, "close_on"),
            upstream_banner: json_string(&cfg, "upstream_banner"),
        });
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::StreamContext)
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(Connection {
            id: context_id,
            config: self.config.clone(),
            down: 0,
            up: 0,
            bannered: false,
        }))
    }
}

struct Connection {
    id: u32,
    config: Rc<Config>,
    /// Bytes passed on each way (after any change).
    down: usize,
    up: usize,
    bannered: bool,
}

impl Context for Connection {}

impl StreamContext for Connection {
    fn on_new_connection(&mut self) -> Action {
        let src = self
            .get_property(vec!["source", "address"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        info!("#{} network-rust: new connection from {}", self.id, src);
        Action::Continue
    }

    fn on_downstream_data(&mut self, size: usize, end_of_stream: bool) -> Action {
        let data = self.get_downstream_data(0, size).unwrap_or_default();
        if let Some(close_on) = &self.config.close_on {
            if String::from_utf8_lossy(&data).contains(close_on.as_str()) {
                info!("#{} network-rust: {} seen, closing", self.id, close_on);
                self.close_downstream();
                return Action::Pause;
            }
        }
        if self.config.line_buffered && !end_of_stream && !data.contains(&b'\n') {
            return Action::Pause;
        }
        if self.config.uppercase && !data.is_empty() {
            self.set_downstream_data(0, size, &data.to_ascii_uppercase());
        }
        self.down += size;
        Action::Continue
    }

    fn on_downstream_close(&mut self, peer_type: PeerType) {
        info!("#{} network-rust: downstream closed ({:?})", self.id, peer_type as u32);
    }

    fn on_upstream_data(&mut self, size: usize, _end_of_stream: bool) -> Action {
        let mut size = size;
        if let Some(banner) = &self.config.upstream_banner {
            if !self.bannered && size > 0 {
                self.bannered = true;
                self.set_upstream_data(0, 0, banner.as_bytes());
                size += banner.len();
            }
        }
        self.up += size;
        Action::Continue
    }

    fn on_upstream_close(&mut self, peer_type: PeerType) {
        info!("#{} network-rust: upstream closed ({:?})", self.id, peer_type as u32);
    }

    fn on_log(&mut self) {
        info!(
            "#{} network-rust: connection done: downstream {} bytes, upstream {} bytes",
            self.id, self.down, self.up
        );
    }
}
