//! TLS at both ends of the gateway. Towards the smart host: opportunistic (encrypt, do not
//! check) or required (a certificate that verifies against `smart_host_ca` or the system's
//! roots). For the submission listener: the operator's certificate (`[smtp] tls_certificate`,
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
use signet_smtp::client::{NextHop, NextHopTls};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tracing::info;

use crate::config::{SmartHostTls, SmtpSettings, TlsFiles};

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

/// How the delivery worker reaches the smart host: TLS as configured, and the login with its
/// password read from its file (which, like a key, must not be readable by others).
pub fn next_hop(smtp: &SmtpSettings, address: &str) -> Result<NextHop> {
    let tls = match smtp.smart_host_tls {
        SmartHostTls::Off => NextHopTls::Off,
        SmartHostTls::Opportunistic => NextHopTls::Opportunistic(
            signet_smtp::client::opportunistic_tls().context("TLS towards the smart host")?,
        ),
        SmartHostTls::Required => {
            NextHopTls::Required(verified_client(smtp.smart_host_ca.as_deref())?)
        }
    };
    let login = match &smtp.smart_host_login {
        Some((user, file)) => {
            refuse_readable(file, "[smtp] smart_host_password_file")?;
            let text = zeroize::Zeroizing::new(fs::read_to_string(file).with_context(|| {
                format!(
                    "[smtp] smart_host_password_file: cannot read {}",
                    file.display()
                )
            })?);
            let password = zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
            if password.is_empty() {
                bail!(
                    "[smtp] smart_host_password_file {} is empty",
                    file.display()
                );
            }
            Some((user.clone(), password))
        }
        None => None,
    };
    Ok(NextHop {
        address: address.to_string(),
        name: None,
        tls,
        login,
    })
}

/// A client that checks the certificate chain and host name against `ca` or the system roots.
fn verified_client(ca: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        for certificate in CertificateDer::pem_file_iter(ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .with_context(|| format!("[smtp] smart_host_ca: cannot read {}", ca.display()))?
        {
            roots.add(certificate).with_context(|| {
                format!(
                    "[smtp] smart_host_ca: a bad certificate in {}",
                    ca.display()
                )
            })?;
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    if roots.is_empty() {
        bail!(
            "[smtp] smart_host_tls = \"required\" but no CA certificate was found (set smart_host_ca)"
        );
    }
    signet_smtp::client::verified_tls(roots).context("TLS towards the smart host")
}

/// A private key others can read is refused, as the master key is.
fn refuse_readable_key(path: &Path) -> Result<()> {
    refuse_readable(path, "[smtp] tls_key")
}

fn refuse_readable(path: &Path, setting: &str) -> Result<()> {
    let meta =
        fs::metadata(path).with_context(|| format!("{setting}: cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{setting} {} is readable by other users (mode {:o}); run `chmod 600 {}`",
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
