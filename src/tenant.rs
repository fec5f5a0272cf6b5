//! The tenant registry: a table in the master database, read directly with a bound tenant id.
//!
//! Which table and which columns is data from the Python side (`RegistrySpec`), so a swapped
//! tenant model (say one made for django-tenants) is read the same way as the package's own.

use std::collections::{BTreeMap, HashMap};

use crate::backend::{self, quote_ident, ConnectionParams};
use crate::error::Error;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: String,
    pub name: String,
    /// `database` or `schema`.
    pub isolation: String,
    pub database_name: String,
    pub schema_name: String,
    /// JSON object of connection overrides (HOST, PORT, USER, PASSWORD, ...), as stored.
    pub connection: String,
    /// Other tenants of the same isolation whose stored database name (database isolation) or
    /// schema name (schema isolation) is this one's: they may share its storage, which the
    /// caller, knowing where each really is (server overrides), refuses. At most
    /// `MAX_NAMESAKES`; their own `namesakes` are left empty.
    pub namesakes: Vec<TenantRecord>,
}

/// Enough to name the clash; a registry where more tenants share one name is broken anyway.
const MAX_NAMESAKES: usize = 10;

/// Which rows a registry read returns.
enum Filter<'a> {
    All,
    Id(&'a str),
    /// Every tenant but `tenant_id` whose `column` (None: every tenant) equals `value`.
    Others {
        tenant_id: &'a str,
        column: Option<&'a str>,
        value: &'a str,
    },
}

/// Where one field of a `TenantRecord` comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A column of the registry table (NULL reads as the empty string).
    Column(String),
    /// The same for every tenant; `{tenant_id}` is replaced by the tenant's id.
    Value(String),
}

/// The registry table and the column of each record field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    pub table: String,
    /// Column of the tenant id: unique, compared with the bound id, and the listing order.
    pub tenant_id: String,
    pub name: Source,
    pub isolation: Source,
    pub database_name: Source,
    pub schema_name: Source,
    pub connection: Source,
    /// Stored isolation values and what they mean (`{"SCH": "schema", "DB": "database"}`);
    /// a value not listed is kept as stored.
    #[serde(default)]
    pub isolation_values: BTreeMap<String, String>,
}

impl RegistrySpec {
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::InvalidArgument(format!("invalid tenant registry description: {e}"))
        })
    }

    /// The package's own table (`tenant_migrate.Tenant`), every field a column of its name.
    pub fn default_table() -> Self {
        let column = |name: &str| Source::Column(name.to_string());
        RegistrySpec {
            table: "tenant_migrate_tenant".into(),
            tenant_id: "tenant_id".into(),
            name: column("name"),
            isolation: column("isolation"),
            database_name: column("database_name"),
            schema_name: column("schema_name"),
            connection: column("connection"),
            isolation_values: BTreeMap::new(),
        }
    }

    fn sources(&self) -> [&Source; 5] {
        [
            &self.name,
            &self.isolation,
            &self.database_name,
            &self.schema_name,
            &self.connection,
        ]
    }

    /// `SELECT` of the tenant id and every column-backed field, each read as text (so a
    /// varchar, text or json column all arrive as a string), without the filter.
    fn select(&self) -> Result<String, Error> {
        let mut columns = vec![quote_ident(&self.tenant_id)?];
        for source in self.sources() {
            if let Source::Column(name) = source {
                columns.push(quote_ident(name)?);
            }
        }
        let list = columns
            .iter()
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!("SELECT {list} FROM {}", quote_ident(&self.table)?))
    }

    /// A record from the selected values, in `select()`'s order.
    fn record(&self, values: Vec<Option<String>>) -> TenantRecord {
        let mut values = values.into_iter().map(Option::unwrap_or_default);
        let tenant_id = values.next().unwrap_or_default();
        let mut field = |source: &Source| match source {
            Source::Column(_) => values.next().unwrap_or_default(),
            Source::Value(template) => template.replace("{tenant_id}", &tenant_id),
        };
        let name = field(&self.name);
        let stored_isolation = field(&self.isolation);
        let isolation = self
            .isolation_values
            .get(&stored_isolation)
            .cloned()
            .unwrap_or(stored_isolation);
        TenantRecord {
            name,
            isolation,
            database_name: field(&self.database_name),
            schema_name: field(&self.schema_name),
            connection: field(&self.connection),
            tenant_id: tenant_id.clone(),
            namesakes: Vec::new(),
        }
    }

    /// The source and value of the name that locates `record`'s storage (database name or
    /// schema name, by isolation).
    fn location<'a>(&'a self, record: &'a TenantRecord) -> Option<(&'a Source, &'a str)> {
        let (source, name) = match record.isolation.as_str() {
            "database" => (&self.database_name, &record.database_name),
            "schema" => (&self.schema_name, &record.schema_name),
            _ => return None,
        };
        (!name.is_empty()).then_some((source, name.as_str()))
    }

    fn width(&self) -> usize {
        1 + self
            .sources()
            .iter()
            .filter(|s| matches!(s, Source::Column(_)))
            .count()
    }
}

