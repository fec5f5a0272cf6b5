//! PostgreSQL tenants: a database of their own, or a schema of their own in a shared database.
//!
//! In schema isolation every transaction starts with `SET LOCAL search_path` naming the tenant's
//! schema only: it survives a transaction-pooling proxy (a plain `SET` would leak to whoever gets
//! the server connection next) and an unqualified table that is not in the tenant's schema fails
//! instead of resolving to `public` or to another tenant.

use std::time::Duration;

use postgres::{Client, NoTls, Transaction};

use super::{quote_ident, Backend, ConnectionParams, Recording, StatementError, RECORDER_TABLE};
use crate::error::DbError;
use crate::graph::Key;

/// PostgreSQL silently truncates longer identifiers, which could make two tenants share one.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

pub struct PostgresBackend {
    client: Client,
    /// Already quoted.
    search_path: Option<String>,
}

pub fn pg_err(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError::query(db.message().to_string(), Some(db.code().code().to_string())),
        None => DbError::query(e.to_string(), None),
    }
}

/// The server's reason for refusing a connection, without the crate's prefix.
fn connect_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

pub fn check_identifier(kind: &str, name: &str) -> Result<(), DbError> {
    if name.is_empty() {
        return Err(DbError::Config(format!("{kind} name is empty")));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(DbError::Config(format!(
            "{kind} name '{name}' is {} bytes long; PostgreSQL allows at most {MAX_IDENTIFIER_BYTES}",
            name.len()
        )));
    }
    quote_ident(name).map(|_| ())
}

pub fn connect(params: &ConnectionParams) -> Result<Client, DbError> {
    let ConnectionParams::Postgresql {
        host,
        port,
        user,
        password,
        dbname,
        connect_timeout,
        application_name,
        ..
    } = params
    else {
        return Err(DbError::Config("not PostgreSQL parameters".into()));
    };
    check_identifier("database", dbname)?;
    let mut config = postgres::Config::new();
    config.host(
        host.as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost"),
    );
    config.port(port.unwrap_or(5432));
    config.dbname(dbname);
    if let Some(user) = user.as_deref().filter(|u| !u.is_empty()) {
        config.user(user);
    } else {
        config.user("postgres");
    }
    if let Some(password) = password.as_deref().filter(|p| !p.is_empty()) {
        config.password(password);
    }
    config.connect_timeout(Duration::from_secs(connect_timeout.unwrap_or(10)));
    config.application_name(
        application_name
            .as_deref()
            .unwrap_or("django-tenant-migrate"),
    );
    config
        .connect(NoTls)
        .map_err(|e| DbError::Connect(connect_reason(&e)))
}

impl PostgresBackend {
    pub fn open(params: &ConnectionParams) -> Result<Self, DbError> {
        let ConnectionParams::Postgresql { schema, .. } = params else {
            return Err(DbError::Config("not PostgreSQL parameters".into()));
        };
        let mut client = connect(params)?;
        let search_path = match schema {
            None => None,
            Some(schema) => {
                check_identifier("schema", schema)?;
                let exists = client
                    .query_opt(
                        "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                        &[schema],
                    )
                    .map_err(pg_err)?
                    .is_some();
                if !exists {
                    return Err(DbError::Connect(format!(
                        "schema \"{schema}\" does not exist"
                    )));
                }
                Some(quote_ident(schema)?)
            }
        };
        Ok(PostgresBackend {
            client,
            search_path,
        })
    }

    fn begin(&mut self) -> Result<Transaction<'_>, DbError> {
        let search_path = self.search_path.clone();
        let mut tx = self.client.transaction().map_err(pg_err)?;
        if let Some(path) = search_path {
            tx.batch_execute(&format!("SET LOCAL search_path TO {path}"))
                .map_err(pg_err)?;
        }
        Ok(tx)
    }
}

impl Backend for PostgresBackend {
    fn recorder_exists(&mut self) -> Result<bool, DbError> {
        // Visible through the tenant's search path only, as Django's introspection sees it.
        let mut tx = self.begin()?;
        let row = tx
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
                 AND n.nspname = ANY (pg_catalog.current_schemas(false))",
                &[&RECORDER_TABLE],
            )
            .map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    fn create_recorder(&mut self, ddl: &[String]) -> Result<(), DbError> {
        if self.recorder_exists()? {
            return Ok(());
        }
        self.run_migration(ddl, &Recording::default())
            .map_err(|e| e.source)
    }

