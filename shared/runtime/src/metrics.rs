//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into a metric. No client, no call.
//!
//! Outside Lambda (the local function host, the CLI, tests) stdout belongs to the
//! program's own output, so the same line goes to the log instead.

/// Emits `name = value` (a count) in namespace `ticketbound`, dimension `function`.
pub fn count(function: &str, name: &str, value: u64) {
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            "CloudWatchMetrics": [{
                "Namespace": "ticketbound",
                "Dimensions": [["function"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "function": function,
        name: value,
    });
    if in_lambda() {
        println!("{line}");
    } else {
        tracing::info!(target: "metrics", metric = %line);
    }
}

fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}
