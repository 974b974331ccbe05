//! The `serve` process: open the store, bind every listener (update endpoints, PowerDNS
//! backend over HTTP, and optionally a unix socket and a line-JSON TCP listener for relays),
//! serve, and shut down cleanly.
//!
//! Listeners are bound (or taken back from systemd's fd store, see `handover.rs`) before
//! anything is spawned, so a bad address fails the start with a clear message instead of a
//! half-running service. SIGTERM and SIGINT stop the update listener first and let its
//! in-flight requests finish (bounded by `shutdown-grace-secs`) while pdns is still answered;
//! then the backend's connections answer what they have read and are handed over, and the
//! process exits 0. SIGHUP reads the configuration and the `[audit]` files again (`reload`).

mod lock;
mod reload;

pub use lock::serving_process;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::abuse::UpdateRateGuard;
use crate::acme::Acme;
use crate::auth::Authenticator;
use crate::backend::{Backend, BackendHttpService, serve_tcp, serve_unix, unix_listener};
use crate::challenges::Challenges;
use crate::config::LiveSections;
use crate::config::{Config, ConfigSource};
use crate::dashboard::Dashboard;
use crate::dyndns::DynDns;
use crate::dyndns::update::Updater;
use crate::handover::{Handover, Inherited};
use crate::intel::{IntelError, IpIntel};
use crate::log::LogFilter;
use crate::net::{AllowList, Networks, ServerOptions, serve_http};
use crate::purge::{Purger, Purging};
use crate::routes::UpdateService;
use crate::served::{IndexLoad, Served};
use crate::store::{Store, StoreError, StoreOptions};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another `serve` runs on the same database (the message names it and its process).
    #[error("{0}")]
    Locked(String),
    /// The database could not be opened or migrated.
    #[error("cannot open database {path}: {source}")]
    Store {
        /// The database file.
        path: String,
        /// Why.
        source: StoreError,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The backend's unix socket could not be bound.
    #[error("cannot listen on unix socket {path}: {source}")]
    BindUnix {
        /// The socket path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file of `[audit]` could not be loaded.
    #[error("{0}")]
    Audit(#[from] IntelError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// What systemd passed (`LISTEN_FDS`, `LISTEN_FDNAMES`) could not be taken.
    #[error("cannot take the sockets systemd passed: {0}")]
    Inherit(std::io::Error),
    /// The database's `-shm` file was deleted or replaced while running: stopped, so that a
    /// restart (systemd's `Restart=on-failure`) opens the database consistently again.
    #[error(
        "stopped: the -shm file of {path} was deleted or replaced while the service ran; \
         restart it (never delete -wal or -shm files of a database in use)"
    )]
    ShmReplaced {
        /// The database file.
        path: String,
    },
}

/// Binds a TCP listener, returning it with the address it got (port 0 picks a free one).
async fn bind_tcp(address: SocketAddr) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let bind_error = |source| DaemonError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// The listener `name` at `address`: the one the previous process left in systemd's store if
/// it is bound there (connects meanwhile waited in its backlog), else a new one, stored.
async fn listen_tcp(
    name: &str,
    address: SocketAddr,
    inherited: &mut Inherited,
    handover: &Handover,
) -> Result<(TcpListener, SocketAddr), DaemonError> {
    if let Some((fd, _)) = inherited.take_listener(name) {
        let listener = std::net::TcpListener::from(fd);
        let same = listener.local_addr().is_ok_and(|local| {
            local.ip() == address.ip() && (address.port() == 0 || local.port() == address.port())
        });
        if same {
            let bind_error = |source| DaemonError::Bind { address, source };
            listener.set_nonblocking(true).map_err(bind_error)?;
            let listener = TcpListener::from_std(listener).map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            return Ok((listener, local));
        }
        tracing::info!(
            listener = name,
            %address,
            "the stored listener is bound elsewhere: binding the configured address"
        );
        handover.remove(&format!("listen-{name}"));
    }
    let (listener, local) = bind_tcp(address).await?;
    handover.store(
        &format!("listen-{name}"),
        std::os::fd::AsFd::as_fd(&listener),
    );
    Ok((listener, local))
}

