//! Where tenants stand: every tenant's `django_migrations` read concurrently (a bounded number
//! of threads, each holding at most one connection), and Django's `showmigrations` list and
//! `migrate` plan computed from it. Tenants with the same history share one computation.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio_postgres::types::Type;

use crate::backend::client::Client;
use crate::backend::postgres::connect;
use crate::backend::{quote_ident, ConnectionParams, RECORDER_TABLE};
use crate::error::{DbError, PlanError};
use crate::graph::{Graph, GraphSpec, Key};
use crate::plan::{self, TargetRequest};

/// One row of a tenant's history table, `applied` as `YYYY-MM-DD HH:MM:SS` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub app: String,
    pub name: String,
    pub applied: String,
}

/// What reading one tenant's history gave.
#[derive(Debug)]
pub enum History {
    /// The rows in `id` order; empty when the history table does not exist yet.
    Read(Vec<HistoryRow>),
    /// The tenant's database file, database or schema does not exist.
    Missing(String),
    /// Anything else (unreachable server, refused login, ...).
    Failed(DbError),
}

/// How `showmigrations` marks a migration: `[X]`, `[ ]`, or `[-]` (a squash whose replaced
/// migrations are all applied but which is not recorded itself yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Applied,
    Unapplied,
    Unrecorded,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Applied => "applied",
            Mark::Unapplied => "unapplied",
            Mark::Unrecorded => "unrecorded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLine {
    pub name: String,
    /// How many migrations it replaces (a squash), else 0.
    pub replaces: usize,
    pub mark: Mark,
}

/// One app's section of `showmigrations --list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppList {
    pub app: String,
    pub lines: Vec<ListLine>,
}

/// Django's `showmigrations` list view for one applied set: for each app, its leaves' forwards
/// plans from oldest to newest, each migration once.
pub fn show_list(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    apps: &[String],
) -> Result<Vec<AppList>, PlanError> {
    let graph = Graph::build(spec, recorded, true)?;
    let mut lists = Vec::with_capacity(apps.len());
    for app in apps {
        let mut shown: BTreeSet<Key> = BTreeSet::new();
        let mut lines = Vec::new();
        for leaf in graph.leaf_nodes(Some(app)) {
            for node in graph.forwards_plan(&leaf)? {
                if node.0 != *app || shown.contains(&node) {
                    continue;
                }
                let mark = if !graph.applied.contains(&node) {
                    Mark::Unapplied
                } else if recorded.contains(&node) {
                    Mark::Applied
                } else {
                    Mark::Unrecorded
                };
                lines.push(ListLine {
                    name: node.1.clone(),
                    replaces: spec.get(&node).map_or(0, |m| m.replaces.len()),
                    mark,
                });
                shown.insert(node);
            }
        }
        lists.push(AppList {
            app: app.clone(),
            lines,
        });
    }
    Ok(lists)
}

/// What `migrate` (with the given target) would do, and the list view, for one applied set.
/// Each may fail on its own: `showmigrations` lists a history that `migrate` would refuse
/// (inconsistent, conflicting leaves).
#[derive(Debug, Clone)]
pub struct Standing {
    /// `(app, name, backwards)` in plan order.
    pub plan: Result<Vec<(String, String, bool)>, PlanError>,
    pub lists: Result<Vec<AppList>, PlanError>,
}

pub fn standing(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    request: &TargetRequest,
    apps: &[String],
) -> Standing {
    let plan = plan::plan_for_target(spec, recorded, request).map(|planned| {
        planned
            .steps
            .iter()
            .map(|s| (s.key.0.clone(), s.key.1.clone(), s.backwards))
            .collect()
    });
    let lists = if apps.is_empty() {
        Ok(Vec::new())
    } else {
        show_list(spec, recorded, apps)
    };
    Standing { plan, lists }
}

/// `standing` for many histories, computed once per distinct applied set.
pub fn standings(
    spec: &GraphSpec,
    histories: &[History],
    request: &TargetRequest,
    apps: &[String],
) -> Vec<Option<Standing>> {
    let mut memo: HashMap<BTreeSet<Key>, Standing> = HashMap::new();
    histories
        .iter()
        .map(|h| {
            let History::Read(rows) = h else {
                return None;
            };
            let recorded: BTreeSet<Key> = rows
                .iter()
                .map(|r| (r.app.clone(), r.name.clone()))
                .collect();
            let result = memo
                .entry(recorded)
                .or_insert_with_key(|recorded| standing(spec, recorded, request, apps));
            Some(result.clone())
        })
        .collect()
}

