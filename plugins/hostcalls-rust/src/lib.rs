//! hostcalls-rust: a Proxy-Wasm plugin (proxy-wasm 0.2.2) that exercises host calls, one per
//! value of the request header `x-test`. See README.md for the protocol.

use log::{debug, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const QUEUE_NAME: &str = "hostcalls";
const TICKS_KEY: &str = "ticks";
const DEFAULT_CLUSTER: &str = "httpbin";

// ---- configuration: a tiny hand-written lookup, no JSON crate ----

/// The string value of `"key": "value"` (no escapes inside the value).
fn json_string(cfg: &str, key: &str) -> Option<String> {
    let pat = format!("\"{}\"", key);
    let at = cfg.find(&pat)?;
    let rest = cfg[at + pat.len()..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

/// The unsigned integer value of `"key": 123`.
fn json_u64(cfg: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{}\"", key);
    let at = cfg.find(&pat)?;
    let rest = cfg[at + pat.len()..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn utf8_or_dash(bytes: Option<Bytes>) -> String {
    match bytes {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => "-".to_string(),
    }
}

// ---- root context ----

#[derive(Default)]
struct Root {
    cluster: String,
    tick_ms: u64,
    queue_id: Option<u32>,
    metrics: Metrics,
}

#[derive(Default, Clone, Copy)]
struct Metrics {
    requests: Option<u32>,
    inflight: Option<u32>,
    body_bytes: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        info!("vm_start config_size={}", vm_configuration_size);
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let cfg = match self.get_plugin_configuration() {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => String::new(),
        };
        debug!("on_configure size={} config={}", plugin_configuration_size, cfg);
        if cfg.trim() == r#"{"fail":true}"# {
            warn!("configuration asks to fail");
            return false;
        }
        self.cluster = json_string(&cfg, "cluster").unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
        self.tick_ms = json_u64(&cfg, "tick_ms").unwrap_or(0);
        if self.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(self.tick_ms));
        }
        self.queue_id = Some(self.register_shared_queue(QUEUE_NAME));
        self.metrics = Metrics {
            requests: hostcalls::define_metric(MetricType::Counter, "hostcalls_requests_total").ok(),
            inflight: hostcalls::define_metric(MetricType::Gauge, "hostcalls_inflight").ok(),
            body_bytes: hostcalls::define_metric(MetricType::Histogram, "hostcalls_body_bytes").ok(),
        };
        true
    }

    fn on_tick(&mut self) {
        // get, +1, set with the CAS we read; retry when another VM/worker won the race.
        for _ in 0..100 {
            let (value, cas) = self.get_shared_data(TICKS_KEY);
            let n: u64 = value
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            match self.set_shared_data(TICKS_KEY, Some((n + 1).to_string().as_bytes()), cas) {
                Ok(()) => return,
                Err(Status::CasMismatch) => continue,
                Err(status) => {
                    warn!("on_tick: set_shared_data failed: {:?}", status);
                    return;
                }
            }
        }
        warn!("on_tick: gave up after 100 CAS mismatches");
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        loop {
            match self.dequeue_shared_queue(queue_id) {
                Ok(Some(item)) => info!("queue item: {}", String::from_utf8_lossy(&item)),
                Ok(None) => return,
                Err(status) => {
                    warn!("on_queue_ready: dequeue failed: {:?}", status);
                    return;
                }
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            context_id,
            mode: String::new(),
            cluster: self.cluster.clone(),
            metrics: self.metrics,
            counted_inflight: false,
            saw_response: false,
            grpc_replies: Vec::new(),
            grpc_server: String::new(),
        }))
    }
}

// ---- HTTP context ----

struct Http {
    context_id: u32,
    /// The request's `x-test` value ("" when absent).
    mode: String,
    cluster: String,
    metrics: Metrics,
    counted_inflight: bool,
    /// Set once on_http_response_headers ran (upstream or local reply). Without a response (e.g.
    /// after `close`) the host answers BadArgument for the response header map, which the SDK's
    /// get_http_response_header turns into a panic, so on_log only reads `:status` when set.
    saw_response: bool,
    /// `grpc-stream`: messages received so far and the server's initial metadata `x-server`.
    grpc_replies: Vec<String>,
    grpc_server: String,
}

impl Http {
    /// `grpc-stream`: opens a bidirectional stream to `test.Echo/Chat` on the `x-grpc-cluster`
    /// cluster and sends each comma-separated message of `x-grpc-msgs`, the last with end_stream.
    fn open_stream(&self) -> Result<u32, Status> {
        let cluster = self.get_http_request_header("x-grpc-cluster").unwrap_or_default();
        let msgs = self.get_http_request_header("x-grpc-msgs").unwrap_or_default();
        let token = self.open_grpc_stream(&cluster, "test.Echo", "Chat", vec![("x-client", b"rust")])?;
        let parts: Vec<&str> = msgs.split(',').filter(|m| !m.is_empty()).collect();
        for (i, m) in parts.iter().enumerate() {
            hostcalls::send_grpc_stream_message(token, Some(m.as_bytes()), i + 1 == parts.len())?;
        }
        if self.mode == "grpc-cancel" {
            hostcalls::cancel_grpc_stream(token)?;
        }
        Ok(token)
    }

