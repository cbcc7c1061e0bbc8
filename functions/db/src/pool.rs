//! The connection pool: deadpool over tokio-postgres, TLS per `DATABASE_SSL_MODE`.

use crate::DbError;
use common::settings::{DatabaseSettings, SslMode};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for a connection, and how long opening one may take. Short, so a
/// dead database turns into a quick 503 instead of a hung Lambda.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the pool. Nothing is connected yet except the `min_size` warm connections, which are
/// tried once: a database that is down at cold start must not keep the function from serving
/// `/api/health` with a 503.
#[tracing::instrument(skip_all, fields(ssl_mode = ?settings.ssl_mode, max_size = settings.max_size))]
pub async fn connect(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    let mut pg = tokio_postgres::Config::from_str(settings.url.expose())
        .map_err(|e| DbError::Config(format!("DATABASE_URL is not a valid Postgres URL: {e}")))?;
    if let Some(login) = &settings.credentials {
        // From the database secret; the URL then names only the host and the database.
        pg.user(&login.username);
        pg.password(login.password.expose());
    }
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.application_name("pcap-analyzer");
    let manager_config = ManagerConfig {
        // `Fast` only checks the socket is open; a broken one is replaced on the next use.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match settings.ssl_mode {
        SslMode::Disable => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
        }
        mode => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                mode,
                settings.ssl_root_cert.as_deref(),
            )?);
            Manager::from_config(pg, tls, manager_config)
        }
    };
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(WAIT_TIMEOUT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        })
        .build()
        .map_err(|e| DbError::Config(format!("cannot build the pool: {e}")))?;

    // Warm DATABASE_MIN_SIZE connections: deadpool has no minimum of its own.
    let mut warm = Vec::with_capacity(settings.min_size);
    for _ in 0..settings.min_size {
        match pool.get().await {
            Ok(c) => warm.push(c),
            Err(e) => {
                tracing::warn!(error = %e, "database not reachable at start; will retry on use");
                break;
            }
        }
    }
    drop(warm);
    Ok(pool)
}

fn tls_config(mode: SslMode, root_cert: Option<&str>) -> Result<rustls::ClientConfig, DbError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(format!("TLS setup failed: {e}")))?;
    if mode == SslMode::Require {
        // libpq's `require`: encrypted, but the certificate is not checked.
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        let pem = std::fs::read(path).map_err(|e| {
            DbError::Config(format!("DATABASE_SSL_ROOT_CERT {path} unreadable: {e}"))
        })?;
        for cert in rustls_pemfile_certs(&pem) {
            roots
                .add(cert)
                .map_err(|e| DbError::Config(format!("DATABASE_SSL_ROOT_CERT {path}: {e}")))?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The DER certificates of a PEM bundle (e.g. the RDS CA bundle).
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
