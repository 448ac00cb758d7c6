//! The AWS calls a process makes, counted by service and operation at the SDK's HTTP
//! layer: every attempt, retries included, which is what AWS bills. The local stack
//! gives each function its own count, and `scripts/bench` turns the counts of whole
//! grant lifecycles into calls per grant and a cost per 1,000 grants.
//!
//! The SDK has no interceptor hook on a shared configuration, only per client; the
//! HTTP client is the one thing every client built from one `SdkConfig` shares.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The key under which the microseconds spent waiting for AWS's answers add up (from
/// each request sent to its answer, retries included).
pub const WAITED_MICROS: &str = "waited for AWS (µs)";

/// Calls by `Service.Operation` (e.g. `DynamoDB.TransactWriteItems`); a key ending in
/// ` items` counts the items of the batch and transaction calls, which is what their
/// capacity is charged by; [`WAITED_MICROS`] is the time spent waiting on them.
#[derive(Debug, Clone, Default)]
pub struct CallCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds `n` to `key` (also for what is not an AWS call but is billed like one,
    /// such as a function's invocations).
    pub fn add(&self, key: &str, n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default() += n;
    }

    /// `inner`, counting every request it sends here.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(CountingClient {
            inner,
            counts: self.clone(),
        })
    }

    fn record(&self, request: &HttpRequest) {
        let call = identify(request);
        self.add(&call.name, 1);
        if let Some(items) = call.items {
            self.add(&format!("{} items", call.name), items);
        }
    }
}

#[derive(Debug)]
struct CountingClient {
    inner: SharedHttpClient,
    counts: CallCounts,
}

