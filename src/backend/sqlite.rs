//! SQLite tenants: one database file per tenant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags};

use super::recorder::{Dialect, Recorder};

use super::{
    interrupted, Backend, Canceller, Interrupt, Recording, Running, StatementError, RECORDER_TABLE,
};
use crate::error::DbError;
use crate::graph::Key;

pub struct SqliteBackend {
    conn: Connection,
    interrupt: Interrupt,
    running: Running,
}

fn db_err(e: rusqlite::Error) -> DbError {
    // SQLite's own message, without rusqlite's copy of the statement (reported separately).
    let message = match &e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    DbError::query(message, None)
}

/// SQLite's reason, with the path once (SQLite's own text names it for some failures only).
pub fn open_failed(path: &str, e: &rusqlite::Error) -> DbError {
    let reason = e.to_string();
    if reason.contains(path) {
        DbError::Connect(reason)
    } else {
        DbError::Connect(format!("{reason}: {path}"))
    }
}

impl SqliteBackend {
    /// Open an existing file only: a missing tenant database must not be created by accident.
    pub fn open(path: &str, interrupt: Interrupt) -> Result<Self, DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_failed(path, &e))?;
        // The same connection state Django's SQLite backend sets up.
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF;")
            .map_err(|e| DbError::Connect(format!("{path}: {e}")))?;
        Ok(SqliteBackend {
            conn,
            interrupt,
            running: Running::default(),
        })
    }

    /// Django's `check_constraints()`: the foreign-key check its SQLite schema editor runs
    /// before committing, since constraints are off during the migration.
    fn foreign_key_violation(&self) -> Result<Option<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA foreign_key_check")
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        if let Some(row) = rows.next().map_err(db_err)? {
            let table: String = row.get(0).map_err(db_err)?;
            let rowid: Option<i64> = row.get(1).map_err(db_err)?;
            let parent: String = row.get(2).map_err(db_err)?;
            return Ok(Some(format!(
                "The row in table '{table}' with rowid '{}' has an invalid foreign key to table '{parent}'.",
                rowid.map(|r| r.to_string()).unwrap_or_default()
            )));
        }
        Ok(None)
    }

    fn run_in_transaction(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        for statement in statements {
            self.running.set(Some(statement.clone()));
            let result = self.conn.execute_batch(statement);
            self.running.set(None);
            if let Err(e) = result {
                return Err(StatementError {
                    statement: statement.clone(),
                    source: db_err(e),
                });
            }
        }
        let recorder = Recorder::new(Dialect::Sqlite, None)?;
        let now = utc_timestamp();
        for (app, name) in &recording.applied {
            self.conn
                .execute(&recorder.insert(), params![app, name, now])
                .map_err(db_err)?;
        }
        for (app, name) in &recording.unapplied {
            self.conn
                .execute(&recorder.delete(), params![app, name])
                .map_err(db_err)?;
        }
        if let Some(violation) = self.foreign_key_violation()? {
            return Err(StatementError {
                statement: "PRAGMA foreign_key_check".into(),
                source: DbError::Query {
                    message: violation,
                    sqlstate: None,
                },
            });
        }
        if self.interrupt.is_set() {
            return Err(StatementError::from(interrupted()));
        }
        self.conn.execute_batch("COMMIT").map_err(db_err)?;
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn canceller(&self) -> Option<Canceller> {
        Some(Canceller::Sqlite(self.conn.get_interrupt_handle()))
    }

    fn running(&self) -> Running {
        self.running.clone()
    }

    fn fingerprint(&mut self) -> Result<String, DbError> {
        let mut text = format!("sqlite {}\n", rusqlite::version());
        let mut stmt = self
            .conn
            .prepare(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}\n",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            text.push_str(&row.map_err(db_err)?);
        }
        drop(stmt);
        for (app, name) in self.applied()? {
            text.push_str(&format!("applied {app}.{name}\n"));
        }
        Ok(super::digest(&text))
    }

    fn recorder_exists(&mut self) -> Result<bool, DbError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [RECORDER_TABLE],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        Ok(n > 0)
    }

    fn applied(&mut self) -> Result<Vec<Key>, DbError> {
        if !self.recorder_exists()? {
            return Ok(Vec::new());
        }
        let recorder = Recorder::new(Dialect::Sqlite, None)?;
        let mut stmt = self
            .conn
            .prepare(&recorder.select_applied())
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    fn run_migration(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        // Django's SQLite schema editor turns foreign keys off for the whole migration (the pragma
        // is a no-op inside a transaction) and checks them before commit.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(db_err)?;
        let result = self.run_in_transaction(statements, recording);
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let restored = self
            .conn
            .execute_batch("PRAGMA foreign_keys = ON")
            .map_err(db_err);
        result?;
        restored.map_err(StatementError::from)
    }
}

/// UTC now as Django stores a `DateTimeField` in SQLite: `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn utc_timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil conversion.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> String {
        let path = std::env::temp_dir().join(format!("tm-{}-{name}.sqlite3", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Connection::open(&path).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn recorder_ddl() -> Vec<String> {
        vec!["CREATE TABLE \"django_migrations\" (\"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \"app\" varchar(255) NOT NULL, \"name\" varchar(255) NOT NULL, \"applied\" datetime NOT NULL);".into()]
    }

    #[test]
    fn failing_statement_rolls_back_the_whole_migration() {
        let path = temp_db("rollback");
        let mut db = SqliteBackend::open(&path, Interrupt::default()).unwrap();
        db.create_recorder(&recorder_ddl()).unwrap();
        let rec = Recording {
            applied: vec![("a".into(), "0001".into())],
            unapplied: vec![],
        };
        let err = db
            .run_migration(
                &[
                    "CREATE TABLE t (id integer);".into(),
                    "CREATE TABLE t (id integer);".into(),
                ],
                &rec,
            )
            .unwrap_err();
        assert!(
            err.source.to_string().contains("already exists"),
            "{}",
            err.source
        );
        assert_eq!(err.statement, "CREATE TABLE t (id integer);");
        assert!(db.applied().unwrap().is_empty());
        let tables: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        db.run_migration(&["CREATE TABLE t (id integer);".into()], &rec)
            .unwrap();
        assert_eq!(db.applied().unwrap(), rec.applied);
    }

    #[test]
    fn missing_file_is_a_connection_error() {
        let err = SqliteBackend::open("/nonexistent/dir/x.sqlite3", Interrupt::default())
            .err()
            .unwrap();
        assert!(matches!(err, DbError::Connect(_)));
    }

    #[test]
    fn timestamp_has_django_shape() {
        let ts = utc_timestamp();
        assert_eq!(ts.len(), 26, "{ts}");
        assert_eq!(&ts[4..5], "-");
        assert_eq!(&ts[19..20], ".");
    }
}
