//! The DATA reader: finds the end of message data and undoes dot-stuffing, and makes SMTP
//! smuggling impossible.
//!
//! The end of data is `<CRLF>.<CRLF>` and nothing else (RFC 5321 section 4.1.1.4). SMTP
//! smuggling (SEC Consult, December 2023) works when two servers disagree on that: a lax server
//! that ends DATA on `<LF>.<LF>` would read the rest of one message as a second, forged one. This
//! reader only ever returns to the start of a line after a real CRLF, so a bare CR or LF can
//! never be followed by an end-of-data dot; and any bare CR or LF marks the message as
//! [`DataProblem::BareLineEnding`], which the session refuses with `554 5.6.0` once it has read
//! to the real end of data, so client and server stay in step.
//!
//! The reader is incremental: feeding the input in any split gives the same result as feeding
//! it whole (a property test below checks that).

/// Longest text line allowed, in octets including the CRLF (RFC 5321 section 4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Why a message was refused after reading it to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProblem {
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineEnding,
    /// A line longer than [`MAX_TEXT_LINE`] octets including its CRLF.
    LineTooLong,
    /// The message is larger than the configured maximum.
    TooLarge,
}

/// Incremental reader of one DATA section.
#[derive(Debug, Clone)]
pub struct DataReader {
    state: State,
    message: Vec<u8>,
    max_size: usize,
    /// Octets of the current line so far, as sent (a stuffing dot counts), without CRLF.
    line_length: usize,
    problem: Option<DataProblem>,
    finished: bool,
}

/// Where the reader is within the line structure of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line: the data began here or a real CRLF came just before.
    LineStart,
    /// A dot at the start of a line.
    Dot,
    /// `.` `CR` at the start of a line: only LF completes the end of data.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line, waiting for its LF.
    Cr,
}

impl DataReader {
    /// A reader for a message of at most `max_size` octets (after dot-unstuffing).
    pub fn new(max_size: usize) -> Self {
        Self {
            state: State::LineStart,
            message: Vec::new(),
            max_size,
            line_length: 0,
            problem: None,
            finished: false,
        }
    }

    /// Reads from `input` up to the end of data. Returns how many octets it consumed; once
    /// [`DataReader::is_finished`] is true the rest of `input` belongs to the next command.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut position = 0;
        while position < input.len() && !self.finished {
            let rest = &input[position..];
            let text = match self.state {
                State::Text => true,
                // An ordinary first octet starts the line's text; a dot, CR or LF is a step.
                State::LineStart => !matches!(rest[0], b'.' | b'\r' | b'\n'),
                State::Dot | State::DotCr | State::Cr => false,
            };
            if text {
                position += self.text_run(rest);
                continue;
            }
            position += 1;
            self.step(rest[0]);
        }
        position
    }

    /// True once the end of data (`<CRLF>.<CRLF>`) has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The message, or why it must be refused. Call after [`DataReader::is_finished`].
    pub fn finish(self) -> Result<Vec<u8>, DataProblem> {
        debug_assert!(self.finished, "finish called before the end of data");
        match self.problem {
            Some(problem) => Err(problem),
            None => Ok(self.message),
        }
    }

    /// Copies ordinary text up to the next CR or LF in one go, and the CRLF that ends the line
    /// when it is there: the common case, kept fast. The same steps as octet by octet.
    fn text_run(&mut self, input: &[u8]) -> usize {
        let run = memchr::memchr2(b'\r', b'\n', input).unwrap_or(input.len());
        self.push_text(&input[..run]);
        self.state = State::Text;
        match (input.get(run), input.get(run + 1)) {
            (Some(b'\r'), Some(b'\n')) => {
                self.push_output(b"\r\n");
                self.line_length = 0;
                self.state = State::LineStart;
                run + 2
            }
            (Some(&byte), _) => {
                self.step(byte);
                run + 1
            }
            (None, _) => run,
        }
    }

    fn step(&mut self, byte: u8) {
        match (self.state, byte) {
            (State::LineStart, b'.') => {
                self.line_length = 1;
                self.state = State::Dot;
            }
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => self.finished = true,
            (State::LineStart | State::Text, b'\r') => self.state = State::Cr,
            (State::Cr, b'\n') => {
                self.push_output(b"\r\n");
                self.line_length = 0;
                self.state = State::LineStart;
            }
            (State::LineStart | State::Dot | State::Text, b'\n') => {
                // A bare LF: never a line start, so never the start of an end of data.
                self.note(DataProblem::BareLineEnding);
                self.state = State::Text;
            }
            (State::Cr | State::DotCr, _) => {
                // A bare CR; the byte after it is ordinary input, read again as text.
                self.note(DataProblem::BareLineEnding);
                self.state = State::Text;
                self.step(byte);
            }
            (State::LineStart | State::Dot | State::Text, _) => {
                // A dot that starts a longer line is dropped (RFC 5321 section 4.5.2).
                self.push_text(&[byte]);
                self.state = State::Text;
            }
        }
    }

    fn push_text(&mut self, text: &[u8]) {
        self.line_length += text.len();
        if self.line_length > MAX_TEXT_LINE - 2 {
            self.note(DataProblem::LineTooLong);
        }
        self.push_output(text);
    }

    fn push_output(&mut self, bytes: &[u8]) {
        if self.problem.is_some() {
            return; // the message will be refused: keep no more of it
        }
        if self.message.len() + bytes.len() > self.max_size {
            self.note(DataProblem::TooLarge);
            return;
        }
        self.message.extend_from_slice(bytes);
    }

    fn note(&mut self, problem: DataProblem) {
        if self.problem.is_none() {
            self.problem = Some(problem);
            self.message = Vec::new();
        }
    }
}