impl HttpClient for CountingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            counts: self.counts.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    counts: CallCounts,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.counts.record(&request);
        let started = std::time::Instant::now();
        let answer = self.inner.call(request);
        let counts = self.counts.clone();
        HttpConnectorFuture::new(async move {
            let answered = answer.await;
            let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            counts.add(WAITED_MICROS, waited);
            answered
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Call {
    name: String,
    items: Option<u64>,
}

/// The service and operation of a request. JSON protocols (DynamoDB, its Streams,
/// Secrets Manager) name both in `X-Amz-Target`; REST ones (Scheduler) name the
/// service in the SigV4 credential scope and the operation by method and path.
fn identify(request: &HttpRequest) -> Call {
    let headers = request.headers();
    if let Some(target) = headers.get("x-amz-target") {
        let (prefix, operation) = target.split_once('.').unwrap_or((target, "?"));
        let service = if prefix.starts_with("DynamoDBStreams") {
            "DynamoDBStreams"
        } else if prefix.starts_with("DynamoDB") {
            "DynamoDB"
        } else if prefix.eq_ignore_ascii_case("secretsmanager") {
            "SecretsManager"
        } else if prefix == "TrentService" {
            // KMS's JSON protocol still carries its old internal name.
            "KMS"
        } else {
            prefix
        };
        let items = match operation {
            "TransactWriteItems" | "TransactGetItems" | "BatchWriteItem" | "BatchGetItem" => {
                request.body().bytes().map(batch_items)
            }
            _ => None,
        };
        return Call {
            name: format!("{service}.{operation}"),
            items,
        };
    }
    let service = headers
        .get("authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown");
    let path = request.uri().split('?').next().unwrap_or("");
    let path = path.split("://").nth(1).map_or(path, |rest| {
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    let mut segments = path.trim_start_matches('/').split('/');
    let collection = segments.next().unwrap_or("");
    let named = segments.next().is_some_and(|s| !s.is_empty());
    let operation = match (service, request.method(), collection, named) {
        ("scheduler", "POST", "schedules", true) => "CreateSchedule".to_owned(),
        ("scheduler", "PUT", "schedules", true) => "UpdateSchedule".to_owned(),
        ("scheduler", "GET", "schedules", true) => "GetSchedule".to_owned(),
        ("scheduler", "DELETE", "schedules", true) => "DeleteSchedule".to_owned(),
        ("scheduler", "GET", "schedules", false) => "ListSchedules".to_owned(),
        ("scheduler", "POST", "schedule-groups", true) => "CreateScheduleGroup".to_owned(),
        // S3, path-style as the local stack addresses it: /<bucket>[/<key>].
        ("s3", "PUT", _, true) => "PutObject".to_owned(),
        ("s3", "GET", _, true) => "GetObject".to_owned(),
        ("s3", "GET", _, false) => "ListObjectsV2".to_owned(),
        ("s3", "HEAD", _, false) => "HeadBucket".to_owned(),
        ("s3", "PUT", _, false) => "CreateBucket".to_owned(),
        (_, method, collection, _) => format!("{method} /{collection}"),
    };
    let service = match service {
        "scheduler" => "Scheduler",
        "s3" => "S3",
        other => other,
    };
    Call {
        name: format!("{service}.{operation}"),
        items: None,
    }
}

/// How many items a batch or transaction request carries.
fn batch_items(body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let count = |v: &serde_json::Value| v.as_array().map_or(0, |a| a.len() as u64);
    if let Some(items) = value.get("TransactItems") {
        return count(items);
    }
    value
        .get("RequestItems")
        .and_then(serde_json::Value::as_object)
        .map_or(0, |tables| {
            tables
                .values()
                .map(|t| t.get("Keys").map_or_else(|| count(t), count))
                .sum()
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> HttpRequest {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(SdkBody::from(body.to_owned())).unwrap();
        HttpRequest::try_from(req).unwrap()
    }

    #[test]
    fn json_protocols_are_named_by_their_target_and_transactions_count_items() {
        let call = identify(&request(
            "POST",
            "http://127.0.0.1:5000/",
            &[("x-amz-target", "DynamoDB_20120810.TransactWriteItems")],
            r#"{"TransactItems":[{"Put":{}},{"Update":{}},{"ConditionCheck":{}}]}"#,
        ));
        assert_eq!(
            call,
            Call {
                name: "DynamoDB.TransactWriteItems".into(),
                items: Some(3)
            }
        );
        let call = identify(&request(
            "POST",
            "https://secretsmanager.eu-west-1.amazonaws.com/",
            &[("x-amz-target", "secretsmanager.GetSecretValue")],
            "{}",
        ));
        assert_eq!(call.name, "SecretsManager.GetSecretValue");
        let call = identify(&request(
            "POST",
            "http://127.0.0.1:5000/",
            &[("x-amz-target", "DynamoDBStreams_20120810.GetRecords")],
            "{}",
        ));
        assert_eq!(call.name, "DynamoDBStreams.GetRecords");
    }

    #[test]
    fn rest_calls_are_named_by_scope_method_and_path() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20261129/eu-west-1/scheduler/aws4_request, SignedHeaders=host, Signature=00";
        let call = identify(&request(
            "DELETE",
            "http://127.0.0.1:5000/schedules/tb-01J?groupName=ticketbound&clientToken=x",
            &[("authorization", auth)],
            "",
        ));
        assert_eq!(call.name, "Scheduler.DeleteSchedule");
        let call = identify(&request(
            "POST",
            "https://scheduler.eu-west-1.amazonaws.com/schedules/tb-01J",
            &[("authorization", auth)],
            "{}",
        ));
        assert_eq!(call.name, "Scheduler.CreateSchedule");
        let call = identify(&request(
            "GET",
            "http://127.0.0.1:5000/schedules?NamePrefix=tb",
            &[("authorization", auth)],
            "",
        ));
        assert_eq!(call.name, "Scheduler.ListSchedules");
        let s3 = "AWS4-HMAC-SHA256 Credential=AKID/20261129/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00";
        for (method, uri, name) in [
            (
                "PUT",
                "http://127.0.0.1:5000/checkpoints-b/checkpoints/00000000000000000007?x-id=PutObject",
                "S3.PutObject",
            ),
            (
                "GET",
                "http://127.0.0.1:5000/checkpoints-b/public-key.der?x-id=GetObject",
                "S3.GetObject",
            ),
            (
                "GET",
                "http://127.0.0.1:5000/checkpoints-b?list-type=2&prefix=checkpoints%2F",
                "S3.ListObjectsV2",
            ),
        ] {
            let call = identify(&request(method, uri, &[("authorization", s3)], ""));
            assert_eq!(call.name, name, "{method} {uri}");
        }
        let call = identify(&request(
            "POST",
            "http://127.0.0.1:5000/",
            &[("x-amz-target", "TrentService.Sign")],
            "{}",
        ));
        assert_eq!(call.name, "KMS.Sign");
    }

    #[test]
    fn counts_add_up_per_key() {
        let counts = CallCounts::new();
        counts.record(&request(
            "POST",
            "http://127.0.0.1:5000/",
            &[("x-amz-target", "DynamoDB_20120810.BatchWriteItem")],
            r#"{"RequestItems":{"a":[{"PutRequest":{}},{"PutRequest":{}}],"b":[{"DeleteRequest":{}}]}}"#,
        ));
        counts.record(&request(
            "POST",
            "http://127.0.0.1:5000/",
            &[("x-amz-target", "DynamoDB_20120810.GetItem")],
            "{}",
        ));
        counts.add("Lambda.Invocations", 2);
        let snapshot = counts.snapshot();
        assert_eq!(snapshot["DynamoDB.BatchWriteItem"], 1);
        assert_eq!(snapshot["DynamoDB.BatchWriteItem items"], 3);
        assert_eq!(snapshot["DynamoDB.GetItem"], 1);
        assert_eq!(snapshot["Lambda.Invocations"], 2);
    }
}