/// Read every tenant's history with at most `threads` threads; each thread keeps at most one
/// open connection, reused while consecutive tenants live in the same PostgreSQL database
/// (schema isolation). Results are in the order of `params`.
pub fn read_histories(params: &[ConnectionParams], threads: usize) -> Vec<History> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<History>>> =
        Mutex::new((0..params.len()).map(|_| None).collect());
    let workers = threads.clamp(1, params.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut held: Option<(String, Client)> = None;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = params.get(index) else { break };
                    let history = read_one(p, &mut held);
                    if let Ok(mut r) = results.lock() {
                        r[index] = Some(history);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.unwrap_or_else(|| History::Failed(DbError::Config("not read".into()))))
        .collect()
}

fn read_one(params: &ConnectionParams, held: &mut Option<(String, Client)>) -> History {
    match params {
        ConnectionParams::Sqlite { path } => read_sqlite(path),
        ConnectionParams::Postgresql { schema, .. } => {
            let key = pg_key(params);
            if held
                .as_ref()
                .is_none_or(|(k, c)| *k != key || c.is_closed())
            {
                *held = None;
                match connect(params) {
                    Ok(client) => *held = Some((key, client)),
                    Err(e) => return classify_pg_connect_failure(params, e),
                }
            }
            let Some((_, client)) = held.as_mut() else {
                return History::Failed(DbError::Config("no connection".into()));
            };
            let result = read_pg(client, schema.as_deref());
            if matches!(result, History::Failed(_)) {
                // Do not reuse a connection that may be in a bad state.
                *held = None;
            }
            result
        }
    }
}

fn pg_key(params: &ConnectionParams) -> String {
    match params {
        ConnectionParams::Postgresql {
            host,
            port,
            user,
            password,
            dbname,
            ..
        } => format!("{host:?}\0{port:?}\0{user:?}\0{password:?}\0{dbname}"),
        ConnectionParams::Sqlite { path } => path.clone(),
    }
}

fn read_sqlite(path: &str) -> History {
    if !Path::new(path).exists() {
        return History::Missing(format!("database file {path} does not exist"));
    }
    match sqlite_rows(path) {
        Ok(rows) => History::Read(rows),
        Err(e) => History::Failed(e),
    }
}

fn sqlite_rows(path: &str) -> Result<Vec<HistoryRow>, DbError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| crate::backend::sqlite::open_failed(path, &e))?;
    let sq = |e: rusqlite::Error| DbError::query(e.to_string(), None);
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sq)?;
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [RECORDER_TABLE],
            |r| r.get(0),
        )
        .map_err(sq)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let table = quote_ident(RECORDER_TABLE)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT \"app\", \"name\", substr(CAST(\"applied\" AS text), 1, 19) FROM {table} ORDER BY \"id\""
        ))
        .map_err(sq)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(HistoryRow {
                app: r.get(0)?,
                name: r.get(1)?,
                applied: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })
        .map_err(sq)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sq)
}

fn read_pg(client: &mut Client, schema: Option<&str>) -> History {
    // The schema (or, for a database of its own, the first schema of its search path, as
    // Django's introspection sees it) and whether the history table is in it.
    let probe = client.query_typed_one(
        "SELECT n.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
           WHERE c.relnamespace = n.oid AND c.relname = $2 AND c.relkind IN ('r', 'p')) \
         FROM (SELECT coalesce($1::text, current_schema()) AS nsp) s \
         LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp",
        &[(&schema, Type::TEXT), (&RECORDER_TABLE, Type::NAME)],
    );
    let (schema_exists, table_exists) = match probe {
        Ok(row) => (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        Err(e) => return History::Failed(e),
    };
    if let Some(schema) = schema {
        if !schema_exists {
            return History::Missing(format!("schema \"{schema}\" does not exist"));
        }
    }
    if !table_exists {
        return History::Read(Vec::new());
    }
    let table = match (
        schema.map(quote_ident).transpose(),
        quote_ident(RECORDER_TABLE),
    ) {
        (Ok(Some(s)), Ok(t)) => format!("{s}.{t}"),
        (Ok(None), Ok(t)) => t,
        (Err(e), _) | (_, Err(e)) => return History::Failed(e),
    };
    let sql = format!(
        "SELECT \"app\", \"name\", \
         to_char(\"applied\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
         FROM {table} ORDER BY \"id\""
    );
    match client.query_typed(&sql, &[]) {
        Ok(rows) => History::Read(
            rows.iter()
                .map(|r| HistoryRow {
                    app: r.get(0),
                    name: r.get(1),
                    applied: r.get::<_, Option<String>>(2).unwrap_or_default(),
                })
                .collect(),
        ),
        Err(e) => History::Failed(e),
    }
}

