//! A blocking PostgreSQL connection whose every wait is bounded.
//!
//! The `postgres` crate's blocking client bounds only the TCP connect: a server (or a proxy)
//! that accepts the connection and never answers holds the caller forever in the start-up
//! exchange, and so does a query to a server that stopped answering; Ctrl-C cannot stop either.
//! This is the same client (tokio-postgres, driven on a runtime of its own as the `postgres`
//! crate drives it) with three bounds:
//!
//! - connecting, start-up and authentication included, gives up after the connect timeout;
//! - a bookkeeping query (history, catalog, registry, lock checks) gives up after
//!   `read_timeout`; the statements of a migration have no such bound (they may rightly run for
//!   hours; `--statement-timeout` is the server's bound for them);
//! - every wait gives up when the process is interrupted (`interrupt_all`): connecting at once,
//!   a query `INTERRUPT_GRACE` later, which leaves a cancel request that much time to stop the
//!   statement cleanly first.
//!
//! A connection that gave up waiting is never used again (`is_closed`). TCP keepalives notice a
//! server that died under a long statement within about a minute.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Config, Connection, NoTls, Row, Socket};

use super::interrupted;
use crate::error::DbError;

/// A bookkeeping query that takes longer than this means the server stopped answering.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a wait goes on after an interrupt: time for a cancel request to work.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How often a wait looks at the clock and the interrupt flag.
const SLICE: Duration = Duration::from_millis(50);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Interrupt (or, with `false`, stop interrupting) every wait of this process: a connection
/// being made to a server that never answers, a lock wait, a query.
pub fn interrupt_all(on: bool) {
    INTERRUPTED.store(on, Ordering::SeqCst);
}

/// Why a wait ended without the server's answer.
enum GaveUp {
    TimedOut,
    Interrupted,
}

/// Wait for `future`, driving `connection` (when there is one) meanwhile, for at most `limit`.
fn wait<T, E>(
    runtime: &Runtime,
    mut connection: Option<&mut Connection<Socket, NoTlsStream>>,
    future: impl Future<Output = Result<T, E>>,
    limit: Option<Duration>,
) -> Result<Result<T, E>, GaveUp>
where
    E: From<tokio_postgres::Error>,
{
    let started = Instant::now();
    let mut interrupted_at: Option<Instant> = None;
    let mut future = pin!(future);
    runtime.block_on(async {
        loop {
            let step = poll_fn(|cx| {
                if let Some(connection) = connection.as_deref_mut() {
                    // The request's messages go out and its replies come in as the connection
                    // is polled; notices are dropped. A closed connection fails the request.
                    loop {
                        match connection.poll_message(cx) {
                            Poll::Ready(Some(Ok(_))) => {}
                            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(E::from(e))),
                            Poll::Ready(None) | Poll::Pending => break,
                        }
                    }
                }
                future.as_mut().poll(cx)
            });
            if let Ok(result) = tokio::time::timeout(SLICE, step).await {
                return Ok(result);
            }
            if limit.is_some_and(|limit| started.elapsed() >= limit) {
                return Err(GaveUp::TimedOut);
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                // Connecting has nothing to cancel: stop at once.
                let since = *interrupted_at.get_or_insert_with(Instant::now);
                if connection.is_none() || since.elapsed() >= INTERRUPT_GRACE {
                    return Err(GaveUp::Interrupted);
                }
            }
        }
    })
}

fn runtime() -> Result<Runtime, DbError> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DbError::Connect(format!("cannot start the I/O runtime: {e}")))
}

/// The server's reason for refusing a connection, without the crate's prefix.
fn connect_reason(e: &tokio_postgres::Error) -> String {
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

pub fn pg_err(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError::query(db.message().to_string(), Some(db.code().code().to_string())),
        None => DbError::query(e.to_string(), None),
    }
}

/// The server a connection tries, worded as libpq words it, so a connection failure says
/// where: `server at "db.internal", port 5432`, or for a Unix socket
/// `server on socket "/run/postgresql/.s.PGSQL.5432"`.
pub fn server_text(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Unix(dir)) => {
            format!("server on socket \"{}/.s.PGSQL.{port}\"", dir.display())
        }
        Some(Host::Tcp(host)) => format!("server at \"{host}\", port {port}"),
        None => format!("server at \"localhost\", port {port}"),
    }
}

/// A connection failure, after the server that was tried.
fn connect_failure(server: &str, reason: impl std::fmt::Display) -> DbError {
    DbError::Connect(format!("{server}: {reason}"))
}

