//! The interop test sink for the Rust SDK: the answer per datum comes from its `interop`
//! header (see tests/interop/README.md); every datum received is printed as one JSON line
//! prefixed with `INTEROP ` so the test can count what the sink saw.

use std::collections::HashSet;
use std::sync::Mutex;

use numaflow::shared::NackOptions;
use numaflow::sink::{self, Message, Response, SinkRequest};

struct InteropSink {
    role: String,
    /// INTEROP_QUIET=1: print nothing per datum (benchmarks).
    quiet: bool,
    seen: Mutex<HashSet<String>>,
}

impl InteropSink {
    fn first_sight(&self, id: &str) -> bool {
        self.seen.lock().unwrap().insert(id.to_string())
    }

    fn answer(&self, d: &SinkRequest) -> (Response, &'static str) {
        let id = d.id.clone();
        if self.role != "udsink" {
            return (Response::ok(id), "SUCCESS");
        }
        let want = d.headers.get("interop").map(String::as_str).unwrap_or("ok");
        match want {
            "fail-once" if self.first_sight(&d.id) => (
                Response::failure(id, "transient: try again".into()),
                "FAILURE",
            ),
            "nack-once" if self.first_sight(&d.id) => {
                let opts = NackOptions {
                    delay: Some(50),
                    max_deliveries: None,
                    reason: None,
                };
                (Response::nack(id, Some(opts)), "NACK")
            }
            "fallback" => (Response::fallback(id), "FALLBACK"),
            "serve" => {
                let mut payload = b"served:".to_vec();
                payload.extend_from_slice(&d.value);
                (Response::serve(id, payload), "SERVE")
            }
            "on-success" => {
                let mut value = b"followup:".to_vec();
                value.extend_from_slice(&d.value);
                let msg = Message::new(value).with_keys(d.keys.clone());
                (Response::on_success(id, Some(msg)), "ON_SUCCESS")
            }
            _ => (Response::ok(id), "SUCCESS"),
        }
    }
}

#[tonic::async_trait]
impl sink::Sinker for InteropSink {
    async fn sink(&self, mut input: tokio::sync::mpsc::Receiver<SinkRequest>) -> Vec<Response> {
        let mut responses = Vec::new();
        while let Some(d) = input.recv().await {
            let (response, status) = self.answer(&d);
            responses.push(response);
            if self.quiet {
                continue;
            }
            let line = serde_json::json!({
                "sdk": "rust",
                "role": self.role,
                "id": d.id,
                "keys": d.keys,
                "value": String::from_utf8_lossy(&d.value),
                "headers": d.headers,
                "answer": status,
            });
            println!("INTEROP {line}");
        }
        responses
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let role = std::env::var("NUMAFLOW_UD_CONTAINER_TYPE").unwrap_or_else(|_| "udsink".into());
    let role = if role.is_empty() {
        "udsink".to_string()
    } else {
        role
    };
    let quiet = std::env::var("INTEROP_QUIET").as_deref() == Ok("1");
    sink::Server::new(InteropSink {
        role,
        quiet,
        seen: Mutex::new(HashSet::new()),
    })
    .start()
    .await
}
