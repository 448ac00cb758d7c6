//! DynamoDB Streams as Lambda's event source mapping delivers them, for the local
//! stack: read a table's stream, hand the records to a handler in the exact
//! `aws_lambda_events` DynamoDB event shape, in batches, honour
//! `ReportBatchItemFailures` by redelivering from the first failed record, and give up
//! on a record after a bounded number of attempts (where AWS would send it to the
//! on-failure destination).
//!
//! moto keeps streams but invokes nothing; this is the part of Lambda it lacks.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// DynamoDB JSON (`{"S": "…"}`) for one attribute value.
fn attribute(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        _ => json!({ "NULL": true }),
    }
}

fn item(m: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), attribute(v)))
            .collect::<Map<_, _>>(),
    )
}

/// A stream record in the shape Lambda delivers it.
pub fn lambda_record(r: &Record, stream_arn: &str, region: &str) -> Value {
    let change = r.dynamodb();
    let mut dynamodb = Map::new();
    if let Some(c) = change {
        if let Some(t) = c.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.as_secs_f64()));
        }
        if let Some(k) = c.keys() {
            dynamodb.insert("Keys".into(), item(k));
        }
        if let Some(n) = c.new_image() {
            dynamodb.insert("NewImage".into(), item(n));
        }
        if let Some(o) = c.old_image() {
            dynamodb.insert("OldImage".into(), item(o));
        }
        dynamodb.insert("SequenceNumber".into(), json!(c.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(c.size_bytes().unwrap_or(0)));
        if let Some(v) = c.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), json!(v.as_str()));
        }
    }
    let mut record = json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|e| e.as_str()),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    if let Some(identity) = r.user_identity() {
        record["userIdentity"] =
            json!({"type": identity.r#type(), "principalId": identity.principal_id()});
    }
    record
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("table {0} has no stream")]
    NoStream(String),
    #[error("DynamoDB Streams {0} failed")]
    Call(
        &'static str,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
    #[error("a stream record does not fit the Lambda event shape")]
    Shape(#[source] serde_json::Error),
}

/// Keys (`pk|sk`) of items the local TTL emulator deleted: their REMOVE records carry
/// TTL's `userIdentity`, as AWS's do.
pub type TtlMarks = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// The `pk|sk` of a record's keys.
/// The `pk` of each record of a batch, in order (for tests of what a stream carried).
pub fn batch_keys(batch: &Event) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| {
            serde_json::to_value(&r.change.keys).unwrap_or_default()["pk"]["S"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

pub fn key_of(record: &Value) -> String {
    let k = &record["dynamodb"]["Keys"];
    format!(
        "{}|{}",
        k["pk"]["S"].as_str().unwrap_or(""),
        k["sk"]["S"].as_str().unwrap_or("")
    )
}

/// A record read and not yet done.
#[derive(Debug)]
struct Pending {
    record: Value,
    attempts: u32,
    shard: String,
}

/// Where to go on from in one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Resume {
    /// Everything up to this sequence number is done.
    After(String),
    /// This record was read but not done: deliver it again.
    At(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    stream_arn: String,
    shards: BTreeMap<String, Resume>,
}

/// Reads one table's stream from its beginning (or its checkpoint) and delivers it
/// like Lambda.
#[derive(Debug)]
pub struct StreamPoller {
    ttl_marks: Option<TtlMarks>,
    /// The event source mapping's filter criteria: a record matching none of them
    /// never reaches the function (and never invokes it).
    filters: Vec<Value>,
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    /// Shard id → the sequence number of the last record read from it.
    iterators: BTreeMap<String, Option<String>>,
    /// Shard id → the sequence number to read again from (a checkpoint's record that
    /// was read but not done when the last poller stopped), used once.
    resume_at: BTreeMap<String, String>,
    pending: VecDeque<Pending>,
    /// Where the position is kept between pollers (see [`StreamPoller::checkpoint_to`]).
    checkpoint: Option<PathBuf>,
    /// The position last written there: an idle poll (every 200 ms) writes nothing.
    saved: Option<BTreeMap<String, Resume>>,
    /// Records read from the stream so far, filtered out or not: what tells the host
    /// that the table was written to (see [`crate::triggers::Activity`]).
    records_read: u64,
    pub batch_size: usize,
    pub max_attempts: u32,
}

impl StreamPoller {
    /// A poller for `table`'s stream, from its first record.
    pub async fn new(sdk: &aws_config::SdkConfig, table: &str) -> Result<Self, StreamError> {
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let described = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| StreamError::Call("DescribeTable", Box::new(e)))?;
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| StreamError::NoStream(table.to_owned()))?
            .to_owned();
        Ok(Self {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            region: sdk.region().map_or("eu-west-1".into(), |r| r.to_string()),
            stream_arn,
            iterators: BTreeMap::new(),
            resume_at: BTreeMap::new(),
            checkpoint: None,
            saved: None,
            ttl_marks: None,
            filters: Vec::new(),
            pending: VecDeque::new(),
            records_read: 0,
            batch_size: 100,
            max_attempts: 10,
        })
    }

    /// REMOVE records of keys in `marks` are delivered as TTL's (and taken out of it).
    pub fn mark_ttl_removals(&mut self, marks: TtlMarks) {
        self.ttl_marks = Some(marks);
    }

    /// Keeps the poller's position in `file`, as an event source mapping keeps its
    /// checkpoint: a poller started after this one died (a host killed) goes on from
    /// the first record not yet done, instead of delivering the whole stream again.
    /// A file about another stream (a new emulator) is ignored.
    pub fn checkpoint_to(&mut self, file: PathBuf) {
        if let Some(saved) = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok())
            .filter(|c| c.stream_arn == self.stream_arn)
        {
            for (shard, resume) in saved.shards {
                match resume {
                    Resume::After(seq) => {
                        self.iterators.insert(shard, Some(seq));
                    }
                    Resume::At(seq) => {
                        self.resume_at.insert(shard, seq);
                    }
                }
            }
        }
        self.checkpoint = Some(file);
    }

    /// Writes the position (whole, by a rename): per shard, the first record read but
    /// not done, or else the last record read.
    fn save_checkpoint(&mut self) {
        let Some(file) = &self.checkpoint else {
            return;
        };
        let mut shards: BTreeMap<String, Resume> = self
            .iterators
            .iter()
            .filter_map(|(shard, last)| Some((shard.clone(), Resume::After(last.clone()?))))
            .collect();
        shards.extend(
            self.resume_at
                .iter()
                .map(|(shard, seq)| (shard.clone(), Resume::At(seq.clone()))),
        );
        for p in self.pending.iter().rev() {
            if let Some(seq) = p.record["dynamodb"]["SequenceNumber"].as_str() {
                shards.insert(p.shard.clone(), Resume::At(seq.to_owned()));
            }
        }
        if self.saved.as_ref() == Some(&shards) {
            return;
        }
        let checkpoint = Checkpoint {
            stream_arn: self.stream_arn.clone(),
            shards,
        };
        let partial = file.with_extension("partial");
        let written = serde_json::to_vec(&checkpoint)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&partial, bytes))
            .and_then(|()| std::fs::rename(&partial, file));
        match written {
            Ok(()) => self.saved = Some(checkpoint.shards),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "could not keep the stream's position")
            }
        }
    }

    /// Delivers only records matching one of `patterns` (Lambda's filter criteria, as
    /// the Terraform module gives each consumer); the rest are consumed unseen.
    pub fn filter(&mut self, patterns: Vec<Value>) {
        self.filters = patterns;
    }

    /// Fetches what the stream has beyond what was read. Each fetch asks for a fresh
    /// iterator after the last sequence number read from each shard, rather than
    /// keeping one: moto replaces a table's stream shard when it rolls back a failed
    /// transaction, and an iterator held across that would read the old one forever.
    async fn fetch(&mut self) -> Result<(), StreamError> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| StreamError::Call("DescribeStream", Box::new(e)))?;
        let shards: Vec<String> = described
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.shard_id().map(str::to_owned))
            .collect();
        for id in shards {
            let after = self.iterators.get(&id).cloned().flatten();
            let at = self.resume_at.get(&id).cloned();
            let mut request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&id);
            request = match (&at, &after) {
                (Some(seq), _) => request
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .sequence_number(seq),
                (None, Some(seq)) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                (None, None) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let iterator = request
                .send()
                .await
                .map_err(|e| StreamError::Call("GetShardIterator", Box::new(e)))?;
            let Some(current) = iterator.shard_iterator() else {
                continue;
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| StreamError::Call("GetRecords", Box::new(e)))?;
            let mut last = after;
            self.records_read += out.records().len() as u64;
            for r in out.records() {
                if let Some(seq) = r.dynamodb().and_then(|d| d.sequence_number()) {
                    last = Some(seq.to_owned());
                }
                let mut record = lambda_record(r, &self.stream_arn, &self.region);
                let by_ttl = record["eventName"] == "REMOVE"
                    && self.ttl_marks.as_ref().is_some_and(|marks| {
                        marks
                            .lock()
                            .map(|mut m| m.remove(&key_of(&record)))
                            .unwrap_or(false)
                    });
                if by_ttl {
                    record["userIdentity"] =
                        json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
                }
                if self.filters.is_empty() || self.filters.iter().any(|p| matches(p, &record)) {
                    self.pending.push_back(Pending {
                        record,
                        attempts: 0,
                        shard: id.clone(),
                    });
                }
            }
            if at.is_some() {
                self.resume_at.remove(&id);
            }
            self.iterators.insert(id, last);
        }
        self.save_checkpoint();
        Ok(())
    }

    /// The next batch as a Lambda event, fetching first; `None` when nothing waits.
    pub async fn next_batch(&mut self) -> Result<Option<Event>, StreamError> {
        self.fetch().await?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let records: Vec<Value> = self
            .pending
            .iter()
            .take(self.batch_size)
            .map(|p| p.record.clone())
            .collect();
        serde_json::from_value(json!({ "Records": records }))
            .map(Some)
            .map_err(StreamError::Shape)
    }

    /// Takes the handler's answer for the batch last returned: records before the
    /// first reported failure are done; from it on they are delivered again, and a
    /// record that has failed `max_attempts` times is dropped (returned, for the
    /// caller to report as AWS's on-failure destination would).
    pub fn complete(&mut self, delivered: usize, response: &DynamoDbEventResponse) -> Vec<Value> {
        let failed_at = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .filter_map(|seq| {
                self.pending
                    .iter()
                    .take(delivered)
                    .position(|p| p.record["dynamodb"]["SequenceNumber"].as_str() == Some(seq))
            })
            .min();
        let done = failed_at.unwrap_or(delivered.min(self.pending.len()));
        self.pending.drain(..done);
        let mut dropped = Vec::new();
        if failed_at.is_some()
            && let Some(first) = self.pending.front_mut()
        {
            first.attempts += 1;
            if first.attempts >= self.max_attempts {
                dropped.push(first.record.clone());
                self.pending.pop_front();
            }
        }
        self.save_checkpoint();
        dropped
    }

    /// Records read from the stream so far, whether or not the filters passed them.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// Records waiting for (re)delivery.
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }
}

