//! Where the operator commands (`grants`, `evidence`, `reconcile`) look: a deployment
//! when `TICKETBOUND_GRANTS_TABLE` is set (with the same variables the functions read,
//! and the SDK's usual credentials), the local stack otherwise.

use std::path::Path;

use ticketbound_local::stack::LocalStack;
use ticketbound_runtime::{EnvReader, vars};
use ticketbound_store::{Registry, Store};

use crate::error::CliError;
use crate::local::host;
use ticketbound_local::targets;

#[derive(Debug)]
pub struct Context {
    pub sdk: aws_config::SdkConfig,
    pub store: Store,
    /// The identity registry, when its table is known here.
    registry: Option<Registry>,
    /// The variables a function would be given here (tables, targets, ITSM).
    vars: Vec<(String, String)>,
}

impl Context {
    pub async fn load(home: &Path) -> Result<Self, CliError> {
        if std::env::var_os(ticketbound_store::GRANTS_TABLE).is_some() {
            let sdk = ticketbound_runtime::aws::sdk_config_from_chain().await;
            let vars: Vec<(String, String)> = std::env::vars()
                .filter(|(k, _)| k.starts_with(vars::PREFIX))
                .collect();
            let mut env = EnvReader::from_map(vars.clone());
            let settings = ticketbound_store::StoreSettings::read(&mut env);
            let settings = env
                .finish_with("the CLI's tables", || settings)
                .map_err(CliError::Config)?;
            let registry = std::env::var(ticketbound_store::IDENTITIES_TABLE)
                .ok()
                .map(|table| Registry::new(aws_sdk_dynamodb::Client::new(&sdk), table));
            return Ok(Self {
                store: Store::new(aws_sdk_dynamodb::Client::new(&sdk), settings),
                registry,
                sdk,
                vars,
            });
        }
        let stack = LocalStack::read(&home.join(ticketbound_local::stack::FILE_NAME))?;
        let sdk = stack.sdk_config().await;
        let mut vars = host::writeback_env(&stack);
        vars.push((vars::TARGETS.to_owned(), targets::targets_json(&stack)));
        vars.push((
            ticketbound_store::IDENTITIES_TABLE.to_owned(),
            stack.identities_table.clone(),
        ));
        vars.push((
            vars::SCHEDULE_GROUP.to_owned(),
            targets::SCHEDULE_GROUP.to_owned(),
        ));
        vars.extend(host::checkpoint_env(&stack));
        let local = ticketbound_local::RunningStack {
            sdk: sdk.clone(),
            local: stack.clone(),
        };
        Ok(Self {
            store: local.local_store(),
            registry: Some(local.local_registry()),
            sdk,
            vars,
        })
    }

    /// The identity registry, or what to set to reach it.
    pub fn registry(&self) -> Result<&Registry, CliError> {
        self.registry.as_ref().ok_or_else(|| {
            CliError::NotFound(format!(
                "identity registry: set {} to its table's name",
                ticketbound_store::IDENTITIES_TABLE
            ))
        })
    }

    /// The variables among this context's that `names` lists (what one function reads).
    fn env_for(&self, names: &[&str]) -> EnvReader {
        EnvReader::from_map(
            self.vars
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .cloned(),
        )
    }

    /// The reconciler, configured as its Lambda would be here.
    pub fn reconciler(&self) -> Result<grant_reconcile::Deps, CliError> {
        grant_reconcile::Deps::from_env(&self.sdk, self.env_for(grant_reconcile::config::VARIABLES))
            .map_err(CliError::Config)
    }

    /// The signed log's table and the bucket of its checkpoints
    /// (`TICKETBOUND_LOG_TABLE`, `TICKETBOUND_LOG_BUCKET`).
    pub fn log(
        &self,
    ) -> Result<
        (
            ticketbound_store::LogStore,
            ticketbound_anchor::CheckpointBucket,
        ),
        CliError,
    > {
        let var = |name: &str| {
            self.vars
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| CliError::NotFound(format!("signed log: set {name}")))
        };
        let table = var(log_checkpoint::config::LOG_TABLE)?;
        let bucket = var(log_checkpoint::config::LOG_BUCKET)?;
        Ok((
            ticketbound_store::LogStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), table),
            ticketbound_anchor::CheckpointBucket::new(&self.sdk, bucket),
        ))
    }

    /// The write-back's clients, to read back what each ticket was told.
    pub fn writeback(&self) -> Result<ticket_writeback::Deps, CliError> {
        ticket_writeback::Deps::from_env(
            &self.sdk,
            self.env_for(ticket_writeback::config::VARIABLES),
        )
        .map_err(CliError::Config)
    }
}

/// Whether progress lines are wanted: only when a person watches.
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