fn missing_registry(table: &str) -> Error {
    Error::InvalidArgument(format!(
        "The tenant registry table '{table}' does not exist in the master database. \
         Run 'python manage.py migrate' first."
    ))
}

/// Find one tenant, with its namesakes. Absent means `TenantNotFound` ("Tenant 'x' does not exist.", then how to create it).
pub fn lookup(
    master: &ConnectionParams,
    spec: &RegistrySpec,
    tenant_id: &str,
) -> Result<TenantRecord, Error> {
    let mut record = read(master, spec, &Filter::Id(tenant_id))?
        .pop()
        .ok_or_else(|| Error::TenantNotFound(tenant_id.to_string()))?;
    let Some((source, name)) = spec.location(&record) else {
        return Ok(record);
    };
    let column = match source {
        Source::Column(column) => Some(column.as_str()),
        // A name made from the tenant id is unique as the id is.
        Source::Value(template) if template.contains("{tenant_id}") => return Ok(record),
        Source::Value(_) => None,
    };
    let others = read(
        master,
        spec,
        &Filter::Others {
            tenant_id,
            column,
            value: name,
        },
    )?;
    record.namesakes = others
        .into_iter()
        .filter(|other| {
            spec.location(other) == Some((source, name)) && other.isolation == record.isolation
        })
        .take(MAX_NAMESAKES)
        .collect();
    Ok(record)
}

/// Every tenant, ordered by tenant id (the documented order of all-tenant runs), each with its
/// namesakes.
pub fn list(master: &ConnectionParams, spec: &RegistrySpec) -> Result<Vec<TenantRecord>, Error> {
    let mut records = read(master, spec, &Filter::All)?;
    let mut by_location: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        if let Some((_, name)) = spec.location(record) {
            by_location
                .entry((record.isolation.clone(), name.to_string()))
                .or_default()
                .push(index);
        }
    }
    for indexes in by_location.values().filter(|group| group.len() > 1) {
        for &index in indexes {
            let namesakes = indexes
                .iter()
                .filter(|&&other| other != index)
                .take(MAX_NAMESAKES)
                .map(|&other| records[other].clone())
                .collect();
            records[index].namesakes = namesakes;
        }
    }
    Ok(records)
}

