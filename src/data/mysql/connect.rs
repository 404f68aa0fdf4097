//! Reaching a server: TLS modes, credentials (password, Secrets Manager, IAM token), the
//! connector, and what a refused connection means to the operator.

use super::*;

/// How the TLS connection is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// The chain against the CA, and the certificate against the RDS host name.
    VerifyIdentity,
    /// The chain against the CA only (a tunnel to a name the certificate does not carry).
    VerifyCa,
    /// Encrypted, but any certificate is accepted.
    Required,
    /// Plaintext.
    Disabled,
}

/// How the rows a chunk lacks are written into production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMethod {
    /// `LOAD DATA LOCAL INFILE` fed from memory where the server allows it and every column
    /// type has an exact text form; multi-row INSERT otherwise.
    Auto,
    /// Multi-row prepared INSERT, values in the binary protocol.
    Insert,
    /// `LOAD DATA LOCAL INFILE` only: a server that refuses it is an error.
    LoadData,
}

/// The MySQL protocol's compression (zlib): fewer bytes on a slow link, more CPU on a fast one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    /// On for a server whose round trip, measured when the first session opens, is long
    /// (at least [`SLOW_LINK`]): a VPN, a tunnel, another region. Off on a fast link, where
    /// compressing costs more time than the bytes it saves.
    Auto,
    On,
    Off,
}

/// The round trip from which `--compress auto` compresses.
pub const SLOW_LINK: Duration = Duration::from_millis(2);

/// A password that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the tool proves who it is to MySQL.
#[derive(Clone)]
pub enum Credential {
    Password(Secret),
    /// RDS IAM authentication: a token signed with the AWS credentials, made fresh for every
    /// connection (a token lives 15 minutes, a run can take longer) and sent with the
    /// cleartext plugin, which is why TLS is required for it.
    IamToken(Box<aws_config::SdkConfig>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Password(_) => "Password(***)",
            Credential::IamToken(_) => "IamToken",
        })
    }
}

/// An IAM auth token for `user` at the RDS endpoint (the RDS name, even through a tunnel).
async fn iam_token(config: &aws_config::SdkConfig, endpoint: &Endpoint, user: &str) -> Result<Secret> {
    use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config};
    let mut builder = Config::builder()
        .hostname(&endpoint.host)
        .port(u64::from(endpoint.port))
        .username(user);
    if let Some(region) = config.region() {
        builder = builder.region(region.clone());
    }
    let generator = AuthTokenGenerator::new(
        builder
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot make an IAM auth token: {e}")))?,
    );
    let token = generator.auth_token(config).await.map_err(|e| {
        Error::InvalidInput(format!(
            "cannot make an IAM auth token ({e}): check the AWS credentials and region"
        ))
    })?;
    Ok(Secret::new(token.as_str().to_string()))
}

pub struct MysqlConnector {
    /// `--disable-foreign-key-checks`: for the tool's own production sessions only.
    pub disable_foreign_key_checks: bool,
    pub user: String,
    pub credential: Credential,
    pub tls: TlsMode,
    pub ssl_ca: Option<PathBuf>,
    pub production_override: Option<Endpoint>,
    pub restored_override: Option<Endpoint>,
    pub connect_timeout: Duration,
    pub load_method: LoadMethod,
    pub compress: Compress,
    /// `--compress auto`'s choice per server, made once, when its first session opens.
    pub compress_chosen: std::sync::Mutex<[Option<bool>; 2]>,
}

