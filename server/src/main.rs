//! `gridlink-server`: the district server and its operator commands.
//!
//! `serve` runs the sync server over a data directory; `demo` runs it over a data directory
//! pre-loaded with the fixture district; `user`, `enroll-code` and `revoke-device` manage
//! identity in the same store (stop the server first or run them beside it: SQLite's locking
//! makes either safe).

#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use gridlink_core::case::Role;
use gridlink_core::sync::scope::ScopeKey;
use gridlink_fixtures::{District, Scale};
use gridlink_server::blobs::BlobStore;
use gridlink_server::store::{PgStore, ServerStore, SqliteStore, User};
use gridlink_server::{AppState, ServerConfig, demo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// gridlink district server (网格化社会治理 同步服务器).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DataDir {
    /// Data directory (holds gridlink.sqlite, unless --database names PostgreSQL, and the
    /// photos).
    #[arg(long, env = "GRIDLINK_DATA")]
    data: PathBuf,
    /// The district master on PostgreSQL instead of SQLite: a connection string
    /// (`postgres://user:password@host:5432/gridlink`, or `host=/run/postgresql dbname=gridlink`).
    /// Several server nodes may share one database.
    #[arg(long, env = "GRIDLINK_DATABASE")]
    database: Option<String>,
    /// Photos in S3-compatible object storage instead of DATA/blobs: `s3://bucket[/prefix]`,
    /// with AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint) from the environment. Several nodes
    /// share one bucket.
    #[arg(long, env = "GRIDLINK_BLOBS")]
    blobs: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GRIDLINK_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Documents kept loaded in memory.
    #[arg(long, env = "GRIDLINK_CACHE_DOCS", default_value_t = 4096)]
    cache_docs: usize,
    /// Largest request body, MiB.
    #[arg(long, env = "GRIDLINK_MAX_BODY_MB", default_value_t = 32)]
    max_body_mb: usize,
    /// Key the per-address rate limits by `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long, env = "GRIDLINK_TRUST_FORWARDED")]
    trust_forwarded: bool,
    /// Escalate overdue grid and village cases automatically every N minutes (0: off).
    #[arg(long, env = "GRIDLINK_AUTO_ESCALATE_MINUTES", default_value_t = 0)]
    auto_escalate_minutes: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync server.
    Serve {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Run the server over a data directory pre-loaded with the fixture district, and print
    /// enrollment codes for demo devices.
    Demo {
        /// Data directory; a fresh one under the system temp directory if not given.
        #[arg(long, env = "GRIDLINK_DATA")]
        data: Option<PathBuf>,
        /// Cases to create in the demo history.
        #[arg(long, default_value_t = 400)]
        cases: usize,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Manage users and their grants.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create a one-time enrollment code for a user (printed once).
    EnrollCode {
        #[command(flatten)]
        data: DataDir,
        /// The user.
        #[arg(long)]
        user: String,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = 72)]
        hours: i64,
    },
    /// Issue an Open311 API key for an outside system (printed once).
    ApiKey {
        #[command(flatten)]
        data: DataDir,
        /// Who the key is for, e.g. "12345 市民热线".
        #[arg(long)]
        name: String,
        /// What it may read and write: district or town:ID.
        #[arg(long, default_value = "district")]
        scope: String,
    },
    /// The hosts Open311 `media_url` photos may be fetched from (`host` or `host:port`,
    /// comma-separated; `--hosts ""` refuses all, the default). Prints the list.
    Open311MediaHosts {
        #[command(flatten)]
        data: DataDir,
        /// The new list; without it, the current one is printed.
        #[arg(long)]
        hosts: Option<String>,
    },
    /// Set an operator's password for the command centre's web pages (read from the first
    /// line of standard input; at least 10 characters). Signs them out everywhere.
    WebPassword {
        #[command(flatten)]
        data: DataDir,
        /// The operator's user id.
        #[arg(long)]
        user: String,
    },
    /// Revoke a device: its token stops working at once.
    RevokeDevice {
        #[command(flatten)]
        data: DataDir,
        /// The device id.
        #[arg(long)]
        device: String,
    },
    /// Write a consistent backup of an installation to one file, while the server runs
    /// (documents, rows, photos; a SQLite file that standard tools read).
    Backup {
        #[command(flatten)]
        data: DataDir,
        /// The backup file to write (replaced only once the new one is whole).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a data directory that holds no database. The restored server
    /// has a new history id: phones that synced after the backup push again what it lost.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// After the database was restored with outside tools (PostgreSQL's `pg_restore`,
    /// `pg_basebackup`, pgBackRest): give the installation a new history id, so phones that
    /// synced after the backup push again what the restored copy lost. Run it before the nodes
    /// start.
    Restored {
        #[command(flatten)]
        data: DataDir,
    },
    /// Move a SQLite installation's district master to an empty PostgreSQL database, whole
    /// (documents, change logs, directory, statistics, settings and the history id: phones see
    /// no difference). Stop the SQLite server first. The photos stay in the data directory.
    MoveToPostgres {
        #[command(flatten)]
        data: DataDir,
        /// The PostgreSQL database to fill (created, empty, or holding only gridlink's empty
        /// schema).
        #[arg(long)]
        to: String,
    },
    /// Show or change the district's rules: time limits counted in working days with the
    /// holiday calendar, the warning share, and who may verify and close their own work. The
    /// deadlines of open cases are counted again at once; restart the nodes to apply the
    /// rules to new work.
    Rules {
        #[command(flatten)]
        data: DataDir,
        /// Load the State Council's holiday notice: a text file with one `DATE[..DATE] 休|班
        /// [name]` per line (休 days off, 班 make-up working days); added to what is loaded.
        #[arg(long)]
        holidays: Option<PathBuf>,
        /// Forget the holidays loaded before (with --holidays: replace them).
        #[arg(long)]
        clear_holidays: bool,
        /// A case is in warning (预警) once this share of its time is spent, percent.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
        warn_percent: Option<u8>,
        /// Count limits of a day or more in working days (true) or in calendar days (false).
        #[arg(long)]
        working_days: Option<bool>,
        /// Let the person who resolved a case verify it too (separation of duties off).
        #[arg(long)]
        resolver_may_verify: Option<bool>,
        /// Let the person who resolved a case close it too.
        #[arg(long)]
        resolver_may_close: Option<bool>,
    },
    /// Import the fixture district's grids and users (with their grants) into a data directory.
    ImportFixtures {
        #[command(flatten)]
        data: DataDir,
        /// Cases to create as history.
        #[arg(long, default_value_t = 0)]
        cases: usize,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        #[command(flatten)]
        data: DataDir,
        /// User id.
        #[arg(long)]
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Role: grid_inspector, professional_inspector, grid_chief, mediator,
        /// department_handler, law_enforcement, operator, citizen.
        #[arg(long)]
        role: String,
    },
    /// Grant a scope: district, town:ID, village:ID, grid:ID, dept:CODE, enf:CODE.
    Grant {
        #[command(flatten)]
        data: DataDir,
        /// User id.
        #[arg(long)]
        id: String,
        /// The scope.
        #[arg(long)]
        scope: String,
    },
    /// Withdraw a scope; the user's devices delete its documents at their next sync.
    RevokeGrant {
        #[command(flatten)]
        data: DataDir,
        /// User id.
        #[arg(long)]
        id: String,
        /// The scope.
        #[arg(long)]
        scope: String,
    },
}

fn operator() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// The blob store `--blobs` names (the data directory's `blobs/` without it).
fn open_blobs(data: &DataDir) -> Result<Arc<BlobStore>> {
    Ok(match &data.blobs {
        Some(url) => {
            BlobStore::open_s3(url).context("opening the object storage named by --blobs")?
        }
        None => BlobStore::open(&data.data.join("blobs"))
            .with_context(|| format!("opening {}", data.data.join("blobs").display()))?,
    })
}

fn open(data: &DataDir) -> Result<Arc<dyn ServerStore>> {
    Ok(match &data.database {
        Some(url) => Arc::new(
            PgStore::open(url).context("opening the PostgreSQL database named by --database")?,
        ),
        None => Arc::new(
            SqliteStore::open(&data.data)
                .with_context(|| format!("opening {}", data.data.display()))?,
        ),
    })
}

/// `backup` and `restore` copy the SQLite installation; PostgreSQL is backed up with its own
/// tools (README, "Running several nodes"; ADR 0014).
fn not_on_postgres(data: &DataDir, command: &str) -> Result<()> {
    if data.blobs.is_some() {
        bail!(
            "`{command}` 只用于数据目录中的照片；对象存储请用其自身的版本与复制功能（见 README）/ `{command}` copies photos kept in the data directory; protect a bucket with the object store's own versioning and replication (see the README)"
        );
    }
    if data.database.is_some() {
        bail!(
            "`{command}` 只用于 SQLite 数据目录；PostgreSQL 请用 pg_basebackup / pg_dump（见 README）/ `{command}` works on a SQLite data directory; back PostgreSQL up with pg_basebackup or pg_dump (see the README)"
        );
    }
    Ok(())
}

fn state(data: &DataDir, serve: &ServeArgs) -> Result<AppState> {
    let config = ServerConfig {
        cache_docs: serve.cache_docs,
        max_body_bytes: serve.max_body_mb << 20,
        rate_limits: gridlink_server::limits::RateLimits {
            trust_forwarded: serve.trust_forwarded,
            ..Default::default()
        },
        auto_escalate_minutes: serve.auto_escalate_minutes,
        ..ServerConfig::default()
    };
    Ok(AppState::with_blobs(
        open(data)?,
        open_blobs(data)?,
        config,
    )?)
}

/// The state an operator command works on (default limits; nothing is served).
/// The district's rules, for an operator.
fn print_rules(rules: &gridlink_server::store::DistrictRules) {
    let yes = |b: bool| if b { "是 / yes" } else { "否 / no" };
    let limits = &rules.limits;
    println!("按工作日计时 / working days: {}", yes(limits.working_days));
    println!("预警比例 / warning at: {}%", limits.warn_percent);
    let days: Vec<_> = limits.calendar.exceptions().collect();
    let off = days
        .iter()
        .filter(|(_, k)| *k == gridlink_core::case::DayKind::Holiday)
        .count();
    println!(
        "节假日 / holidays: {off} 天 days off, {} 天调休上班 make-up working days{}",
        days.len() - off,
        match (days.first(), days.last()) {
            (Some((first, _)), Some((last, _))) => format!(" ({first} – {last})"),
            _ => String::new(),
        }
    );
    println!(
        "处置人可验收 / resolver may verify: {}\n处置人可结案 / resolver may close: {}",
        yes(rules.duties.resolver_may_verify),
        yes(rules.duties.resolver_may_close)
    );
}

fn admin_state(data: &DataDir) -> Result<AppState> {
    Ok(AppState::with_blobs(
        open(data)?,
        open_blobs(data)?,
        ServerConfig::default(),
    )?)
}

fn main() -> Result<()> {
    // Logs go to stderr; stdout carries what the commands print for people (codes, URLs).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRIDLINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { data, serve } => {
            let state = state(&data, &serve)?;
            run(state, serve.addr, None)
        }
        Command::Demo { data, cases, serve } => {
            let dir = match data {
                Some(dir) => dir,
                None => std::env::temp_dir().join(format!("gridlink-demo-{}", std::process::id())),
            };
            // The district counts working days with the 2026 holiday notice.
            {
                std::fs::create_dir_all(&dir)?;
                let store = SqliteStore::open(&dir)?;
                if gridlink_server::store::SettingsAudit::setting(
                    &store,
                    gridlink_server::store::RULES_SETTING,
                )?
                .is_none()
                {
                    let mut rules = gridlink_server::store::DistrictRules::default();
                    rules.limits.calendar =
                        gridlink_core::case::WorkCalendar::parse(gridlink_fixtures::HOLIDAYS_2026)?;
                    gridlink_server::store::set_rules(&store, &rules, "demo")?;
                }
            }
            let state = state(
                &DataDir {
                    data: dir.clone(),
                    database: None,
                    blobs: None,
                },
                &serve,
            )?;
            let district = District::generate(Scale::Small);
            let fresh = state.store().doc_count()? == 0;
            let imported = demo::import_district(&state, &district)?;
            let now = gridlink_server::now_ms();
            let (created, work) = if fresh {
                (
                    demo::seed_cases(&state, &district, cases, 2026, now)?,
                    demo::seed_field_work(&state, &district, 3, 12, 2026, now)?,
                )
            } else {
                (0, demo::FieldWork::default())
            };
            let mut banner = format!(
                "gridlink 演示 / demo — {}\n  数据目录 / data directory: {}\n  {} 个网格, 新增 {} 名用户, 新建 {} 个案件 / grids, users added, cases created\n  {} 个标准地址, {} 次巡查, {} 份调解卷宗 / standard addresses, patrol visits, mediation files\n  考核与 721 统计 / scores and the 721 split: GET /v1/scores（指挥中心 / operators）\n\n  演示设备登记码（一次有效，72 小时）/ demo enrollment codes (one-time, 72 h):\n",
                district.name,
                dir.display(),
                imported.grids,
                imported.users,
                created,
                work.addresses,
                work.visits,
                work.mediation_files
            );
            for user in [
                "insp-0001",
                "insp-0002",
                "chief-0001",
                "med-0001",
                "dept-env-01",
                "op-01",
            ] {
                if let Some(u) = state.store().user(user)? {
                    let code = demo::enroll_code(&state, user, 72, "demo")?;
                    banner.push_str(&format!(
                        "    {:<12} {:<8} {:<22} {code}\n",
                        u.id,
                        u.name,
                        u.role.label_zh()
                    ));
                }
            }
            banner.push_str(
                "\n  指挥中心网页登录（网址见下）/ command centre sign-in (address below):\n",
            );
            for login in demo::web_logins(&state, &district, "demo")? {
                banner.push_str(&format!(
                    "    web {:<12} {:<18} {}\n",
                    login.user, login.scope, login.password
                ));
            }
            banner.push_str(
                "\n  市民随手拍无需登记码：App 内匿名注册 / citizens need no code: they register anonymously in the app (POST /v1/citizen/register)\n",
            );
            run(state, serve.addr, Some(banner))
        }
        Command::User { command } => user(command),
        Command::EnrollCode { data, user, hours } => {
            let state = admin_state(&data)?;
            if state.store().user(&user)?.is_none() {
                bail!("没有用户 {user} / no user {user}");
            }
            println!("{}", demo::enroll_code(&state, &user, hours, &operator())?);
            Ok(())
        }
        Command::ApiKey { data, name, scope } => {
            let state = admin_state(&data)?;
            println!(
                "{}",
                gridlink_server::open311::issue_key(&state, &name, &scope, &operator())?
            );
            Ok(())
        }
        Command::Open311MediaHosts { data, hosts } => {
            let state = admin_state(&data)?;
            let list = match hosts {
                Some(hosts) => gridlink_server::media::set_allowed_hosts(
                    &state,
                    &hosts.split(',').map(str::to_owned).collect::<Vec<_>>(),
                )?,
                None => gridlink_server::media::allowed_hosts(&state)?,
            };
            if list.is_empty() {
                println!("不接受任何 media_url / no media_url is accepted");
            } else {
                println!("{}", list.join("\n"));
            }
            Ok(())
        }
        Command::WebPassword { data, user } => {
            let state = admin_state(&data)?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            gridlink_server::web::set_password(&state, &user, password, &operator())?;
            println!("已设置 {user} 的网页登录密码 / web password set for {user}");
            Ok(())
        }
        Command::RevokeDevice { data, device } => {
            if open(&data)?.revoke_device(&device, &operator())? {
                println!("设备 {device} 已停用 / device {device} revoked");
                Ok(())
            } else {
                bail!("没有在用的设备 {device} / no active device {device}")
            }
        }
        Command::Backup { data, to } => {
            not_on_postgres(&data, "backup")?;
            let started = std::time::Instant::now();
            let copied = gridlink_server::store::backup::backup(&data.data, &to)?;
            println!(
                "已备份 {} 个文档、{} 张照片到 {}（{} 字节，{:.1} 秒）/ backed up {} documents and {} photos to {} ({} bytes, {:.1} s)",
                copied.docs,
                copied.blobs,
                to.display(),
                copied.bytes,
                started.elapsed().as_secs_f64(),
                copied.docs,
                copied.blobs,
                to.display(),
                copied.bytes,
                started.elapsed().as_secs_f64(),
            );
            Ok(())
        }
        Command::Restore { from, data } => {
            not_on_postgres(&data, "restore")?;
            let copied = gridlink_server::store::backup::restore(&from, &data.data)?;
            println!(
                "已恢复 {} 个文档、{} 张照片到 {}；手机下次同步时会补传备份之后的工作 / restored {} documents and {} photos into {}; phones push again what was done after the backup at their next sync",
                copied.docs,
                copied.blobs,
                data.data.display(),
                copied.docs,
                copied.blobs,
                data.data.display(),
            );
            Ok(())
        }
        Command::Rules {
            data,
            holidays,
            clear_holidays,
            warn_percent,
            working_days,
            resolver_may_verify,
            resolver_may_close,
        } => {
            let store = open(&data)?;
            let mut rules = gridlink_server::store::rules(&*store)?;
            let before = rules.clone();
            if clear_holidays {
                rules.limits.calendar = gridlink_core::case::WorkCalendar::default();
            }
            if let Some(file) = &holidays {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("读取 / reading {}", file.display()))?;
                rules
                    .limits
                    .calendar
                    .merge(&text)
                    .with_context(|| format!("{}", file.display()))?;
            }
            if let Some(p) = warn_percent {
                rules.limits.warn_percent = p;
            }
            if let Some(w) = working_days {
                rules.limits.working_days = w;
            }
            if let Some(v) = resolver_may_verify {
                rules.duties.resolver_may_verify = v;
            }
            if let Some(c) = resolver_may_close {
                rules.duties.resolver_may_close = c;
            }
            if rules != before {
                let changed = gridlink_server::store::set_rules(&*store, &rules, &operator())?;
                println!(
                    "已保存；{changed} 个未办结案件的时限已重新计算，请重启各节点 / saved; the deadlines of {changed} open cases were counted again; restart the nodes"
                );
            }
            print_rules(&rules);
            Ok(())
        }
        Command::Restored { data } => {
            let id =
                gridlink_server::store::backup::start_new_history(&*open(&data)?, &operator())?;
            println!(
                "新的历史标识 / new history id: {id}\n  手机下次同步时会重新上传恢复后缺失的内容 / phones push again at their next sync what the restored copy lost"
            );
            Ok(())
        }
        Command::MoveToPostgres { data, to } => {
            let started = std::time::Instant::now();
            let moved = gridlink_server::store::postgres::move_from_sqlite(&data.data, &to)?;
            println!(
                "已迁移 / moved {} rows of {} tables to PostgreSQL in {:.1} s\n  之后用 --database 启动各节点 / now start the nodes with --database",
                moved.rows,
                moved.tables,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::ImportFixtures { data, cases } => {
            let state = admin_state(&data)?;
            let district = District::generate(Scale::Small);
            let imported = demo::import_district(&state, &district)?;
            let created =
                demo::seed_cases(&state, &district, cases, 2026, gridlink_server::now_ms())?;
            println!(
                "{} grids, {} users added, {created} cases",
                imported.grids, imported.users
            );
            Ok(())
        }
    }
}

