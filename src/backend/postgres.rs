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

    fn run_migration(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        let table = quote_ident(RECORDER_TABLE)?;
        let mut tx = self.begin()?;
        for statement in statements {
            if let Err(e) = tx.batch_execute(statement) {
                return Err(StatementError {
                    statement: statement.clone(),
                    source: pg_err(e),
                });
            }
        }
        for (app, name) in &recording.applied {
            tx.execute(
                &format!("INSERT INTO {table} (\"app\", \"name\", \"applied\") VALUES ($1, $2, statement_timestamp())"),
                &[app, name],
            )
            .map_err(pg_err)?;
        }
        for (app, name) in &recording.unapplied {
            tx.execute(
                &format!("DELETE FROM {table} WHERE \"app\" = $1 AND \"name\" = $2"),
                &[app, name],
            )
            .map_err(pg_err)?;
        }
        tx.commit().map_err(pg_err)?;
        Ok(())
    }
}