impl MysqlConnector {
    /// What every session runs first: UTC, strict mode, repeatable read; and, on production
    /// when asked, no foreign key checks (this session only; nothing needs SUPER).
    fn session_setup(&self, side: Side) -> Vec<String> {
        let mut setup = vec![
            "SET SESSION time_zone = '+00:00'".to_string(),
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'".to_string(),
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
        ];
        if side == Side::Production && self.disable_foreign_key_checks {
            setup.push("SET SESSION foreign_key_checks = 0".to_string());
        }
        // One statement text, one round trip: the driver sends each of its init statements on
        // its own and waits for each, and over a 40 ms link four of them added 120 ms to every
        // session opened.
        vec![setup.join("; ")]
    }
    fn ssl_opts(&self, rds_host: &str, dial_host: &str) -> Option<SslOpts> {
        let mut ssl = SslOpts::default();
        if let Some(ca) = &self.ssl_ca {
            ssl = ssl.with_root_certs(vec![ca.clone().into()]);
        }
        match self.tls {
            TlsMode::Disabled => return None,
            TlsMode::VerifyIdentity => {
                if rds_host != dial_host {
                    ssl = ssl.with_danger_tls_hostname_override(Some(rds_host.to_string()));
                }
            }
            TlsMode::VerifyCa => ssl = ssl.with_danger_skip_domain_validation(true),
            TlsMode::Required => {
                ssl = ssl
                    .with_danger_skip_domain_validation(true)
                    .with_danger_accept_invalid_certs(true)
            }
        }
        Some(ssl)
    }
}

#[async_trait]
impl Connector for MysqlConnector {
    async fn connect(&self, side: Side, rds_endpoint: &Endpoint) -> Result<Box<dyn Session>> {
        let slot = match side {
            Side::Production => 0,
            Side::Restored => 1,
        };
        let chosen = self.compress_chosen.lock().unwrap_or_else(|e| e.into_inner())[slot];
        let compress = match (self.compress, chosen) {
            (Compress::On, _) => true,
            (Compress::Off, _) => false,
            (Compress::Auto, Some(c)) => c,
            (Compress::Auto, None) => {
                // The first session measures the link, uncompressed, and is kept if it is fast.
                let mut first = self.open(side, rds_endpoint, false).await?;
                let round_trip = first.round_trip().await?;
                let slow = round_trip >= SLOW_LINK;
                tracing::info!(%side, ?round_trip, compress = slow, "--compress auto");
                self.compress_chosen.lock().unwrap_or_else(|e| e.into_inner())[slot] = Some(slow);
                if !slow {
                    return Ok(Box::new(first));
                }
                true
            }
        };
        Ok(Box::new(self.open(side, rds_endpoint, compress).await?))
    }

    async fn rewind(
        &self,
        production: &Endpoint,
        request: &crate::ports::RewindRequest<'_>,
        check_only: bool,
    ) -> Result<crate::ports::RewindOutcome> {
        use crate::binlog::{reader::BinlogReader, rewind, Position};
        let reader = BinlogReader {
            connector: self,
            endpoint: production.clone(),
        };
        let position = |p: Option<&str>, what: &str| {
            p.map(|b| {
                Position::parse(b).ok_or_else(|| {
                    crate::error::Error::InvalidInput(format!(
                        "the run's {what} `{b}` is not FILE:POS (was the state file edited?)"
                    ))
                })
            })
            .transpose()
        };
        let before = position(request.before, "--before")?;
        let from = position(request.from, "binlog position")?;
        let (table, asof, to) = (request.table, request.asof, request.to);
        if check_only {
            let checked = rewind::check(&reader, table, asof, to, before.as_ref()).await?;
            return Ok(crate::ports::RewindOutcome {
                transactions: checked.scan.txns.len() as u64,
                keys_rewound: 0,
                changes: checked
                    .scan
                    .txns
                    .iter()
                    .map(|t| t.deleted + t.updated + t.inserted)
                    .sum(),
                rows: 0,
                end: checked.scan.end.map(|p| p.to_string()).unwrap_or_default(),
                first_at: checked.scan.first_at.map(|p| p.to_string()),
                changed_keys_only: request.changed_keys_only,
            });
        }
        rewind::rewind(&reader, request, before.as_ref(), from).await
    }
}

/// The largest packet a binlog stream may bring: a server sends one event of up to
/// `slave_max_allowed_packet` (1 GiB at most, its default on MariaDB and MySQL), which a wide
/// row written within production's max_allowed_packet can pass; read with the server's own
/// limit, such an event ends the read with "Packet is larger than max_allowed_packet".
const BINLOG_MAX_PACKET: usize = 1 << 30;

