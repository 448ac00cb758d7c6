//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into a metric. No client, no call.

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
    println!("{line}");
}