fn read(
    master: &ConnectionParams,
    spec: &RegistrySpec,
    filter: &Filter<'_>,
) -> Result<Vec<TenantRecord>, Error> {
    let select = spec.select()?;
    let id_column = quote_ident(&spec.tenant_id)?;
    let width = spec.width();
    let others_column = match filter {
        Filter::Others {
            column: Some(column),
            ..
        } => Some(quote_ident(column)?),
        _ => None,
    };
    let values: Vec<&str> = match filter {
        Filter::All => vec![],
        Filter::Id(id) => vec![id],
        Filter::Others {
            tenant_id, value, ..
        } => match others_column {
            Some(_) => vec![tenant_id, value],
            None => vec![tenant_id],
        },
    };
    // The filter, `prefix` marking bound values (`?1` for SQLite, `$1` for PostgreSQL).
    let condition = |prefix: &str| match (filter, &others_column) {
        (Filter::All, _) => String::new(),
        (Filter::Id(_), _) => format!("WHERE {id_column} = {prefix}1"),
        (Filter::Others { .. }, Some(column)) => {
            format!("WHERE {id_column} <> {prefix}1 AND CAST({column} AS TEXT) = {prefix}2")
        }
        (Filter::Others { .. }, None) => format!("WHERE {id_column} <> {prefix}1"),
    };
    let limit = match filter {
        Filter::Others { .. } => format!(" LIMIT {}", MAX_NAMESAKES + 1),
        _ => String::new(),
    };
    let sql = |prefix: &str| format!("{select} {} ORDER BY {id_column}{limit}", condition(prefix));
    let Some(rows) = backend::registry::read_rows(master, &spec.table, &sql, &values, width)?
    else {
        return Err(missing_registry(&spec.table));
    };
    Ok(rows.into_iter().map(|values| spec.record(values)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_master(dir: &std::path::Path, ddl: &str) -> ConnectionParams {
        let path = dir.join("master.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(ddl).unwrap();
        ConnectionParams::Sqlite {
            path: path.to_string_lossy().into_owned(),
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tm-tenant-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_the_default_table() {
        let dir = scratch("default");
        let master = sqlite_master(
            &dir,
            "CREATE TABLE tenant_migrate_tenant (tenant_id text, name text, isolation text, \
             database_name text, schema_name text, connection text);
             INSERT INTO tenant_migrate_tenant VALUES ('b', 'B', 'database', 'b_db', '', '{}');
             INSERT INTO tenant_migrate_tenant VALUES ('a', 'A', 'database', 'a_db', '', '{}');",
        );
        let spec = RegistrySpec::default_table();
        let ids: Vec<_> = list(&master, &spec)
            .unwrap()
            .into_iter()
            .map(|r| r.tenant_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(lookup(&master, &spec, "b").unwrap().database_name, "b_db");
        assert!(matches!(
            lookup(&master, &spec, "c"),
            Err(Error::TenantNotFound(id)) if id == "c"
        ));
    }

    #[test]
    fn namesakes_are_the_other_tenants_naming_the_same_database_or_schema() {
        let dir = scratch("namesakes");
        let master = sqlite_master(
            &dir,
            "CREATE TABLE tenant_migrate_tenant (tenant_id text, name text, isolation text, \
             database_name text, schema_name text, connection text);
             INSERT INTO tenant_migrate_tenant VALUES ('a', 'A', 'schema', '', 'shared', '{}');
             INSERT INTO tenant_migrate_tenant VALUES ('b', 'B', 'schema', '', 'shared', '{}');
             INSERT INTO tenant_migrate_tenant VALUES ('c', 'C', 'database', 'shared', '', '{}');
             INSERT INTO tenant_migrate_tenant VALUES ('d', 'D', 'schema', '', 'own', '{}');",
        );
        let spec = RegistrySpec::default_table();
        let ids = |r: &TenantRecord| {
            r.namesakes
                .iter()
                .map(|n| n.tenant_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&lookup(&master, &spec, "a").unwrap()), ["b"]);
        assert!(ids(&lookup(&master, &spec, "c").unwrap()).is_empty());
        assert!(ids(&lookup(&master, &spec, "d").unwrap()).is_empty());
        let all: Vec<_> = list(&master, &spec).unwrap().iter().map(ids).collect();
        assert_eq!(all, [vec!["b"], vec!["a"], vec![], vec![]]);
    }

    #[test]
    fn reads_a_mapped_table_with_values_for_missing_columns() {
        let dir = scratch("mapped");
        let master = sqlite_master(
            &dir,
            "CREATE TABLE \"customers client\" (id integer, schema_name varchar, label text);
             INSERT INTO \"customers client\" VALUES (1, 'acme', NULL);",
        );
        let spec = RegistrySpec::from_json(
            r#"{"table": "customers client", "tenant_id": "schema_name",
                "name": {"column": "label"}, "isolation": {"value": "schema"},
                "database_name": {"value": "{tenant_id}_db"},
                "schema_name": {"column": "schema_name"}, "connection": {"value": "{}"},
                "isolation_values": {"schema": "database"}}"#,
        )
        .unwrap();
        let record = lookup(&master, &spec, "acme").unwrap();
        assert_eq!(
            record,
            TenantRecord {
                tenant_id: "acme".into(),
                name: String::new(),
                isolation: "database".into(),
                database_name: "acme_db".into(),
                schema_name: "acme".into(),
                connection: "{}".into(),
                namesakes: vec![],
            }
        );
    }

    #[test]
    fn identifiers_are_quoted_not_interpolated() {
        let dir = scratch("quoted");
        let master = sqlite_master(
            &dir,
            "CREATE TABLE \"t\"\"x\" (tenant_id text, \"name\"\" FROM t; --\" text);
             INSERT INTO \"t\"\"x\" VALUES ('a', 'A');",
        );
        let mut spec = RegistrySpec::default_table();
        spec.table = "t\"x".into();
        spec.name = Source::Column("name\" FROM t; --".into());
        for other in [
            &mut spec.isolation,
            &mut spec.database_name,
            &mut spec.schema_name,
            &mut spec.connection,
        ] {
            *other = Source::Value(String::new());
        }
        assert_eq!(lookup(&master, &spec, "a").unwrap().name, "A");
    }

    #[test]
    fn a_bad_description_is_an_invalid_argument() {
        assert!(matches!(
            RegistrySpec::from_json(r#"{"table": "t"}"#),
            Err(Error::InvalidArgument(_))
        ));
    }
}
