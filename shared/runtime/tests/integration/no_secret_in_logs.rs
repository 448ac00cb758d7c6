//! A secret that reaches a log statement, by mistake or by Debug of a struct that holds
//! it, must not reach the log output. This captures what the real subscriber writes, in
//! both Lambda formats, and searches it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::Write;
use std::sync::{Arc, Mutex};

use ticketbound_runtime::{EnvReader, LogSettings, SecretString};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug only
struct DatabaseCredential {
    username: String,
    password: SecretString,
}

const VALUE: &str = "pg-pass-9f8e7d6c5b4a";

#[test]
fn secrets_are_redacted_in_json_and_text_logs() {
    for format in ["JSON", "Text"] {
        let mut env = EnvReader::from_map([
            ("AWS_LAMBDA_LOG_FORMAT", format),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ]);
        let settings = LogSettings::from_env(&mut env);
        env.finish().unwrap();
        let capture = Capture::default();
        let subscriber = settings.subscriber(capture.clone()).unwrap();

        tracing::subscriber::with_default(subscriber, || {
            let credential = DatabaseCredential {
                username: "orders_etl_a".into(),
                password: SecretString::from(VALUE),
            };
            tracing::info!(?credential, "issued credential");
            tracing::debug!(password = ?credential.password, "debug of the secret itself");
            let span = tracing::info_span!("rotate", secret = ?credential.password);
            let _entered = span.enter();
            tracing::warn!("inside a span that holds it");
        });

        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.contains("orders_etl_a"),
            "{format}: the log was captured: {out}"
        );
        assert!(out.contains("REDACTED"), "{format}: {out}");
        assert!(!out.contains(VALUE), "{format}: secret leaked: {out}");
        if format == "JSON" {
            for line in out.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("each JSON log line parses");
            }
        }
    }
}