    fn dispatch_callout(&self) -> Result<u32, Status> {
        let path = self
            .get_http_request_header("x-path")
            .unwrap_or_else(|| "/get".to_string());
        self.dispatch_http_call(
            &self.cluster,
            vec![(":method", "GET"), (":path", &path), (":authority", "httpbin")],
            None,
            vec![],
            Duration::from_secs(5),
        )
    }

    fn shared_key(&self) -> String {
        format!("k-{}", self.get_http_request_header("x-key").unwrap_or_default())
    }
}

impl Context for Http {
    fn on_grpc_stream_initial_metadata(&mut self, _token_id: u32, _num_elements: u32) {
        if let Some(v) = self.get_grpc_stream_initial_metadata_value("x-server") {
            self.grpc_server = String::from_utf8_lossy(&v).into_owned();
        }
    }

    fn on_grpc_stream_message(&mut self, _token_id: u32, message_size: usize) {
        let msg = self.get_grpc_stream_message(0, message_size).unwrap_or_default();
        self.grpc_replies.push(String::from_utf8_lossy(&msg).into_owned());
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        let (_, message) = self.get_grpc_status();
        debug!("#{} grpc stream {} closed: {}", self.context_id, token_id, status_code);
        let status = status_code.to_string();
        let message = message.unwrap_or_default();
        let body = self.grpc_replies.join(",");
        self.send_http_response(
            200,
            vec![
                ("x-grpc-status", status.as_str()),
                ("x-grpc-message", message.as_str()),
                ("x-grpc-server", self.grpc_server.as_str()),
            ],
            Some(body.as_bytes()),
        );
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        debug!(
            "#{} callout {} response headers={} body={}",
            self.context_id, token_id, num_headers, body_size
        );
        if self.mode == "pause-resume" {
            self.resume_http_request();
            return;
        }
        if num_headers == 0 {
            self.send_http_response(502, vec![], Some(b"callout failed"));
            return;
        }
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "-".to_string());
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        debug!("#{} callout body read: {} bytes", self.context_id, body.len());
        self.add_http_request_header("x-callout-status", &status);
        self.add_http_request_header("x-callout-bytes", &body_size.to_string());
        self.resume_http_request();
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(id) = self.metrics.requests {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if let Some(id) = self.metrics.inflight {
            self.counted_inflight = hostcalls::increment_metric(id, 1).is_ok();
        }
        self.mode = self.get_http_request_header("x-test").unwrap_or_default();

        match self.mode.as_str() {
            "local" => {
                self.send_http_response(451, vec![("x-local", "yes")], Some(b"local reply"));
                Action::Pause
            }
            "headers" => {
                self.add_http_request_header("x-added", "1");
                self.set_http_request_header("x-replace", Some("replaced"));
                self.set_http_request_header("x-remove", None);
                Action::Continue
            }
            "pairs" => {
                let count = self.get_http_request_headers().len();
                self.set_http_request_header("x-pairs-count", Some(&count.to_string()));
                Action::Continue
            }
            "property" => {
                let path = utf8_or_dash(self.get_property(vec!["request", "path"]));
                let method = utf8_or_dash(self.get_property(vec!["request", "method"]));
                let name = utf8_or_dash(self.get_property(vec!["plugin_name"]));
                let root_id = utf8_or_dash(self.get_property(vec!["plugin_root_id"]));
                let body = format!(
                    "path={} method={} plugin_name={} root_id={}",
                    path, method, name, root_id
                );
                self.send_http_response(200, vec![], Some(body.as_bytes()));
                Action::Pause
            }
            "setprop" => {
                self.set_property(vec!["wasmgate", "test"], Some(b"v1"));
                let value = utf8_or_dash(self.get_property(vec!["wasmgate", "test"]));
                self.set_http_request_header("x-prop", Some(&value));
                Action::Continue
            }
            "shared" => {
                let key = self.shared_key();
                let val = self.get_http_request_header("x-val").unwrap_or_default();
                if let Err(status) = self.set_shared_data(&key, Some(val.as_bytes()), None) {
                    warn!("#{} set_shared_data failed: {:?}", self.context_id, status);
                }
                let (value, cas) = self.get_shared_data(&key);
                self.add_http_request_header("x-shared", &utf8_or_dash(value));
                self.add_http_request_header("x-cas", &cas.unwrap_or(0).to_string());
                Action::Continue
            }
            "incr" => {
                // CAS increment of shared key k-<x-key>, retried on CasMismatch; answers the new value.
                let key = self.shared_key();
                for _ in 0..10_000 {
                    let (value, cas) = self.get_shared_data(&key);
                    let n: u64 = value
                        .and_then(|v| String::from_utf8(v).ok())
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                    let next = (n + 1).to_string();
                    match self.set_shared_data(&key, Some(next.as_bytes()), cas) {
                        Ok(()) => {
                            self.send_http_response(200, vec![], Some(next.as_bytes()));
                            return Action::Pause;
                        }
                        Err(Status::CasMismatch) => continue,
                        Err(status) => {
                            warn!("#{} incr: set_shared_data failed: {:?}", self.context_id, status);
                            break;
                        }
                    }
                }
                self.send_http_response(500, vec![], Some(b"incr failed"));
                Action::Pause
            }
            "shared-get" => {
                let key = self.shared_key();
                match self.get_shared_data(&key) {
                    (Some(value), _) => self.send_http_response(200, vec![], Some(&value)),
                    (None, _) => self.send_http_response(404, vec![], Some(b"missing")),
                }
                Action::Pause
            }
            "ticks" => {
                // Not in the original brief: lets tests read the on_tick counter (shared key `ticks`).
                let ticks = match self.get_shared_data(TICKS_KEY) {
                    (Some(value), _) => value,
                    (None, _) => b"0".to_vec(),
                };
                self.send_http_response(200, vec![], Some(&ticks));
                Action::Pause
            }
            "enqueue" => {
                let val = self.get_http_request_header("x-val").unwrap_or_default();
                match self.resolve_shared_queue("", QUEUE_NAME) {
                    Some(queue_id) => match self.enqueue_shared_queue(queue_id, Some(val.as_bytes())) {
                        Ok(()) => self.send_http_response(200, vec![], Some(b"enqueued")),
                        Err(_) => self.send_http_response(500, vec![], Some(b"enqueue failed")),
                    },
                    None => self.send_http_response(500, vec![], Some(b"no queue")),
                }
                Action::Pause
            }
            "httpcall" => {
                if let Err(status) = self.dispatch_callout() {
                    warn!("#{} dispatch_http_call failed: {:?}", self.context_id, status);
                    self.send_http_response(502, vec![], Some(b"callout failed"));
                }
                Action::Pause
            }
            "grpc-stream" => match self.open_stream() {
                Ok(_) => Action::Pause,
                Err(status) => {
                    let msg = format!("open_grpc_stream failed: {:?}", status);
                    self.send_http_response(502, vec![], Some(msg.as_bytes()));
                    Action::Pause
                }
            },
            "grpc-cancel" => {
                let body = match self.open_stream() {
                    Ok(_) => "cancelled".to_string(),
                    Err(status) => format!("failed: {:?}", status),
                };
                self.send_http_response(200, vec![], Some(body.as_bytes()));
                Action::Pause
            }
            "pause-resume" => match self.dispatch_callout() {
                Ok(_) => Action::Pause,
                Err(status) => {
                    warn!("#{} dispatch_http_call failed: {:?}", self.context_id, status);
                    Action::Continue
                }
            },
            "body-buffer" => {
                self.set_http_request_header("content-length", None);
                Action::Continue
            }
            "close" => {
                self.reset_http_request();
                Action::Pause
            }
            "log-level" => {
                let level = match hostcalls::get_log_level() {
                    Ok(level) => (level as u32).to_string(),
                    Err(_) => "-".to_string(),
                };
                self.set_http_request_header("x-log-level", Some(&level));
                Action::Continue
            }
            "trap" => panic!("trap requested"),
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode != "body-buffer" {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
        if let Some(id) = self.metrics.body_bytes {
            let _ = hostcalls::record_metric(id, body_size as u64);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.saw_response = true;
        self.add_http_response_header("x-hostcalls", &self.context_id.to_string());
        match self.mode.as_str() {
            "headers" => {
                self.add_http_response_header("x-resp-added", "1");
                self.set_http_response_header("x-remove-me", None);
            }
            "resp-body" | "append-body" => self.set_http_response_header("content-length", None),
            _ => {}
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.mode.as_str() {
            "resp-body" => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let replacement = format!("rewritten:{}", body_size);
                self.set_http_response_body(0, body_size, replacement.as_bytes());
                Action::Continue
            }
            "append-body" => {
                if end_of_stream {
                    self.set_http_response_body(body_size, 0, b"\n-- appended");
                }
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_log(&mut self) {
        let status = if self.saw_response {
            self.get_http_response_header(":status")
        } else {
            None
        }
        .unwrap_or_else(|| "-".to_string());
        info!("on_log {} status={}", self.context_id, status);
        if self.counted_inflight {
            if let Some(id) = self.metrics.inflight {
                let _ = hostcalls::increment_metric(id, -1);
            }
            self.counted_inflight = false;
        }
    }
}
