//! The checkpointer against moto (the audit table's real stream, KMS signing, an S3
//! bucket with Object Lock), tried as an insider with write access to every table
//! would: each rewrite, deletion and forgery made in DynamoDB is named by the offline
//! verifier, and a log edited in its own table is not signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration as StdDuration;
use ticketbound_domain::Detail;

use chrono::{Duration, Utc};
use log_checkpoint::{CheckpointError, Deps, bundle, handle_schedule, handle_stream};
use ticketbound_anchor::{CheckpointBucket, Notary};
use ticketbound_domain::{Actor, AuditAction, AuditEvent, AuditRecord, Grant, TicketKey};
use ticketbound_evidence::{Bundle, PublicKey, Trust, VerifyError, verify_bundle};
use ticketbound_runtime::EnvReader;
use ticketbound_store::{LogStore, Store, Tables, schema};
use ticketbound_testkit::streams::StreamPoller;
use ticketbound_testkit::{TestStack, sample_grant, unique_key};

const ORIGIN: &str = "ticketbound.test/log";

struct Harness {
    stack: TestStack,
    tables: Tables,
    log_table: String,
    bucket_name: String,
    store: Store,
    log: LogStore,
    bucket: CheckpointBucket,
    key_id: String,
    deps: Deps,
    /// The checkpointer's own AWS calls, counted at its SDK's HTTP client.
    counts: ticketbound_local::calls::CallCounts,
    audit_stream: StreamPoller,
}

async fn harness() -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let log_table = format!("{}-log", tables.grants.trim_end_matches("-grants"));
    schema::ensure_table(&stack.dynamodb(), &schema::LOG, &log_table)
        .await
        .unwrap();
    let key_id = ticketbound_anchor::create_signing_key(&stack.sdk, "test checkpoints")
        .await
        .unwrap();
    let bucket_name = format!(
        "t{}-checkpoints",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let bucket = CheckpointBucket::new(&stack.sdk, bucket_name.clone());
    bucket.ensure(1).await.unwrap();
    let counts = ticketbound_local::calls::CallCounts::new();
    let function_sdk = stack.local.function_sdk_config(&counts).await;
    let deps = Deps::from_env(
        &function_sdk,
        EnvReader::from_map([
            ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
            ("TICKETBOUND_LOG_TABLE", log_table.clone()),
            ("TICKETBOUND_LOG_KEY_ID", key_id.clone()),
            ("TICKETBOUND_LOG_BUCKET", bucket_name.clone()),
            ("TICKETBOUND_LOG_ORIGIN", ORIGIN.to_owned()),
            ("TICKETBOUND_CHECKPOINT_EVERY", "1000".to_owned()),
        ]),
    )
    .unwrap();
    let audit_stream = StreamPoller::new(&stack.sdk, &tables.audit).await.unwrap();
    Harness {
        store: stack.local_store_for(&tables),
        log: LogStore::new(stack.dynamodb(), log_table.clone()),
        log_table,
        bucket_name,
        stack,
        tables,
        bucket,
        key_id,
        deps,
        counts,
        audit_stream,
    }
}

impl Harness {
    /// A grant of ticket `key` with `steps` audit events, as the functions record them.
    async fn grant(&self, key: &str, steps: usize) -> Grant {
        let mut g = sample_grant(Utc::now(), Duration::hours(4));
        g.request.ticket.key = TicketKey::new(key).unwrap();
        // As the intake writes it: the first event names the ticket, under the chain.
        let mut events = vec![
            g.record(
                AuditRecord::new(
                    Utc::now(),
                    Actor::itsm_user("priya"),
                    AuditAction::Requested,
                )
                .detail(Detail::Ticket, g.request.ticket.qualified_key()),
            ),
        ];
        for i in 1..steps {
            events.push(
                g.record(
                    AuditRecord::new(Utc::now(), Actor::component("test"), AuditAction::Rotated)
                        .detail(Detail::Step, i),
                ),
            );
        }
        self.store
            .create_grant(&g, &events, None, Utc::now())
            .await
            .unwrap();
        g
    }