/// Whether `record` matches a Lambda event filter `pattern`, in the subset the module
/// uses: objects nest field by field, and an array lists the values a field may have.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, wanted)| {
            record
                .get(name)
                .is_some_and(|actual| matches(wanted, actual))
        }),
        Value::Array(allowed) => allowed.iter().any(|value| value == record),
        other => other == record,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::matches;

    #[test]
    fn filter_patterns_match_field_by_field_and_value_by_value() {
        let pattern = json!({
            "eventName": ["REMOVE"],
            "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
            "dynamodb": {"Keys": {"sk": {"S": ["EXPIRY"]}}}
        });
        let ttl = json!({
            "eventName": "REMOVE",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "dynamodb": {"Keys": {"pk": {"S": "GRANT#1"}, "sk": {"S": "EXPIRY"}}, "SequenceNumber": "1"}
        });
        assert!(matches(&pattern, &ttl));
        let mut by_someone = ttl.clone();
        by_someone["userIdentity"]["principalId"] = json!("AIDAEXAMPLE");
        assert!(!matches(&pattern, &by_someone));
        let mut no_identity = ttl.clone();
        no_identity
            .as_object_mut()
            .map(|o| o.remove("userIdentity"));
        assert!(!matches(&pattern, &no_identity));
        let mut grant_item = ttl;
        grant_item["dynamodb"]["Keys"]["sk"]["S"] = json!("GRANT");
        assert!(!matches(&pattern, &grant_item));
        assert!(matches(
            &json!({"eventName": ["INSERT", "MODIFY"]}),
            &json!({"eventName": "MODIFY"})
        ));
    }
}
