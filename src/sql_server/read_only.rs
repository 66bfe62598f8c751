//! The server only reads: any statement but a query, `EXPLAIN`, `SHOW`, a transaction or
//! cursor statement, or a `SET` of a session option is refused with a Postgres error before
//! it is planned, so nothing (a table, the engine's settings, a file by `COPY … TO`) is
//! written.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Session options a client may set. Those the protocol layer keeps per connection are
/// passed on to it; the others (what drivers send at start) are acknowledged and ignored.
const KEPT: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];
const IGNORED: &[&str] = &[
    "client_encoding",
    "client_min_messages",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "standard_conforming_strings",
    "default_transaction_read_only",
    "default_transaction_isolation",
    "jit",
    "geqo",
    "names",
];

/// Refuses what would write; acknowledges the session options that need no work.
pub struct ReadOnly;

/// What to do with `statement`.
enum Verdict {
    /// Let it through.
    Read,
    /// Nothing to do (a session option, a savepoint in a read-only transaction): answered
    /// with this tag.
    Ignore(&'static str),
    Refuse(PgWireError),
}

fn verdict(statement: &Statement) -> Verdict {
    match statement {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. } => Verdict::Read,
        // psqlODBC prepares through the protocol, then frees each statement with SQL
        // `DEALLOCATE "_PLAN…"`, which DataFusion does not know: an error that aborts the
        // client's transaction. A statement is freed with its connection anyway.
        Statement::Deallocate { .. } => Verdict::Ignore("DEALLOCATE"),
        // Drivers wrap their own start-up queries in savepoints (psycopg): nothing to undo.
        Statement::Savepoint { .. } => Verdict::Ignore("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Verdict::Ignore("RELEASE"),
        Statement::Set(set) => set_verdict(set),
        other => Verdict::Refuse(refused(
            "25006",
            format!(
                "cannot execute {} in a read-only server: arstream serves SQL over its snapshots and writes nothing",
                first_words(&other.to_string())
            ),
        )),
    }
}

fn set_verdict(set: &Set) -> Verdict {
    match set {
        Set::SingleAssignment { variable, .. } => {
            let name = variable.to_string().to_lowercase();
            if KEPT.contains(&name.as_str()) {
                Verdict::Read
            } else if IGNORED.contains(&name.as_str()) {
                Verdict::Ignore("SET")
            } else {
                Verdict::Refuse(refused(
                    "42501",
                    format!(
                        "permission denied to set parameter \"{name}\": a client may set session options only ({})",
                        KEPT.join(", ")
                    ),
                ))
            }
        }
        Set::SetTimeZone { .. } => Verdict::Read,
        Set::SetNames { .. } | Set::SetNamesDefault {} => Verdict::Ignore("SET"),
        Set::SetTransaction { .. } | Set::SetSessionParam(_) => Verdict::Ignore("SET"),
        other => Verdict::Refuse(refused(
            "42501",
            format!("permission denied: {other} is not a session option"),
        )),
    }
}

/// The first words of a statement, to name it in an error (`INSERT INTO`, `COPY`, …).
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn refused(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}

fn answer(statement: &Statement) -> Option<PgWireResult<Response>> {
    match verdict(statement) {
        Verdict::Read => None,
        Verdict::Ignore(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
        Verdict::Refuse(e) => Some(Err(e)),
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match verdict(statement) {
            Verdict::Refuse(e) => Some(Err(e)),
            // A SET answered at execution needs a plan to describe: an empty one.
            Verdict::Ignore(_) => Some(Ok(LogicalPlan::EmptyRelation(
                datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: std::sync::Arc::new(datafusion::common::DFSchema::empty()),
                },
            ))),
            Verdict::Read => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn code(sql: &str) -> Option<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        match verdict(&statement) {
            Verdict::Read => None,
            Verdict::Ignore(tag) => Some(tag.into()),
            Verdict::Refuse(PgWireError::UserError(info)) => Some(info.code.clone()),
            Verdict::Refuse(other) => panic!("{other}"),
        }
    }

    #[test]
    fn reads_pass_and_writes_are_refused() {
        assert_eq!(code("SELECT 1"), None);
        assert_eq!(code("WITH a AS (SELECT 1) SELECT * FROM a"), None);
        assert_eq!(code("SHOW statement_timeout"), None);
        assert_eq!(code("BEGIN"), None);
        assert_eq!(
            code("DEALLOCATE \"_PLAN0x555aac97d290\""),
            Some("DEALLOCATE".into())
        );
        assert_eq!(code("SET statement_timeout = 1000"), None);
        assert_eq!(code("SET TIME ZONE 'UTC'"), None);
        assert_eq!(code("SET client_encoding TO 'UTF8'"), Some("SET".into()));
        assert_eq!(code("SAVEPOINT _pg3_1"), Some("SAVEPOINT".into()));
        assert_eq!(code("RELEASE SAVEPOINT _pg3_1"), Some("RELEASE".into()));
        for write in [
            "INSERT INTO invoices VALUES (1)",
            "UPDATE invoices SET amount = 0",
            "DELETE FROM invoices",
            "CREATE TABLE t (a INT)",
            "CREATE VIEW v AS SELECT 1",
            "DROP VIEW aging",
            "COPY invoices TO '/tmp/out.csv'",
            "TRUNCATE invoices",
        ] {
            assert_eq!(code(write).as_deref(), Some("25006"), "{write}");
        }
        assert_eq!(
            code("SET datafusion.execution.batch_size = 1").as_deref(),
            Some("42501")
        );
    }
}