    /// Everything the audit stream holds so far, given to the checkpointer as its
    /// event source mapping would, in batches.
    async fn feed(&mut self) {
        let mut idle = 0;
        while idle < 10 {
            match self.audit_stream.next_batch().await.unwrap() {
                Some(batch) => {
                    idle = 0;
                    let n = batch.records.len();
                    let logged = handle_stream(&self.deps, batch.clone()).await;
                    assert!(logged.batch_item_failures.is_empty(), "{logged:?}");
                    // Delivered again (at least once is the stream's promise): nothing
                    // is logged twice.
                    let again = handle_stream(&self.deps, batch).await;
                    assert_eq!(
                        (again.appended, again.already_logged),
                        (0, logged.appended + logged.already_logged),
                        "{again:?}"
                    );
                    self.audit_stream.complete(n, &Default::default());
                }
                None => {
                    idle += 1;
                    tokio::time::sleep(StdDuration::from_millis(60)).await;
                }
            }
        }
    }

    /// The next batch of the audit stream (not yet given to anyone).
    async fn next_batch(&mut self) -> aws_lambda_events::event::dynamodb::Event {
        for _ in 0..50 {
            if let Some(batch) = self.audit_stream.next_batch().await.unwrap() {
                let n = batch.records.len();
                self.audit_stream.complete(n, &Default::default());
                return batch;
            }
            tokio::time::sleep(StdDuration::from_millis(60)).await;
        }
        panic!("the audit stream gave nothing");
    }