/// A refused connection is "missing" only when the server answers and has no such database
/// (asked through its `postgres` maintenance database); anything else is a failure.
fn classify_pg_connect_failure(params: &ConnectionParams, error: DbError) -> History {
    let ConnectionParams::Postgresql { dbname, .. } = params else {
        return History::Failed(error);
    };
    let mut maintenance = params.clone();
    if let ConnectionParams::Postgresql { dbname, schema, .. } = &mut maintenance {
        *dbname = "postgres".into();
        *schema = None;
    }
    let Ok(mut client) = connect(&maintenance) else {
        return History::Failed(error);
    };
    match client.query_typed_opt(
        "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
        &[(dbname, Type::NAME)],
    ) {
        Ok(None) => History::Missing(format!("database \"{dbname}\" does not exist")),
        _ => History::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> GraphSpec {
        GraphSpec::from_json(json).unwrap()
    }

    fn key(a: &str, n: &str) -> Key {
        (a.into(), n.into())
    }

    const SQUASHED: &str = r#"{"version": 1, "migrated_apps": ["a"], "migrations": [
        {"app": "a", "name": "0001"},
        {"app": "a", "name": "0002", "dependencies": [["a", "0001"]]},
        {"app": "a", "name": "0001_squashed_0002", "replaces": [["a", "0001"], ["a", "0002"]]},
        {"app": "a", "name": "0003", "dependencies": [["a", "0001_squashed_0002"]]}
    ]}"#;

    #[test]
    fn a_squash_is_listed_as_django_lists_it() {
        let s = spec(SQUASHED);
        let apps = vec!["a".to_string()];
        let none = show_list(&s, &BTreeSet::new(), &apps).unwrap();
        assert_eq!(
            none[0].lines,
            vec![
                ListLine {
                    name: "0001_squashed_0002".into(),
                    replaces: 2,
                    mark: Mark::Unapplied
                },
                ListLine {
                    name: "0003".into(),
                    replaces: 0,
                    mark: Mark::Unapplied
                },
            ]
        );
        // Every replaced migration applied, the squash not recorded yet: [-].
        let replaced: BTreeSet<Key> = [key("a", "0001"), key("a", "0002")].into();
        let lines = &show_list(&s, &replaced, &apps).unwrap()[0].lines;
        assert_eq!(lines[0].mark, Mark::Unrecorded);
        // Partly applied: the squash cannot be used, its replaced migrations are shown.
        let partial: BTreeSet<Key> = [key("a", "0001")].into();
        let lines = &show_list(&s, &partial, &apps).unwrap()[0].lines;
        let names: Vec<(&str, Mark)> = lines.iter().map(|l| (l.name.as_str(), l.mark)).collect();
        assert_eq!(
            names,
            vec![
                ("0001", Mark::Applied),
                ("0002", Mark::Unapplied),
                ("0003", Mark::Unapplied)
            ]
        );
    }

    #[test]
    fn equal_histories_are_computed_once_and_missing_ones_skipped() {
        let s = spec(SQUASHED);
        let row = |n: &str| HistoryRow {
            app: "a".into(),
            name: n.into(),
            applied: String::new(),
        };
        let histories = vec![
            History::Read(vec![row("0001")]),
            History::Missing("gone".into()),
            History::Read(vec![row("0001")]),
            History::Read(vec![]),
        ];
        let out = standings(&s, &histories, &TargetRequest::default(), &[]);
        assert!(out[1].is_none());
        let pending = |i: usize| out[i].as_ref().unwrap().plan.as_ref().unwrap().len();
        assert_eq!((pending(0), pending(2), pending(3)), (2, 2, 2));
    }

    #[test]
    fn missing_sqlite_file_is_missing_not_failed() {
        let path = std::env::temp_dir().join(format!("tm-status-{}.sqlite3", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p = ConnectionParams::Sqlite {
            path: path.to_string_lossy().into_owned(),
        };
        let read = read_histories(std::slice::from_ref(&p), 4);
        assert!(matches!(read[0], History::Missing(_)));
        rusqlite::Connection::open(&path).unwrap();
        let read = read_histories(&[p.clone(), p], 4);
        assert!(matches!(&read[0], History::Read(rows) if rows.is_empty()));
        assert!(matches!(&read[1], History::Read(rows) if rows.is_empty()));
        let _ = std::fs::remove_file(&path);
    }
}
