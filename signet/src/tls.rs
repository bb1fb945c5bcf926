//! The submission listener's TLS: the operator's certificate (`[smtp] tls_certificate`,
//! `tls_key`, PEM), or else a self-signed one that signet makes once for its hostname and keeps
//! in the data directory — enough for a client that is told to trust it, or for opportunistic
//! STARTTLS, and replaced by a real one by setting the two paths.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tracing::info;

use crate::config::TlsFiles;

/// The rustls configuration for STARTTLS, making the self-signed certificate first if needed.
pub fn server_config(files: &TlsFiles, hostname: &str) -> Result<Arc<ServerConfig>> {
    if files.self_signed && !files.certificate.exists() {
        make_self_signed(files, hostname)?;
    }
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&files.certificate)
            .and_then(Iterator::collect)
            .with_context(|| {
                format!(
                    "[smtp] tls_certificate: cannot read {}",
                    files.certificate.display()
                )
            })?;
    if certificates.is_empty() {
        bail!(
            "[smtp] tls_certificate: {} holds no PEM certificate",
            files.certificate.display()
        );
    }
    refuse_readable_key(&files.key)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "[smtp] tls_key: {} holds no PEM private key",
            files.key.display()
        )
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .with_context(|| {
            format!(
                "[smtp] tls_key {} does not belong to the certificate {}",
                files.key.display(),
                files.certificate.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A private key others can read is refused, as the master key is.
fn refuse_readable_key(path: &Path) -> Result<()> {
    let meta = fs::metadata(path)
        .with_context(|| format!("[smtp] tls_key: cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "[smtp] tls_key {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes a self-signed certificate for `hostname`: the key first (0600, fsync'd), the
/// certificate last, so an interrupted run leaves no certificate without its key.
fn make_self_signed(files: &TlsFiles, hostname: &str) -> Result<()> {
    let made = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .context("cannot make a self-signed TLS certificate")?;
    let key = zeroize::Zeroizing::new(made.signing_key.serialize_pem());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&files.key)
        .with_context(|| format!("cannot create {}", files.key.display()))?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    let temporary = files.certificate.with_extension("tmp");
    fs::write(&temporary, made.cert.pem())
        .and_then(|()| fs::rename(&temporary, &files.certificate))
        .with_context(|| format!("cannot write {}", files.certificate.display()))?;
    info!(
        certificate = %files.certificate.display(),
        "submission: made a self-signed TLS certificate for {hostname}; set [smtp] tls_certificate and tls_key to use your own"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            certificate: dir.join("c.pem"),
            key: dir.join("k.pem"),
            self_signed: true,
        }
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        server_config(&files, "signet.test").unwrap();
        let first = fs::read(&files.certificate).unwrap();
        let mode = fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        server_config(&files, "signet.test").unwrap();
        assert_eq!(
            fs::read(&files.certificate).unwrap(),
            first,
            "kept, not remade"
        );
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = files(dir.path());
        files.self_signed = false;
        let missing = format!("{:#}", server_config(&files, "x").unwrap_err());
        assert!(
            missing.contains("[smtp] tls_certificate: cannot read"),
            "{missing}"
        );

        fs::write(&files.certificate, "not a certificate").unwrap();
        let empty = format!("{:#}", server_config(&files, "x").unwrap_err());
        assert!(empty.contains("holds no PEM certificate"), "{empty}");

        let made = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        fs::write(&files.certificate, made.cert.pem()).unwrap();
        fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        fs::set_permissions(&files.key, fs::Permissions::from_mode(0o644)).unwrap();
        let readable = format!("{:#}", server_config(&files, "x").unwrap_err());
        assert!(readable.contains("readable by other users"), "{readable}");

        let other = rcgen::generate_simple_self_signed(vec!["y".into()]).unwrap();
        fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
        fs::set_permissions(&files.key, fs::Permissions::from_mode(0o600)).unwrap();
        let mismatch = format!("{:#}", server_config(&files, "x").unwrap_err());
        assert!(mismatch.contains("does not belong"), "{mismatch}");

        fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        assert!(server_config(&files, "x").is_ok());
    }
}
