//! SMTP replies: a basic code, an RFC 3463 enhanced status code and text.

use std::fmt;

/// One SMTP reply, possibly spanning several lines (EHLO).
///
/// Every reply carries an enhanced status code (RFC 2034) except the greeting and the replies to
/// HELO/EHLO, which RFC 2034 section 4 exempts; [`Reply::without_status`] builds those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: Option<[u16; 3]>,
    lines: Vec<String>,
}

impl Reply {
    /// A single-line reply, e.g. `Reply::new(550, [5, 7, 1], "relaying denied")`.
    ///
    /// Text from callers is sanitised: control characters (CR and LF above all) become spaces, so
    /// a policy can never inject a reply line of its own.
    pub fn new(code: u16, status: [u16; 3], text: impl Into<String>) -> Self {
        debug_assert!((200..600).contains(&code), "reply code {code} out of range");
        debug_assert_eq!(code / 100, status[0], "status class must match the code");
        Self {
            code,
            status: Some(status),
            lines: vec![sanitize(text.into())],
        }
    }

    /// A reply without an enhanced status code (greeting, HELO/EHLO only).
    pub fn without_status(code: u16, lines: Vec<String>) -> Self {
        let mut lines: Vec<String> = lines.into_iter().map(sanitize).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Self {
            code,
            status: None,
            lines,
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, when the reply carries one.
    pub fn status(&self) -> Option<[u16; 3]> {
        self.status
    }

    /// The text lines, without codes.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// 2xx and 3xx: the command went through.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: a temporary failure; the client should retry later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: a permanent failure.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as it goes on the wire, CRLF-terminated lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len() - 1;
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            write!(f, "{}{separator}", self.code)?;
            if let Some([class, subject, detail]) = self.status {
                write!(f, "{class}.{subject}.{detail}")?;
                if !line.is_empty() {
                    f.write_str(" ")?;
                }
            }
            write!(f, "{line}\r\n")?;
        }
        Ok(())
    }
}

fn sanitize(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_carries_the_enhanced_code() {
        let reply = Reply::new(250, [2, 1, 0], "Ok");
        assert_eq!(reply.to_string(), "250 2.1.0 Ok\r\n");
        assert!(reply.is_positive());
    }

    #[test]
    fn multi_line_uses_dashes_until_the_last_line() {
        let reply = Reply::without_status(250, vec!["mx".into(), "PIPELINING".into()]);
        assert_eq!(reply.to_string(), "250-mx\r\n250 PIPELINING\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let reply = Reply::new(550, [5, 7, 1], "no\r\n250 2.0.0 yes");
        assert_eq!(reply.to_string(), "550 5.7.1 no  250 2.0.0 yes\r\n");
    }

    #[test]
    fn classes() {
        assert!(Reply::new(451, [4, 3, 0], "later").is_transient());
        assert!(Reply::new(554, [5, 6, 0], "no").is_permanent());
        assert!(!Reply::new(554, [5, 6, 0], "no").is_transient());
    }
}