pub struct Client {
    runtime: Runtime,
    client: tokio_postgres::Client,
    connection: Connection<Socket, NoTlsStream>,
    /// A wait was given up: the connection's state is unknown, so it is not used again.
    broken: bool,
    /// The bound of bookkeeping queries (`query_typed*`).
    pub read_timeout: Duration,
    /// Named by every connection failure (see `server_text`).
    server: String,
}

impl Client {
    /// Connect, start-up and authentication included, within `timeout`.
    pub fn connect(config: &Config, timeout: Duration) -> Result<Client, DbError> {
        let runtime = runtime()?;
        let connecting = config.connect(NoTls);
        let seconds = timeout.as_secs_f64();
        let server = server_text(config);
        match wait(&runtime, None, connecting, Some(timeout)) {
            Ok(Ok((client, connection))) => Ok(Client {
                runtime,
                client,
                connection,
                broken: false,
                read_timeout: READ_TIMEOUT,
                server,
            }),
            Ok(Err(e)) => Err(connect_failure(&server, connect_reason(&e))),
            Err(GaveUp::TimedOut) => Err(connect_failure(
                &server,
                format!(
                    "the server did not complete the connection within {seconds:.0} s \
                     (connect timeout; it accepted the connection but did not answer)"
                ),
            )),
            Err(GaveUp::Interrupted) => Err(interrupted()),
        }
    }

    /// The server this connection reached (see `server_text`).
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn is_closed(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    pub fn cancel_token(&self) -> CancelToken {
        self.client.cancel_token()
    }

    /// Statements without a bound of ours (a migration's; COMMIT; ROLLBACK): the server's
    /// `statement_timeout`, a cancel request or an interrupt end them.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        let Client {
            runtime,
            client,
            connection,
            broken,
            server,
            ..
        } = self;
        run(
            server,
            runtime,
            connection,
            broken,
            client.batch_execute(sql),
            None,
        )
    }

    pub fn query_typed(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, DbError> {
        let Client {
            runtime,
            client,
            connection,
            broken,
            read_timeout,
            server,
        } = self;
        let limit = Some(*read_timeout);
        run(
            server,
            runtime,
            connection,
            broken,
            client.query_typed(sql, params),
            limit,
        )
    }

    pub fn query_typed_opt(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<Row>, DbError> {
        let mut rows = self.query_typed(sql, params)?;
        if rows.len() > 1 {
            return Err(DbError::query(
                "query returned more than one row".into(),
                None,
            ));
        }
        Ok(rows.pop())
    }

    pub fn query_typed_one(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Row, DbError> {
        self.query_typed_opt(sql, params)?
            .ok_or_else(|| DbError::query("query returned no rows".into(), None))
    }
}

fn run<T>(
    server: &str,
    runtime: &Runtime,
    connection: &mut Connection<Socket, NoTlsStream>,
    broken: &mut bool,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
    limit: Option<Duration>,
) -> Result<T, DbError> {
    if *broken {
        return Err(connect_failure(
            server,
            "the connection was abandoned after the server stopped answering",
        ));
    }
    match wait(runtime, Some(connection), future, limit) {
        Ok(result) => result.map_err(pg_err),
        Err(gave_up) => {
            *broken = true;
            Err(match gave_up {
                GaveUp::TimedOut => connect_failure(
                    server,
                    format!(
                        "the server did not answer within {} s",
                        limit.unwrap_or_default().as_secs()
                    ),
                ),
                GaveUp::Interrupted => interrupted(),
            })
        }
    }
}

/// Ask the server to cancel what `token`'s connection runs, giving up after a few seconds (a
/// server that does not answer cannot be asked anything).
pub fn cancel(token: &CancelToken) {
    let Ok(runtime) = runtime() else {
        return;
    };
    let _ = wait::<(), tokio_postgres::Error>(
        &runtime,
        None,
        token.cancel_query(NoTls),
        Some(INTERRUPT_GRACE),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_failure_names_the_server_as_libpq_does() {
        let mut tcp = Config::new();
        tcp.host("127.0.0.1").port(6543);
        assert_eq!(
            connect_failure(&server_text(&tcp), "Connection refused (os error 111)").to_string(),
            "server at \"127.0.0.1\", port 6543: Connection refused (os error 111)"
        );
        let mut socket = Config::new();
        socket.host("/run/postgresql");
        assert_eq!(
            server_text(&socket),
            "server on socket \"/run/postgresql/.s.PGSQL.5432\""
        );
        assert_eq!(
            server_text(&Config::new()),
            "server at \"localhost\", port 5432"
        );
    }
}