    fn applied(&mut self) -> Result<Vec<Key>, DbError> {
        if !self.recorder_exists()? {
            return Ok(Vec::new());
        }
        let table = quote_ident(RECORDER_TABLE)?;
        let mut tx = self.begin()?;
        let rows = tx
            .query(
                &format!("SELECT \"app\", \"name\" FROM {table} ORDER BY \"id\""),
                &[],
            )
            .map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    fn fingerprint(&mut self) -> Result<String, DbError> {
        let mut tx = self.begin()?;
        let row = tx.query_one(FINGERPRINT_SQL, &[]).map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        let catalog: String = row.get(0);
        let version: String = row.get(1);
        let mut text = format!("postgres {version} {catalog}\n");
        for (app, name) in self.applied()? {
            text.push_str(&format!("applied {app}.{name}\n"));
        }
        Ok(super::digest(&text))
    }

    /// One round trip for the migration's statements (with BEGIN and the search path), one per
    /// history row, one for COMMIT. If the batch fails, the same statements are re-run one by
    /// one in a transaction that is rolled back, only to name the failing statement.
    fn run_migration(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        let table = quote_ident(RECORDER_TABLE)?;
        let mut batch = String::from("BEGIN;\n");
        if let Some(path) = &self.search_path {
            batch.push_str(&format!("SET LOCAL search_path TO {path};\n"));
        }
        for statement in statements {
            // A newline first ends a trailing `--` comment; empty statements are harmless.
            batch.push_str(statement);
            batch.push_str("\n;\n");
        }
        if let Err(e) = self.client.batch_execute(&batch) {
            let _ = self.client.batch_execute("ROLLBACK");
            return Err(self.locate_failure(statements, pg_err(e)));
        }
        let result = self.record_and_commit(&table, recording);
        if let Err(e) = result {
            let _ = self.client.batch_execute("ROLLBACK");
            return Err(StatementError::from(e));
        }
        Ok(())
    }
}

impl PostgresBackend {
    fn record_and_commit(&mut self, table: &str, recording: &Recording) -> Result<(), DbError> {
        for (app, name) in &recording.applied {
            self.client
                .execute(
                    &format!("INSERT INTO {table} (\"app\", \"name\", \"applied\") VALUES ($1, $2, statement_timestamp())"),
                    &[app, name],
                )
                .map_err(pg_err)?;
        }
        for (app, name) in &recording.unapplied {
            self.client
                .execute(
                    &format!("DELETE FROM {table} WHERE \"app\" = $1 AND \"name\" = $2"),
                    &[app, name],
                )
                .map_err(pg_err)?;
        }
        self.client.batch_execute("COMMIT").map_err(pg_err)
    }

    fn locate_failure(&mut self, statements: &[String], batch_error: DbError) -> StatementError {
        let Ok(mut tx) = self.begin() else {
            return StatementError::from(batch_error);
        };
        for statement in statements {
            if let Err(e) = tx.batch_execute(statement) {
                return StatementError {
                    statement: statement.clone(),
                    source: pg_err(e),
                };
            }
        }
        // Dropping the transaction rolls it back.
        StatementError::from(batch_error)
    }
}

/// The tenant's catalog as one digest, schema names left out so that tenants in different
/// schemas compare equal when their structure is equal.
const FINGERPRINT_SQL: &str = r#"
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')), current_setting('server_version_num')
FROM (
    SELECT 'r ' || c.relname || ' ' || c.relkind::text
    FROM pg_catalog.pg_class c WHERE c.relnamespace = current_schema()::regnamespace
  UNION ALL
    SELECT 'a ' || c.relname || '.' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
        || ' ' || a.attnotnull::text || ' ' || a.attidentity::text || ' '
        || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT 'k ' || c.relname || ' ' || k.conname || ' ' || pg_catalog.pg_get_constraintdef(k.oid)
    FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
    WHERE c.relnamespace = current_schema()::regnamespace
  UNION ALL
    SELECT 'i ' || i.indexname || ' ' || replace(i.indexdef, quote_ident(i.schemaname) || '.', '')
    FROM pg_catalog.pg_indexes i WHERE i.schemaname = current_schema()
  UNION ALL
    SELECT 's ' || s.sequencename || ' ' || s.data_type::text || ' ' || s.start_value || ' ' || s.increment_by
    FROM pg_catalog.pg_sequences s WHERE s.schemaname = current_schema()
) AS catalog(x)
"#;