    /// The checkpointer as it would run with `key` signing and, during a rollover,
    /// `previous` retiring.
    fn deps_with(&self, key: &str, previous: Option<&str>) -> Deps {
        let mut env = vec![
            ("TICKETBOUND_GRANTS_TABLE", self.tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", self.tables.audit.clone()),
            ("TICKETBOUND_LOG_TABLE", self.log_table.clone()),
            ("TICKETBOUND_LOG_KEY_ID", key.to_owned()),
            ("TICKETBOUND_LOG_BUCKET", self.bucket_name.clone()),
            ("TICKETBOUND_LOG_ORIGIN", ORIGIN.to_owned()),
        ];
        if let Some(previous) = previous {
            env.push(("TICKETBOUND_LOG_PREVIOUS_KEY_ID", previous.to_owned()));
        }
        Deps::from_env(&self.stack.sdk, EnvReader::from_map(env)).unwrap()
    }

    async fn key(&self) -> PublicKey {
        Notary::new(&self.stack.sdk, self.key_id.clone())
            .public_key(ORIGIN)
            .await
            .unwrap()
    }

    async fn bundle(&self, g: &Grant) -> Bundle {
        bundle::assemble(&self.store, &self.log, &self.bucket, &g.request.ticket)
            .await
            .unwrap()
    }

    async fn verify(&self, g: &Grant) -> Result<ticketbound_evidence::Verified, VerifyError> {
        let key = self.key().await;
        let latest = bundle::newest_checkpoint(&self.bucket).await.unwrap();
        let bundle = self.bundle(g).await;
        let ticket = g.request.ticket.qualified_key();
        verify_bundle(
            &bundle,
            &Trust {
                key: &key,
                ticket: &ticket,
                latest: latest.as_deref(),
                notes: None,
            },
        )
    }

    /// Puts `events` over the stored ones and moves the grant's head to the last, by
    /// hand, as an insider with PutItem on both tables would.
    async fn rewrite_by_hand(&self, g: &Grant, events: &[AuditEvent]) {
        let db = self.stack.dynamodb();
        for e in events {
            db.put_item()
                .table_name(&self.tables.audit)
                .set_item(Some(ticketbound_store::audit_to_item(e).unwrap()))
                .send()
                .await
                .unwrap();
        }
        let mut stored = self.store.get_grant(g.id).await.unwrap().unwrap();
        if let Some(last) = events.last() {
            stored.audit_head = last.head();
        }
        db.put_item()
            .table_name(&self.tables.grants)
            .set_item(Some(
                ticketbound_store::grant_to_item(&stored, Duration::days(400)).unwrap(),
            ))
            .send()
            .await
            .unwrap();
    }
}

/// Re-seals a grant's whole chain with one detail changed: a chain that verifies, as
/// an insider who knows the encoding would make it.
fn resealed(g: &Grant, events: &[AuditEvent]) -> Vec<AuditEvent> {
    let mut head = ticketbound_domain::ChainHead::genesis(g.id);
    events
        .iter()
        .map(|e| {
            let mut record = AuditRecord::new(e.at, e.actor.clone(), e.action);
            record.details = e.details.clone();
            record
                .details
                .insert("approved_by".into(), "someone else".into());
            let sealed = AuditEvent::seal(g.id, &head, record);
            head = sealed.head();
            sealed
        })
        .collect()
}

#[tokio::test]
async fn every_event_is_logged_once_signed_with_kms_and_verifies_offline() {
    let mut h = harness().await;
    let key = unique_key("LOG");
    let a = h.grant(&key, 3).await;
    let b = h.grant(&key, 2).await;
    let other = h.grant(&unique_key("LOG"), 2).await;
    h.feed().await;
    assert_eq!(handle_schedule(&h.deps).await.unwrap(), Some(7));
    // Every batch was delivered twice (`feed`); nothing new, nothing signed.
    let head = h.log.head().await.unwrap();
    assert_eq!((head.frontier.size, head.signed_size), (7, 7));
    assert_eq!(handle_schedule(&h.deps).await.unwrap(), None);

    let v = h.verify(&a).await.unwrap();
    assert_eq!((v.grants, v.events, v.checkpoint.size), (2, 5, 7));
    assert_eq!(v.checkpoint.origin, ORIGIN);
    assert!(h.verify(&other).await.is_ok());
    let _ = b;

    // Only what its role is given (moto enforces no IAM; this and infra-check do).
    let outside =
        ticketbound_testkit::calls_outside(&h.counts, log_checkpoint::config::AWS_OPERATIONS);
    assert!(outside.is_empty(), "{outside:?}");

    // The bucket keeps the public key and refuses a second checkpoint of a size.
    let der = h
        .bucket
        .get(ticketbound_anchor::PUBLIC_KEY_OBJECT)
        .await
        .unwrap();
    assert_eq!(der.as_deref(), Some(h.key().await.der()));
    assert_eq!(
        h.bucket
            .put_once(
                &ticketbound_anchor::checkpoint_object(7),
                b"forged".to_vec()
            )
            .await
            .unwrap(),
        ticketbound_anchor::Put::AlreadyThere
    );
}

#[tokio::test]
async fn a_consistent_rewrite_of_a_chain_and_its_head_in_dynamodb_is_named() {
    let mut h = harness().await;
    let g = h.grant(&unique_key("LOG"), 3).await;
    h.feed().await;
    handle_schedule(&h.deps).await.unwrap();
    h.verify(&g).await.unwrap();

    let trail = h.store.audit_trail(g.id).await.unwrap();
    let forged = resealed(&g, &trail);
    h.rewrite_by_hand(&g, &forged).await;
    // The table's own chain check passes: this is the insider's best.
    let stored = h.store.grant_with_trail(g.id).await.unwrap().unwrap();
    ticketbound_domain::verify_chain(g.id, &stored.1, Some(&stored.0.audit_head)).unwrap();
    // The rewrite reaches the checkpointer as MODIFY records, and is logged too.
    h.feed().await;
    handle_schedule(&h.deps).await.unwrap();
    match h.verify(&g).await {
        Err(VerifyError::MissingFromBundle {
            grant_id, seq: 1, ..
        }) => assert_eq!(grant_id, g.id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_deleted_newest_event_and_a_deleted_grant_are_named() {
    let mut h = harness().await;
    let key = unique_key("LOG");
    let g = h.grant(&key, 3).await;
    let gone = h.grant(&key, 2).await;
    h.feed().await;
    handle_schedule(&h.deps).await.unwrap();
    h.verify(&g).await.unwrap();

    let db = h.stack.dynamodb();
    let trail = h.store.audit_trail(g.id).await.unwrap();
    db.delete_item()
        .table_name(&h.tables.audit)
        .key(
            "grant_id",
            aws_sdk_dynamodb::types::AttributeValue::S(g.id.to_string()),
        )
        .key(
            "seq",
            aws_sdk_dynamodb::types::AttributeValue::N("3".into()),
        )
        .send()
        .await
        .unwrap();
    h.rewrite_by_hand(&g, &trail[1..2]).await;
    match h.verify(&g).await {
        Err(VerifyError::MissingFromBundle {
            grant_id, seq: 3, ..
        }) => assert_eq!(grant_id, g.id),
        other => panic!("{other:?}"),
    }

    h.rewrite_by_hand(&g, &trail).await;
    for seq in 1..=2 {
        db.delete_item()
            .table_name(&h.tables.audit)
            .key(
                "grant_id",
                aws_sdk_dynamodb::types::AttributeValue::S(gone.id.to_string()),
            )
            .key(
                "seq",
                aws_sdk_dynamodb::types::AttributeValue::N(seq.to_string()),
            )
            .send()
            .await
            .unwrap();
    }
    db.delete_item()
        .table_name(&h.tables.grants)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("GRANT#{}", gone.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("GRANT".into()),
        )
        .send()
        .await
        .unwrap();
    match h.verify(&g).await {
        Err(VerifyError::MissingFromBundle {
            grant_id, seq: 1, ..
        }) => {
            assert_eq!(grant_id, gone.id)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_log_edited_in_its_own_table_is_not_signed() {
    let mut h = harness().await;
    let g = h.grant(&unique_key("LOG"), 2).await;
    h.feed().await;
    handle_schedule(&h.deps).await.unwrap();
    let _ = h.grant(&unique_key("LOG"), 2).await;
    h.feed().await;
    // An insider rewrites an already signed leaf (the head is left as it was).
    let entries = h.log.entries(4).await.unwrap();
    let mut forged = entries[0].clone();
    forged.event_hash = entries[1].event_hash;
    let db = h.stack.dynamodb();
    let mut item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        serde_dynamo::to_item(&forged).unwrap();
    item.insert(
        "pk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("LEAF".into()),
    );
    item.insert(
        "sk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S(format!("{:020}", 0)),
    );
    let log_table = h.deps.config.log_table.clone();
    db.put_item()
        .table_name(&log_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    // The unsigned part still hashes from the signed edge, so the checkpointer signs
    // the new events; the verifier sees the signed leaf changed.
    handle_schedule(&h.deps).await.unwrap();
    assert!(matches!(
        h.verify(&g).await,
        Err(VerifyError::LogRewritten { size: 2, .. })
    ));
    // The insider's better try: the signed leaf rewritten, the head's edge recomputed
    // from the rewritten leaves (no secret needed) and its signed size set back to 0,
    // so that a rebuild from nothing would agree. The checkpointer rebuilds from the
    // bucket's newest checkpoint instead, and refuses.
    let _ = h.grant(&unique_key("LOG"), 1).await;
    h.feed().await;
    let head = h.log.head().await.unwrap();
    let mut forged_edge = ticketbound_evidence::Frontier::default();
    for e in h.log.entries(head.frontier.size).await.unwrap() {
        forged_edge.append(e.leaf_hash());
    }
    assert_ne!(forged_edge, head.frontier);
    put_head(&h, &forged_edge, 0, head.version).await;
    match handle_schedule(&h.deps).await {
        Err(CheckpointError::LogTampered { why }) => assert!(why.contains("head"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A signed size raised past the bucket's newest names a checkpoint that is not
    // there: refused too, rather than signing stopping without a word.
    put_head(&h, &head.frontier, head.frontier.size, head.version).await;
    match handle_schedule(&h.deps).await {
        Err(CheckpointError::LogTampered { why }) => assert!(why.contains("bucket"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Writes the log's head by hand, as an insider with PutItem on the log table would.
async fn put_head(h: &Harness, edge: &ticketbound_evidence::Frontier, signed: u64, version: u64) {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    h.stack
        .dynamodb()
        .put_item()
        .table_name(&h.deps.config.log_table)
        .item("pk", V::S("HEAD".into()))
        .item("sk", V::S("HEAD".into()))
        .item("frontier", V::S(serde_json::to_string(edge).unwrap()))
        .item("size", V::N(edge.size.to_string()))
        .item("signed_size", V::N(signed.to_string()))
        .item("version", V::N(version.to_string()))
        .send()
        .await
        .unwrap();
}

/// A marker or leaf written ahead of the log (to stall it, or to pass a new event
/// off as logged) is tampering, not contention.
#[tokio::test]
async fn items_written_ahead_of_the_log_are_refused_not_retried() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let mut h = harness().await;
    let _ = h.grant(&unique_key("LOG"), 1).await;
    h.feed().await;
    let size = h.log.head().await.unwrap().frontier.size;
    // A leaf at the next position.
    let db = h.stack.dynamodb();
    db.put_item()
        .table_name(&h.deps.config.log_table)
        .item("pk", V::S("LEAF".into()))
        .item("sk", V::S(format!("{size:020}")))
        .send()
        .await
        .unwrap();
    let g = h.grant(&unique_key("LOG"), 1).await;
    let batch = h.next_batch().await;
    let logged = handle_stream(&h.deps, batch.clone()).await;
    assert_eq!(logged.appended, 0);
    assert_eq!(logged.batch_item_failures.len(), 1);
    // A marker for the event, pointing at a leaf that is not it.
    db.delete_item()
        .table_name(&h.deps.config.log_table)
        .key("pk", V::S("LEAF".into()))
        .key("sk", V::S(format!("{size:020}")))
        .send()
        .await
        .unwrap();
    let event = h.store.audit_trail(g.id).await.unwrap().remove(0);
    db.put_item()
        .table_name(&h.deps.config.log_table)
        .item(
            "pk",
            V::S(format!("EVENT#{}#1#{}", g.id, event.hash.to_hex())),
        )
        .item("sk", V::S("LOGGED".into()))
        .item("position", V::N("0".into()))
        .send()
        .await
        .unwrap();
    let logged = handle_stream(&h.deps, batch).await;
    assert_eq!((logged.appended, logged.batch_item_failures.len()), (0, 1));
}

/// The ticket an event is logged under is its grant's first event's, under the
/// chain: a grant record deleted before its events are logged does not move them
/// out of their ticket's evidence.
#[tokio::test]
async fn an_events_ticket_comes_from_its_chain_not_the_grant_record() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let mut h = harness().await;
    let g = h.grant(&unique_key("LOG"), 2).await;
    h.stack
        .dynamodb()
        .delete_item()
        .table_name(&h.tables.grants)
        .key("pk", V::S(format!("GRANT#{}", g.id)))
        .key("sk", V::S("GRANT".into()))
        .send()
        .await
        .unwrap();
    h.feed().await;
    let entries = h.log.entries(2).await.unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e.ticket == g.request.ticket.qualified_key()),
        "{entries:?}"
    );
}

#[tokio::test]
async fn nothing_is_signed_with_a_disabled_key() {
    let mut h = harness().await;
    let _ = h.grant(&unique_key("LOG"), 1).await;
    h.feed().await;
    aws_sdk_kms::Client::new(&h.stack.sdk)
        .disable_key()
        // moto's DisableKey takes the bare id only (AWS takes the ARN too).
        .key_id(h.key_id.rsplit('/').next().unwrap())
        .send()
        .await
        .unwrap();
    // moto would sign with it; the checkpointer asks first.
    match handle_schedule(&h.deps).await {
        Err(CheckpointError::Anchor(e)) => {
            assert!(e.to_string().contains("not Enabled"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        bundle::newest_checkpoint(&h.bucket)
            .await
            .unwrap()
            .is_none()
    );
}

/// A key rollover as an operator does it: a new key signs only once the retiring one
/// signs beside it; an auditor who pinned either key follows; afterwards the retired
/// key signs nothing, and a key swapped in without a rollover signs nothing either.
#[tokio::test]
async fn a_key_rollover_hands_over_and_a_swapped_key_signs_nothing() {
    let mut h = harness().await;
    let g = h.grant(&unique_key("LOG"), 2).await;
    h.feed().await;
    handle_schedule(&h.deps)
        .await
        .unwrap()
        .expect("signed by the first key");
    let old = h.key().await;
    let new_id = ticketbound_anchor::create_signing_key(&h.stack.sdk, "the next key")
        .await
        .unwrap();
    let more = |h: &Harness| {
        let g = g.clone();
        let store = h.store.clone();
        async move {
            let current = store.get_grant(g.id).await.unwrap().unwrap();
            let mut next = current.noted(Utc::now());
            let e = next.record(AuditRecord::new(
                Utc::now(),
                Actor::component("test"),
                AuditAction::Rotated,
            ));
            store.save_grant(&next, &[e]).await.unwrap();
        }
    };

    // Swapped in without a rollover (an insider's key, say): nothing is signed.
    more(&h).await;
    h.feed().await;
    let swapped = h.deps_with(&new_id, None);
    assert!(matches!(
        handle_schedule(&swapped).await,
        Err(CheckpointError::KeyChanged { .. })
    ));
    assert_eq!(
        h.bucket
            .list(ticketbound_anchor::KEYS_PREFIX)
            .await
            .unwrap()
            .len(),
        1,
        "the swapped key is not kept among the log's keys"
    );

    // The rollover: both sign, and the checkpoint is kept among the handovers.
    let rolling = h.deps_with(&new_id, Some(&h.key_id));
    let handover = handle_schedule(&rolling)
        .await
        .unwrap()
        .expect("signed by both");
    let note = h
        .bucket
        .get(&ticketbound_anchor::handover_object(handover))
        .await
        .unwrap()
        .expect("the handover is kept");
    let note = String::from_utf8(note).unwrap();
    let new = Notary::new(&h.stack.sdk, new_id.clone())
        .public_key(ORIGIN)
        .await
        .unwrap();
    let (_, signers) =
        ticketbound_evidence::checkpoint_signers(&note, &[old.clone(), new.clone()]).unwrap();
    assert_eq!(signers, [0, 1]);

    // Then the new key alone.
    more(&h).await;
    h.feed().await;
    let after = h.deps_with(&new_id, None);
    let newest = handle_schedule(&after)
        .await
        .unwrap()
        .expect("signed by the new key");
    assert!(newest > handover);

    // An auditor who pinned the old key, and one who pinned the new, both verify.
    let ticket = g.request.ticket.qualified_key();
    let latest = bundle::newest_checkpoint(&h.bucket).await.unwrap();
    let bundle = h.bundle(&g).await;
    for pinned in [&old, &new] {
        let v = verify_bundle(
            &bundle,
            &Trust {
                key: pinned,
                ticket: &ticket,
                latest: latest.as_deref(),
                notes: None,
            },
        )
        .unwrap();
        assert_eq!(v.checkpoint.size, newest);
        if pinned == &old {
            assert_eq!(v.rollovers.len(), 1);
            assert_eq!(v.rollovers[0].size, handover);
            assert_eq!(v.rollovers[0].fingerprint, new.fingerprint());
        }
    }

    // The retired key, configured again, signs nothing.
    more(&h).await;
    h.feed().await;
    assert!(matches!(
        handle_schedule(&h.deps_with(&h.key_id, None)).await,
        Err(CheckpointError::KeyChanged { .. })
    ));
}
