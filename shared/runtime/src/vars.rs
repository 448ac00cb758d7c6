//! Every `TICKETBOUND_*` variable, in one place: its name (the constant's, prefixed),
//! who besides the functions reads it, and what it means. The functions, the adapters'
//! `read`s and the CLI name variables through these constants only (a test in
//! `tests/infra-check` finds any other spelling of a name in the code, the scripts or
//! the docs), and `docs/configuration.md`'s tables are generated from [`FUNCTIONS`] and
//! [`LOCAL`] (the same test fails when they differ; `BLESS=1` rewrites them). Which
//! function reads a variable is not written here: it is each function's
//! `config::VARIABLES`, which `tests/infra-check` holds to Terraform.

/// The prefix every variable's name has.
pub const PREFIX: &str = "TICKETBOUND_";

/// One variable of the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// Its whole name, `TICKETBOUND_…`.
    pub name: &'static str,
    /// Who reads it besides the functions that list it (the CLI, a script, tests).
    pub also_read_by: &'static [&'static str],
    /// What it means and its default, as the reference prints it (Markdown).
    pub meaning: &'static str,
}

/// Declares each variable's constant (its name is `TICKETBOUND_` and the constant's
/// own, so the two cannot differ) and the list the reference is made from.
macro_rules! variables {
    ($list:ident: $( $ident:ident $([$($also:literal),*])? => $meaning:literal; )*) => {
        $(
            #[doc = concat!("`TICKETBOUND_", stringify!($ident), "`.")]
            pub const $ident: &str = concat!("TICKETBOUND_", stringify!($ident));
        )*
        /// The reference's rows, in its order.
        pub const $list: &[Variable] = &[
            $( Variable { name: $ident, also_read_by: &[$($($also),*)?], meaning: $meaning } ),*
        ];
    };
}