/// Checks a message received whole (BDAT): CRLF line endings only, lines within
/// [`MAX_TEXT_LINE`]. BDAT has no end-of-data marker to smuggle, but the message is signed and
/// relayed as text, so it is held to the same rules as DATA.
pub fn check_text(message: &[u8]) -> Result<(), DataProblem> {
    let mut line_length = 0;
    let mut previous = 0u8;
    for (index, &byte) in message.iter().enumerate() {
        let next = message.get(index + 1).copied();
        match byte {
            b'\r' if next != Some(b'\n') => return Err(DataProblem::BareLineEnding),
            b'\n' if previous != b'\r' => return Err(DataProblem::BareLineEnding),
            b'\n' => line_length = 0,
            b'\r' => {}
            _ => {
                line_length += 1;
                if line_length > MAX_TEXT_LINE - 2 {
                    return Err(DataProblem::LineTooLong);
                }
            }
        }
        previous = byte;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` whole; returns the outcome and how many octets the DATA section took.
    fn read_whole(input: &[u8]) -> Option<(Result<Vec<u8>, DataProblem>, usize)> {
        let mut reader = DataReader::new(1 << 20);
        let used = reader.feed(input);
        reader.is_finished().then(|| (reader.finish(), used))
    }

    fn read_chunked(input: &[u8], cuts: &[usize]) -> Option<(Result<Vec<u8>, DataProblem>, usize)> {
        let mut reader = DataReader::new(1 << 20);
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut start = 0;
        let mut used = 0;
        for cut in cuts {
            if reader.is_finished() {
                break;
            }
            used += reader.feed(&input[start..cut]);
            start = cut;
        }
        reader.is_finished().then(|| (reader.finish(), used))
    }

    #[test]
    fn plain_message_and_what_follows() {
        let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (message, used) = read_whole(input).unwrap();
        assert_eq!(message.unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(&input[used..], b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (message, used) = read_whole(b".\r\n").unwrap();
        assert_eq!(message.unwrap(), b"");
        assert_eq!(used, 3);
    }

    #[test]
    fn dot_unstuffing() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"..\r\n.\r\n", b".\r\n"),
            (b"..x\r\n.\r\n", b".x\r\n"),
            (b".x\r\n.\r\n", b"x\r\n"),
            (b"a.\r\n.b\r\n...\r\n.\r\n", b"a.\r\nb\r\n..\r\n"),
        ];
        for (input, expected) in cases {
            let (message, _) = read_whole(input).unwrap();
            assert_eq!(message.unwrap(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn incomplete_data_is_not_finished() {
        for input in [&b"abc\r\n."[..], b"abc\r\n.\r", b"abc\r\n", b""] {
            assert!(read_whole(input).is_none(), "input {input:?}");
        }
    }

    /// The end-of-data variants published with the 2023 SMTP smuggling research (SEC Consult)
    /// and the follow-ups: none ends the message, and each makes it refused.
    #[test]
    fn smuggling_variants_never_end_data() {
        let variants: &[&[u8]] = &[
            b"\n.\n",
            b"\n.\r\n",
            b"\r.\r",
            b"\r.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\n.\r",
            b"\r.\n",
            b"\r\n.\r\r\n",
            b"\r\n.\n\r\n",
            b"\n..\n",
        ];
        for variant in variants {
            let mut input = b"Subject: one\r\n\r\nfirst".to_vec();
            input.extend_from_slice(variant);
            input.extend_from_slice(
                b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\
                  Subject: forged\r\n\r\nsmuggled\r\n",
            );
            let before_real_end = input.len();
            input.extend_from_slice(b".\r\nQUIT\r\n");
            let (message, used) =
                read_whole(&input).unwrap_or_else(|| panic!("variant {variant:?} never ended"));
            assert_eq!(used, before_real_end + 3, "variant {variant:?} ended early");
            assert_eq!(
                message,
                Err(DataProblem::BareLineEnding),
                "variant {variant:?}"
            );
        }
    }

    #[test]
    fn a_nul_after_the_dot_is_content_not_an_end() {
        let input = b"a\r\n.\0\r\nMAIL FROM:<x@y>\r\n.\r\n";
        let (message, used) = read_whole(input).unwrap();
        assert_eq!(message.unwrap(), b"a\r\n\0\r\nMAIL FROM:<x@y>\r\n");
        assert_eq!(used, input.len());
    }

    #[test]
    fn line_length_limit() {
        let mut ok = vec![b'a'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert!(read_whole(&ok).unwrap().0.is_ok());
        let mut long = vec![b'a'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(read_whole(&long).unwrap().0, Err(DataProblem::LineTooLong));
    }

    #[test]
    fn size_limit_reads_to_the_end() {
        let mut reader = DataReader::new(4);
        let input = b"12345\r\n.\r\nNOOP\r\n";
        let used = reader.feed(input);
        assert!(reader.is_finished());
        assert_eq!(&input[used..], b"NOOP\r\n");
        assert_eq!(reader.finish(), Err(DataProblem::TooLarge));
    }

    #[test]
    fn check_text_for_bdat() {
        assert_eq!(check_text(b"a\r\nb\r\n"), Ok(()));
        assert_eq!(check_text(b""), Ok(()));
        assert_eq!(check_text(b"a\nb"), Err(DataProblem::BareLineEnding));
        assert_eq!(check_text(b"a\rb"), Err(DataProblem::BareLineEnding));
        assert_eq!(check_text(b"a\r"), Err(DataProblem::BareLineEnding));
        assert_eq!(check_text(&[b'x'; 999]), Err(DataProblem::LineTooLong));
    }

    fn smtp_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Weighted towards the bytes that matter so that ends, stuffing and bare endings occur.
        let byte = prop_oneof![
            4 => Just(b'\r'),
            4 => Just(b'\n'),
            4 => Just(b'.'),
            2 => Just(b'a'),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..200)
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_result(
            input in smtp_ish_bytes(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            prop_assert_eq!(read_chunked(&input, &cuts), read_whole(&input));
        }

        #[test]
        fn a_finished_section_ends_with_crlf_dot_crlf(input in smtp_ish_bytes()) {
            if let Some((message, used)) = read_whole(&input) {
                let section = &input[..used];
                prop_assert!(section == b".\r\n" || section.ends_with(b"\r\n.\r\n"));
                // The first CRLF.CRLF (or a leading .CRLF) is where it ends: never later, never
                // earlier.
                let mut framed = b"\r\n".to_vec();
                framed.extend_from_slice(section);
                let first = framed.windows(5).position(|w| w == b"\r\n.\r\n").unwrap();
                prop_assert_eq!(first + 5, framed.len());
                if let Ok(message) = message {
                    prop_assert!(check_text(&message).is_ok());
                }
            }
        }
    }
}
