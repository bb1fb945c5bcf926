//! `signet sign`: signs a message file as the gateway would, and prints it with its signature.
//!
//! Mail on the wire has CRLF line endings, and a DKIM signature is computed over that form.
//! A message saved by a Unix tool usually has bare LF instead; signing those bytes as they are
//! makes a signature no verifier accepts (the header hash covers the LF form, the body hash the
//! CRLF form). So the input is signed as SMTP would carry it, and printed back with the line
//! endings it came with, where every verifier reads it as the same CRLF message.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use signet_app::{SignOutcome, SigningPolicy};
use signet_keys::DomainName;

use crate::Signet;

pub async fn run(service: &Signet, path: &Path, recipients: &[String]) -> Result<()> {
    let input = crate::read_input(path)?;
    let domains = recipients
        .iter()
        .map(|r| {
            let domain = r
                .rsplit_once('@')
                .map_or(r.as_str(), |(_, d)| d.trim_end_matches('>'));
            domain
                .parse::<DomainName>()
                .with_context(|| format!("--rcpt {r}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let endings = LineEndings::of(&input);
    let message = signet_verifier::to_crlf(&input);
    match service
        .sign_message(&message, &domains, &SigningPolicy::default(), None)
        .await?
    {
        SignOutcome::Signed { header, .. } => {
            let mut signed = header.into_bytes();
            signed.extend_from_slice(&message);
            let mut out = std::io::stdout().lock();
            out.write_all(&endings.restore(&signed))?;
            Ok(())
        }
        SignOutcome::Unsigned(reason) => anyhow::bail!("not signed: {reason}"),
    }
}

/// How a file ends its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEndings {
    /// Every line ends in CRLF, or the ends are mixed: printed as the CRLF form that was signed.
    Crlf,
    /// Bare LF only, as Unix tools write mail files.
    Lf,
}

impl LineEndings {
    fn of(message: &[u8]) -> LineEndings {
        if message.contains(&b'\n') && !message.windows(2).any(|w| w == b"\r\n") {
            LineEndings::Lf
        } else {
            LineEndings::Crlf
        }
    }

    /// `signed` (CRLF throughout) in this convention.
    fn restore(self, signed: &[u8]) -> Cow<'_, [u8]> {
        match self {
            LineEndings::Crlf => Cow::Borrowed(signed),
            LineEndings::Lf => Cow::Owned(to_lf(signed)),
        }
    }
}

/// Every CRLF becomes LF.
fn to_lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for (i, &b) in message.iter().enumerate() {
        if b == b'\r' && message.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_recognised() {
        for (message, endings) in [
            (&b"a: b\n\nbody\n"[..], LineEndings::Lf),
            (b"a: b\r\n\r\nbody\r\n", LineEndings::Crlf),
            (b"a: b\r\n\nbody\n", LineEndings::Crlf),
            (b"a: b", LineEndings::Crlf),
        ] {
            assert_eq!(LineEndings::of(message), endings, "{message:?}");
        }
    }

    #[test]
    fn lf_goes_to_crlf_for_signing_and_back() {
        let lf = b"From: a@b.example\nSubject: x\n\nline\n\nend\n";
        let crlf = signet_verifier::to_crlf(lf);
        assert_eq!(
            &crlf[..],
            b"From: a@b.example\r\nSubject: x\r\n\r\nline\r\n\r\nend\r\n"
        );
        assert_eq!(to_lf(&crlf), lf);
        assert_eq!(to_lf(b"a\r\nb\rc\n"), b"a\nb\rc\n");
    }
}