variables! {
    FUNCTIONS:
    GRANTS_TABLE ["CLI"] =>
        r#"the deployed grants table's name. Required. The CLI works against a deployment when it is set, and against the local stack otherwise"#;
    AUDIT_TABLE ["CLI"] =>
        r#"the deployed audit table's name. Required"#;
    RETENTION_DAYS ["CLI"] =>
        r#"how long a grant record outlives its not-after time, in days. Default 400"#;
    IDENTITIES_TABLE ["CLI"] =>
        r#"the identity registry's table. Required by the three functions; the CLI's `identities` commands need it against a deployment"#;
    EVENTBRIDGE_SOURCES =>
        r#"comma-separated EventBridge `source` values of the integrations (none `aws.…`). Set with `TICKETBOUND_EVENTBRIDGE_ACCOUNT`, or neither (then EventBridge events are refused). Default: unset"#;
    EVENTBRIDGE_ACCOUNT =>
        r#"the 12-digit account EventBridge events must come from (the deployment's). Default: unset (EventBridge events refused)"#;
    POLICY_DIR =>
        r#"a directory of `*.cedar` policies replacing the defaults. Default: the compiled-in `shared/policy/policies/default.cedar` (Terraform leaves it unset)"#;
    JIRA_SECRET_ID =>
        r#"Secrets Manager id of the Jira webhook secret; enables `/jira`. Default: unset (`/jira` not configured)"#;
    JIRA_MAPPING =>
        r#"JSON: Jira statuses and custom field ids ([itsm-setup.md](itsm-setup.md#jira-service-management)). Default: the built-in mapping, matching `tests/fixtures/jira/`"#;
    JIRA_API_URL =>
        r#"the Jira site's URL for the read-back of every Jira approval ([itsm-setup.md](itsm-setup.md#every-jira-approval-is-read-back-from-jira)). Set with `TICKETBOUND_JIRA_READ_SECRET_ID`, both or neither. Default: unset (no read-back; Jira approvals refused unless `jira` is in `TICKETBOUND_SENDER_ONLY`)"#;
    JIRA_READ_SECRET_ID =>
        r#"Secrets Manager id of the intake's read-only Jira account (`{"email", "api_token"}`). Both or neither with `TICKETBOUND_JIRA_API_URL`. Default: unset"#;
    SENDER_ONLY =>
        r#"comma-separated systems (`jira`, `servicenow`, `generic`) whose approvals are believed on their signature alone, without read-back; each such grant says `sender_only`. Default: none"#;
    SERVICENOW_SECRET_ID =>
        r#"Secrets Manager id of the ServiceNow secret; enables `/servicenow`. Default: unset"#;
    SERVICENOW_AUTH =>
        r#"`hmac` or `bearer`. Default `hmac`"#;
    SERVICENOW_MAPPING =>
        r#"JSON: ServiceNow approval values, states and field names. Default: the built-in mapping in `shared/itsm/src/servicenow.rs`"#;
    GENERIC_SECRET_ID =>
        r#"Secrets Manager id of the generic senders' secret; enables `/generic`. Default: unset"#;
    REPLAY_WINDOW_SECS =>
        r#"accepted clock difference for timestamped signatures, in seconds. Default 300"#;
    DELIVERY_TTL_HOURS =>
        r#"how long a delivery id is remembered, in hours. Default 72"#;
    SECRET_MIN_REFRESH_SECS =>
        r#"least time between forced secret refreshes, in seconds. Default 30"#;
    TARGETS =>
        r#"the intake reads only each target's connector, environment and `approvers` rule. JSON: system id → `{"connector": "postgres", "environment": "prod" or "non-prod" (required; policy's rules follow it, and a grant whose recorded environment differs is not issued), "admin_secret_id", "host", "port", "dbname", "allowed_roles": […], "rotation": "alternating_users" (default) or "single_user", "ca_file": PEM CA bundle, "tls": "verify_full" (default; needs `ca_file`) or "disabled", "approvers": {"groups": […], "users": […]} (optional: whose approval counts)}`; any other key is refused (`postgres` is the only connector: `generated_api_key` was removed, see [connectors.md](connectors.md#retired-generated_api_key)). Required"#;
    SECRET_KMS_KEY_ID =>
        r#"KMS key for credential secrets. Default: the account's Secrets Manager key"#;
    SECRET_ADMIN_PRINCIPALS =>
        r#"comma-separated ARNs of ticketbound's roles that keep access to credential secrets. Default: none"#;
    ROTATION_FUNCTION_ARN =>
        r#"the rotation function. Default: unset, and rotation is not turned on (the audit says so)"#;
    EXPIRY_FUNCTION_ARN =>
        r#"what expiry (and revocation retry) schedules invoke. Required by grant-provision; without it grant-expire leaves retries to its triggers"#;
    PROVISION_FUNCTION_ARN =>
        r#"what a change window's start schedule invokes: grant-provision itself (a grant approved for a window that has not begun is issued at its start, not before). Required by grant-provision"#;
    SCHEDULER_ROLE_ARN =>
        r#"the role EventBridge Scheduler assumes to invoke it. Required by grant-provision; without it grant-expire leaves retries to its triggers"#;
    SCHEDULE_GROUP =>
        r#"the schedule group. Default `ticketbound`"#;
    SCHEDULE_DLQ_ARN =>
        r#"dead-letter queue of the expiry and retry schedules. Default: unset"#;
    REVOCATION_ESCALATE_AFTER_SECS =>
        r#"a revocation failing this long, in seconds, is escalated, once. Default 900"#;
    REVOCATION_RETRY_MAX_SECS =>
        r#"longest wait between two retries of a failing revocation, in seconds. Default 300"#;
    MAX_PROVISIONING_ATTEMPTS =>
        r#"attempts before a grant is Failed. Default 5"#;
    SECRET_RECOVERY_DAYS =>
        r#"7 to 30: keep deleted credential secrets recoverable for that many days. Default: unset, delete at once"#;
    SECRET_CACHE_SECS =>
        r#"how long a configuration secret is served from memory, in seconds. Default 300"#;
    REVOKE_CONCURRENCY =>
        r#"grants revoked at once within a batch. Default 8"#;
    SERVICENOW_URL =>
        r#"the ServiceNow instance. Set with `TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID`, both or neither. Default: unset (no ServiceNow write-back)"#;
    SERVICENOW_CREDENTIALS_SECRET_ID =>
        r#"the secret of the instance's API credentials (basic or OAuth, [itsm-setup.md](itsm-setup.md#write-back-functionsticket-writeback)). Both or neither with `TICKETBOUND_SERVICENOW_URL`. Default: unset"#;
    SERVICENOW_REVOKED_STATE =>
        r#"the `state` a record is set to when its grant is revoked. Default: unset (state unchanged)"#;
    JIRA_URL =>
        r#"the Jira site the write-back comments on. Set with `TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID`, both or neither. Default: unset (no Jira write-back)"#;
    JIRA_CREDENTIALS_SECRET_ID =>
        r#"the secret of the site's API token (`{"email","api_token"}`). Both or neither with `TICKETBOUND_JIRA_URL`. Default: unset"#;
    JIRA_REVOKED_TRANSITION_ID =>
        r#"the transition an issue takes when its grant is revoked. Default: unset (no transition)"#;
    WRITEBACK_ATTEMPTS =>
        r#"attempts per note before the dead-letter record. Default 4"#;
    WRITEBACK_MAX_WAIT_SECS =>
        r#"the longest pause between attempts, in seconds, whatever Retry-After says. Default 20"#;
    RECONCILE_REMEDIATE =>
        r#"`false`: report expired-but-live credentials without revoking them. Default `true`"#;
    RECONCILE_SEGMENTS =>
        r#"parallel scan segments of the grants table. Default 4"#;
    ROTATION_GRACE_HOURS =>
        r#"how late a rotation may be, in hours, before it is reported overdue. Default 2"#;
    LOG_TABLE ["CLI"] =>
        r#"the signed log's table. Required; the write-back reads only its newest checkpoint's item"#;
    LOG_KEY_ID =>
        r#"the KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs checkpoints. Required"#;
    LOG_PREVIOUS_KEY_ID =>
        r#"during a key rollover only: the retiring key, which signs each checkpoint beside the new one (must differ from `TICKETBOUND_LOG_KEY_ID`; [evidence.md](evidence.md#key-rollover)). Default: unset"#;
    LOG_BUCKET ["CLI"] =>
        r#"the Object Lock bucket that keeps the checkpoints. Required"#;
    LOG_ORIGIN =>
        r#"the log's name: each checkpoint's origin and its key's name. Required; no spaces or `+`"#;
    CHECKPOINT_EVERY =>
        r#"events logged past the last checkpoint before another is signed. Default 64"#;
}

variables! {
    LOCAL:
    HOME [r#"CLI (`--home`)"#] =>
        r#"the local stack's state directory. Default `.ticketbound`"#;
    LOCAL_FILE [r#"tests, CLI (`local/src/stack.rs`)"#] =>
        r#"a `local.json` to use instead of searching upwards for `.ticketbound/local.json`. Default: unset"#;
    KEEP_STACK [r#"`scripts/test`"#] =>
        r#"set (to anything) to keep a stack the test run started. Default: unset, the run stops what it started"#;
}