/// The UDP socket `name` at `address` (the TCP listener of the same service is at `local`,
/// whose port a configured port 0 takes): the previous process's, from systemd's store, if
/// it is bound there (datagrams meanwhile waited in its buffer), else a new one, stored.
fn listen_udp(
    name: &str,
    address: SocketAddr,
    local: SocketAddr,
    inherited: &mut Inherited,
    handover: &Handover,
) -> Result<tokio::net::UdpSocket, DaemonError> {
    let bind_error = |source| DaemonError::Bind { address, source };
    if let Some((fd, _)) = inherited.take_listener(name) {
        let socket = std::net::UdpSocket::from(fd);
        if socket.local_addr().is_ok_and(|bound| bound == local) {
            socket.set_nonblocking(true).map_err(bind_error)?;
            return tokio::net::UdpSocket::from_std(socket).map_err(bind_error);
        }
        handover.remove(&format!("listen-{name}"));
    }
    let socket = std::net::UdpSocket::bind(local).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    handover.store(&format!("listen-{name}"), std::os::fd::AsFd::as_fd(&socket));
    tokio::net::UdpSocket::from_std(socket).map_err(bind_error)
}

/// Runs the service with `config` (read from `source`, which SIGHUP reads again; `log`: the
/// installed log filter) until SIGTERM or SIGINT.
pub async fn run(config: Config, source: ConfigSource, log: LogFilter) -> Result<(), DaemonError> {
    // Before anything is touched: a second `serve` on this database stops here.
    let _serving = match lock::ServeLock::take(&config.store.database) {
        Ok(lock) => Some(lock),
        Err(held @ lock::LockError::Held { .. }) => {
            return Err(DaemonError::Locked(held.to_string()));
        }
        Err(error) => {
            tracing::warn!("{error}; a second serve on this database would not be refused");
            None
        }
    };
    let handover = Arc::new(Handover::from_env().map_err(DaemonError::Inherit)?);
    let mut inherited = Inherited::from_env().map_err(DaemonError::Inherit)?;
    // Sockets handed over by the process before: pdns is waiting on them (or in a listener's
    // backlog), so answer at once (lookups read SQLite while the index loads), and leave out
    // the integrity check, which the file passed at the cold start before (a stop and a start
    // checks it again; a staged restore is checked before it goes into place).
    let warm = inherited.is_restart();
    if handover.is_enabled() {
        let (listeners, connections) = inherited.counts();
        tracing::info!(
            listeners,
            connections,
            "systemd's fd store: sockets of the previous process taken back"
        );
    }
    // A restore staged beside the database goes into place before anything opens it (the
    // staged file was checked; the served index then loads what it holds).
    // A copy that fails its check is put aside and the service goes on with the database as it
    // was: pdns must not go without answers because of a bad copy.
    let restored = match crate::store::backup::apply_staged_restore(&config.store.database) {
        Ok(restored) => restored,
        Err(error) => {
            tracing::error!(%error, "restore refused");
            false
        }
    };
    if restored {
        tracing::warn!(
            database = %config.store.database.display(),
            "restored the database from the staged copy (.restore)"
        );
    }
    let store_options = StoreOptions {
        check_integrity: !warm,
        keep_idle: true,
        ..StoreOptions::from(&config.store)
    };
    let path = config.store.database.clone();
    let index_load = if warm {
        IndexLoad::Background
    } else {
        IndexLoad::Now
    };
    let store = tokio::task::spawn_blocking(move || {
        Store::open(&path, &store_options).and_then(|store| Served::open_loading(store, index_load))
    })
    .await
    .map_err(|error| StoreError::Task(error.to_string()))
    .and_then(|result| result)
    .map_err(|source| DaemonError::Store {
        path: config.store.database.display().to_string(),
        source,
    })?;
    let listeners = &config.listeners;
    // Read here, before anything is served: there is nothing for the reads to hold up.
    let (intel, reloader) = IpIntel::load(&config.audit)?;

    // Bind everything before spawning anything: a bad address fails the start as a whole.
    let inherit = &mut inherited;
    let (listener, local) = listen_tcp("updates", listeners.listen, inherit, &handover).await?;
    let (backend_listener, backend_local) =
        listen_tcp("backend-http", listeners.backend_listen, inherit, &handover).await?;
    let tcp_listener = match listeners.backend_tcp_listen {
        Some(address) => Some(listen_tcp("backend-tcp", address, inherit, &handover).await?),
        None => None,
    };
    let metrics_listener = match listeners.metrics_listen {
        Some(address) => Some(listen_tcp("metrics", address, inherit, &handover).await?),
        None => None,
    };
    let dns_listener = match listeners.update_dns_listen {
        Some(address) => {
            let (tcp, local) = listen_tcp("dns-update-tcp", address, inherit, &handover).await?;
            let udp = listen_udp("dns-update-udp", address, local, inherit, &handover)?;
            Some((crate::rfc2136::DnsListener { udp, tcp }, local))
        }
        None => None,
    };
    let unix_listener = match &listeners.backend_socket {
        Some(path) => Some(
            unix_listener(path, inherit.take_listener("backend-unix"), &handover).map_err(
                |source| DaemonError::BindUnix {
                    path: path.display().to_string(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let http_connections = inherited.take_connections("http");
    let tcp_connections = if tcp_listener.is_some() {
        inherited.take_connections("tcp")
    } else {
        Vec::new()
    };
    let unix_connections = if unix_listener.is_some() {
        inherited.take_connections("unix")
    } else {
        Vec::new()
    };
    inherited.finish(&handover);
    let signal = |kind| tokio::signal::unix::signal(kind).map_err(DaemonError::Signal);
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    // Installed before serving: SIGHUP's default action would end the process.
    let hangups = signal(tokio::signal::unix::SignalKind::hangup())?;

    // Flags and login blocks live in memory: a host flagged or a login blocked before this
    // start is not any more, and the store says so (`domain list`, `user blocked`). A write: on a
    // restart it would wait for the index loading in the background, so it runs beside the
    // serving there; on a cold start it is done before anything is served.
    let lifting = store.clone();
    let lift = async move {
        match lifting.lift_limits_of_previous_run().await {
            Ok(0) => {}
            Ok(lifted) => tracing::info!(lifted, "abuse flags of the previous run lifted"),
            Err(error) => {
                tracing::warn!(%error, "could not lift the abuse flags and login blocks of the previous run");
            }
        }
    };
    if warm {
        tokio::spawn(lift);
    } else {
        lift.await;
    }
    // Names that break one-name-one-owner (made before the rule) are named once per start,
    // beside the serving: a read of every domain, which no answer waits for.
    let checking = store.clone();
    tokio::task::spawn_blocking(move || log_ownership_conflicts(&checking));
    let backend = Backend::new(store.clone());
    let seen_store = store.clone();
    let dashboard_store = store.clone();
    let authenticator = Authenticator::new(store.clone(), &config.limits);
    let purging = Purging::default();
    let rate_guard = Arc::new(UpdateRateGuard::new(crate::abuse::pace_rules(
        &config.limits,
    )));
    let challenges = Challenges::new(store.clone(), Arc::clone(&rate_guard), purging.clone());
    let sections = LiveSections::new(&config);
    if config.transfers.enabled() {
        store.keep_zone_history(crate::served::history::HistoryLimits {
            age: config.transfers.history,
            records: config.transfers.history_records,
        });
    }
    let notifier = config.transfers.enabled().then(|| store.clone());
    let transfers_section = sections.transfers.clone();
    let dns_updates = crate::rfc2136::DnsUpdates::new(
        store.clone(),
        Arc::clone(&rate_guard),
        purging.clone(),
        intel.clone(),
        &sections,
    );
    let updater = Updater::new(store, authenticator.clone(), rate_guard)
        .with_intel(intel)
        .with_purging(purging.clone());
    let purger = Purger::new(&config.pdns.api)
        .map(|purger| purger.after_answers(Arc::clone(backend.inflight())));
    if let Some(purger) = purger {
        tracing::info!(
            front_ends = config.pdns.api.len(),
            "purging pdns caches after changes"
        );
        if restored {
            // Everything may have changed: pdns's whole caches go ("" is the root).
            let flushing = purger.clone();
            tokio::spawn(async move { flushing.purge(vec![String::new()]).await });
        }
        purging.set(Some((purger, config.pdns.purge_wait)));
    }
    let service = UpdateService::new(
        DynDns::new(updater.clone(), challenges.clone(), &sections),
        Acme::new(authenticator.clone(), challenges.clone(), &sections),
        config
            .dashboard
            .enabled
            .then(|| Dashboard::new(dashboard_store, authenticator.clone(), &sections)),
        &sections,
    );
    let trusted = Networks::new(config.updates.trusted_proxies.clone());
    let server_options = ServerOptions::for_updates(listeners, trusted.clone());
    let (stop, stopped) = watch::channel(false);
    let (broken, store_broken) = tokio::sync::oneshot::channel();
    let flusher = tokio::spawn(flush_seen_until_stopped(
        seen_store.clone(),
        stopped.clone(),
        broken,
    ));
    // One reference count per request, not a clone of every part of the service.
    let service = Arc::new(service);
    let backend_allowed = Arc::new(AllowList::new(listeners.backend_allowed(), "backend"));
    let live = reload::Live {
        source,
        running: config.clone(),
        log,
        sections,
        updater,
        purging,
        trusted,
        backend_allowed: Arc::clone(&backend_allowed),
        audit: Arc::new(std::sync::Mutex::new(reloader)),
        inflight: Arc::clone(backend.inflight()),
    };
    let reloading = tokio::spawn(live.run(hangups, stopped.clone()));
    let expiring = tokio::spawn(housekeeping_until_stopped(
        challenges,
        authenticator,
        stopped.clone(),
    ));
    let handler = move |request, peer| {
        let service = Arc::clone(&service);
        async move { service.handle(request, peer).await }
    };
    // The backend's listeners are spawned first (pdns may be waiting on handed-over
    // connections), and stop only at the handover, after the update listener has drained.
    let mut backend_servers = Vec::new();
    let mut servers = vec![tokio::spawn(serve_http(
        listener,
        server_options.clone(),
        handler,
        stopped.clone(),
        Vec::new(),
    ))];
    tracing::info!(database = %config.store.database.display(), "listening on http={local}");
    if let Some((dns_listener, dns_local)) = dns_listener {
        let options = crate::rfc2136::ListenOptions {
            pace: listeners.update_dns_pace,
            max_connections: listeners.max_connections,
            max_connections_per_client: listeners.max_connections_per_client,
            read_timeout: listeners.header_read_timeout,
        };
        servers.push(tokio::spawn(crate::rfc2136::serve(
            dns_listener,
            dns_updates,
            options,
            stopped.clone(),
        )));
        tracing::info!("listening on rfc2136=udp+tcp://{dns_local}");
        if let Some(served) = notifier {
            let notifier = crate::rfc2136::Notifier::new(served, transfers_section, dns_local.ip());
            servers.push(tokio::spawn(crate::rfc2136::notify_until_stopped(
                notifier,
                stopped.clone(),
            )));
        }
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }

    let backend_http = BackendHttpService::new(backend.for_connector("http"));
    let backend_handler = move |request, _peer| {
        let service = backend_http.clone();
        async move { service.handle(request).await }
    };
    let server_options_for_metrics = server_options.clone();
    // pdns reuses its connections and must never find one closed under it (see net.rs): no
    // idle limit once a connection has spoken, keepalive probes instead.
    let backend_options = ServerOptions {
        header_read_timeout: None,
        first_byte_timeout: Some(listeners.header_read_timeout),
        allow_from: Some(Arc::clone(&backend_allowed)),
        tcp_keepalive: true,
        per_client: None,
        name: "backend",
        handover: Some(Arc::clone(&handover)),
        ..server_options
    };
    let grace = listeners.shutdown_grace;
    backend_servers.push(tokio::spawn(serve_http(
        backend_listener,
        backend_options,
        backend_handler,
        handover.subscribe(),
        http_connections,
    )));
    tracing::info!("listening on backend=http://{backend_local}/dns");
    if let Some((tcp_listener, tcp_local)) = tcp_listener {
        backend_servers.push(tokio::spawn(serve_tcp(
            tcp_listener,
            backend_allowed,
            backend.for_connector("tcp"),
            listeners.header_read_timeout,
            Arc::clone(&handover),
            tcp_connections,
            grace,
        )));
        tracing::info!("listening on backend=tcp://{tcp_local}");
    }
    if let (Some(unix_listener), Some(path)) = (unix_listener, &listeners.backend_socket) {
        backend_servers.push(tokio::spawn(serve_unix(
            unix_listener,
            path.clone(),
            backend.for_connector("unix"),
            listeners.header_read_timeout,
            Arc::clone(&handover),
            unix_connections,
            grace,
        )));
        tracing::info!("listening on unix={}", path.display());
    }
    if let Some((metrics_listener, metrics_local)) = metrics_listener {
        let running: Vec<_> = servers
            .iter()
            .chain(&backend_servers)
            .map(tokio::task::JoinHandle::abort_handle)
            .collect();
        let ready_store = seen_store.clone();
        let metrics_handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
            let running = running.clone();
            let store = ready_store.clone();
            async move { crate::http::status::answer(&request, || readiness(store, running)).await }
        };
        let metrics_options = ServerOptions {
            allow_from: None,
            per_client: None,
            name: "metrics",
            ..server_options_for_metrics
        };
        servers.push(tokio::spawn(serve_http(
            metrics_listener,
            metrics_options,
            metrics_handler,
            stopped,
            Vec::new(),
        )));
        tracing::info!("listening on metrics=http://{metrics_local}/metrics");
    }

    // Everything is bound and spawned: tell systemd (Type=notify), and feed its watchdog.
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|period| {
        tracing::info!(?period, "systemd watchdog on: pinging at half its period");
        tokio::spawn(feed_watchdog(period / 2, seen_store.clone()))
    });

    let mut outcome = Ok(());
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        Ok(()) = store_broken => {
            tracing::error!("the database's -shm file was replaced: shutting down to be restarted");
            outcome = Err(DaemonError::ShmReplaced {
                path: config.store.database.display().to_string(),
            });
        }
    }
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    // How long each step of the stop takes, in the "stopped" line: pdns waits for its backend
    // through all of them until the next process answers.
    let stopping = std::time::Instant::now();
    let _ = stop.send(true);
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    for server in servers {
        if let Err(error) = server.await {
            tracing::error!(%error, "server task failed");
        }
    }
    if let Err(error) = reloading.await {
        tracing::error!(%error, "reload task failed");
    }
    if let Err(error) = expiring.await {
        tracing::error!(%error, "ACME challenge expiry task failed");
    }
    if let Err(error) = flusher.await {
        tracing::error!(%error, "last-seen flush task failed");
    }
    let drained_ms = stopping.elapsed().as_millis();
    // The update servers have answered their last requests: write what they noted.
    if let Err(error) = seen_store.flush_seen().await {
        tracing::warn!(%error, "could not write last-seen times at shutdown");
    }
    // Only now the backend: pdns was answered while the updates drained. Under systemd its
    // connections now stop reading and stay open in the fd store for the next process.
    let flushed_ms = stopping.elapsed().as_millis();
    handover.begin();
    for server in backend_servers {
        if let Err(error) = server.await {
            tracing::error!(%error, "backend server task failed");
        }
    }
    let backend_ms = stopping.elapsed().as_millis();
    // Every connection stored so far reaches systemd before the process ends.
    tokio::task::block_in_place(|| handover.finish());
    tracing::info!(
        handed_over = handover.is_enabled(),
        drained_ms,
        flushed_ms,
        backend_ms,
        total_ms = stopping.elapsed().as_millis(),
        "stopped"
    );
    outcome
}

/// Logs each held name that breaks the one-name-one-owner rule, and why: its ACME values are
/// refused until an admin removes it or the names it collides with.
fn log_ownership_conflicts(store: &Served) {
    match store.ownership_conflicts() {
        Ok(conflicts) => {
            for conflict in &conflicts {
                tracing::warn!(
                    name = %conflict.name,
                    %conflict,
                    "a name breaks one name, one owner: its ACME values are refused until an \
                     admin resolves it (`certadns-ddns domain remove` it or the names it collides with)"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "could not check the names' owners"),
    }
}

/// What keeps the service from being ready, one line per part; empty when ready: the store
/// must take a write, every listener task must run, the served index must be loaded.
async fn readiness(store: Served, running: Vec<tokio::task::AbortHandle>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(error) = store.check_writable().await {
        problems.push(format!("store: cannot write: {error}"));
    }
    let stopped = running.iter().filter(|task| task.is_finished()).count();
    if stopped > 0 {
        problems.push(format!("listeners: {stopped} of {} stopped", running.len()));
    }
    if !store.has_index() {
        problems.push("index: not loaded (lookups read SQLite)".to_string());
    }
    problems
}

/// Sends `states` to systemd when it started the process with `Type=notify` (`NOTIFY_SOCKET`
/// set); a failure is logged, never fatal.
fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog every `interval` while the store answers a read. A process whose
/// runtime is wedged, or whose database stopped answering, stops pinging, and systemd
/// restarts it (`WatchdogSec=` with `Restart=on-failure`).
async fn feed_watchdog(interval: Duration, store: Served) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.zones() {
            Ok(_) => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            Err(error) => tracing::warn!(%error, "store unreadable: not pinging the watchdog"),
        }
    }
}

/// How often expired ACME challenge values are looked for (a read; a write only when some
/// expired): a value is served at most this much past its lifetime.
const CHALLENGE_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

/// How often revoked API keys past their retention are looked for (a read; a write only when
/// there are some).
const KEY_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How often login blocks that started are noted and admins' requests to lift one are read
/// (a read of a few rows).
const LOGIN_BLOCK_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Removes expired ACME challenge values every [`CHALLENGE_EXPIRY_INTERVAL`], revoked API
/// keys past their retention every [`KEY_PRUNE_INTERVAL`] (and at start), and notes and
/// lifts login blocks every [`LOGIN_BLOCK_SYNC_INTERVAL`], until the stop.
async fn housekeeping_until_stopped(
    challenges: Challenges,
    authenticator: Authenticator,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = |period| {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    };
    let mut ticks = interval(CHALLENGE_EXPIRY_INTERVAL);
    let mut prunes = interval(KEY_PRUNE_INTERVAL);
    let mut blocks = interval(LOGIN_BLOCK_SYNC_INTERVAL);
    loop {
        tokio::select! {
            _ = ticks.tick() => challenges.expire().await,
            _ = prunes.tick() => authenticator.prune_revoked_keys().await,
            _ = blocks.tick() => authenticator.sync_login_blocks().await,
            () = crate::net::stop_requested(&mut stopped) => return,
        }
    }
}

/// How often the "last seen" times of unchanged updates reach the database.
const SEEN_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Flushes the "last seen" write-behind every [`SEEN_FLUSH_INTERVAL`] until the stop, and
/// tells `broken` if the store's `-shm` file is found replaced (see [`Served::shm_replaced`]).
async fn flush_seen_until_stopped(
    store: Served,
    mut stopped: watch::Receiver<bool>,
    broken: tokio::sync::oneshot::Sender<()>,
) {
    let mut ticks = tokio::time::interval(SEEN_FLUSH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut broken = Some(broken);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = crate::net::stop_requested(&mut stopped) => return,
        }
        if let Err(error) = store.flush_seen().await {
            tracing::warn!(%error, "could not write last-seen times; will retry");
        }
        if store.shm_replaced() {
            if let Some(broken) = broken.take() {
                let _ = broken.send(());
            }
        }
    }
}