fn user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            data,
            id,
            name,
            role,
        } => {
            let Some(role) = Role::from_code(&role).filter(|r| *r != Role::System) else {
                bail!("未知角色 {role:?} / unknown role {role:?}");
            };
            open(&data)?.add_user(
                &User {
                    id: id.clone(),
                    name,
                    role,
                },
                &operator(),
            )?;
            println!("已添加用户 {id} / user {id} added");
        }
        UserCommand::Grant { data, id, scope } => {
            let key: ScopeKey = scope.parse()?;
            open(&data)?.grant(&id, &key, &operator())?;
            println!("已授权 {id} {key} / granted");
        }
        UserCommand::RevokeGrant { data, id, scope } => {
            let key: ScopeKey = scope.parse()?;
            if !open(&data)?.revoke_grant(&id, &key, &operator())? {
                bail!("{id} 没有 {key} 的授权 / {id} has no grant {key}");
            }
            println!("已撤销 {id} {key} / grant withdrawn");
        }
    }
    Ok(())
}

fn run(state: AppState, addr: SocketAddr, banner: Option<String>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener =
            gridlink_server::conn::bind(addr).with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        if let Some(banner) = banner {
            println!("{banner}");
        }
        println!("gridlink 服务器已启动 / serving on http://{local}  (Ctrl-C 停止 / to stop)");
        println!("  指挥中心网页 / command centre: http://{local}/web/");
        tracing::info!(%local, "listening");
        gridlink_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped after finishing requests in flight");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