impl MysqlConnector {
    /// A plain connection to one server, with the session settings of every other but none of
    /// the session's machinery: for what takes the connection over, as a binlog stream does.
    /// Compressed only with `--compress on` (a stream is one long read, measured by nothing).
    pub async fn open_conn(&self, side: Side, rds_endpoint: &Endpoint) -> Result<Conn> {
        Ok(self
            .open_with(
                side,
                rds_endpoint,
                self.compress == Compress::On,
                Some(BINLOG_MAX_PACKET),
            )
            .await?
            .conn)
    }

    async fn open(&self, side: Side, rds_endpoint: &Endpoint, compress: bool) -> Result<MysqlSession> {
        self.open_with(side, rds_endpoint, compress, None).await
    }

    /// `max_packet`: the largest packet this side reads, instead of the server's
    /// max_allowed_packet.
    async fn open_with(
        &self,
        side: Side,
        rds_endpoint: &Endpoint,
        compress: bool,
        max_packet: Option<usize>,
    ) -> Result<MysqlSession> {
        let dial = match side {
            Side::Production => self.production_override.as_ref(),
            Side::Restored => self.restored_override.as_ref(),
        }
        .unwrap_or(rds_endpoint);
        tracing::debug!(%side, dial = %dial, rds = %rds_endpoint, tls = ?self.tls, "connecting");
        let (password, cleartext) = match &self.credential {
            Credential::Password(p) => (p.clone(), false),
            Credential::IamToken(config) => (iam_token(config, rds_endpoint, &self.user).await?, true),
        };
        let address = if dial == rds_endpoint {
            dial.to_string()
        } else {
            format!("{dial} (for {rds_endpoint})")
        };
        let opts = OptsBuilder::default()
            .ip_or_hostname(dial.host.clone())
            .tcp_port(dial.port)
            .user(Some(self.user.clone()))
            .pass(Some(password.expose().to_string()))
            .enable_cleartext_plugin(cleartext)
            .prefer_socket(false)
            .ssl_opts(self.ssl_opts(&rds_endpoint.host, &dial.host))
            // Each multi-row INSERT size is its own prepared statement, large at big chunks:
            // a modest cache closes the ones no longer used instead of holding dozens.
            .stmt_cache_size(16)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .compression(compress.then(mysql_async::Compression::fast))
            .max_allowed_packet(max_packet)
            .init(self.session_setup(side));
        let conn = match tokio::time::timeout(self.connect_timeout, Conn::new(opts)).await {
            Err(_) => {
                return Err(Error::DbConnect {
                    side,
                    address,
                    detail: format!("no answer within {}s", self.connect_timeout.as_secs()),
                    hint: connect_hint(side, ""),
                })
            }
            Ok(Err(e)) => return Err(classify_connect_error(side, &self.user, address, e)),
            Ok(Ok(c)) => c,
        };
        Ok(MysqlSession {
            conn,
            side,
            load_method: self.load_method,
            fell_back: false,
        })
    }
}

pub(super) fn connect_hint(side: Side, detail: &str) -> String {
    let d = detail.to_ascii_lowercase();
    let flag = match side {
        Side::Production => "--production-endpoint",
        Side::Restored => "--restored-endpoint",
    };
    if d.contains("certificate") || d.contains("tls") || d.contains("ssl") || d.contains("handshake") {
        " (TLS verification failed: pass --ssl-ca with the CA bundle that signed the server's certificate, \
         for RDS the global-bundle.pem; --tls verify-ca if a tunnel's name is not in the certificate)"
            .into()
    } else {
        format!(" (is the endpoint reachable from here? through a tunnel, point {flag} at it)")
    }
}

pub(super) fn classify_connect_error(side: Side, user: &str, address: String, e: mysql_async::Error) -> Error {
    if let mysql_async::Error::Server(s) = &e {
        // 1045: access denied; 1044: no access to the database.
        if s.code == 1045 || s.code == 1044 || s.code == 1698 {
            return Error::DbAuth {
                side,
                user: user.to_string(),
                address,
            };
        }
    }
    let detail = e.to_string();
    Error::DbConnect {
        side,
        address,
        hint: connect_hint(side, &detail),
        detail,
    }
}
