//! `onmemos shell <session>`: the session's terminal in this one, in raw mode.
//!
//! A line that starts with `/` is read locally (and echoed) until Enter: the built-ins
//! `/help`, `/status`, `/credits` and `/clear` run here; anything else is sent to the session
//! as typed. Notices (limit warnings) are printed between the session's output; the exit
//! reason ends the command.

use std::io::Write;

use onmemos::client::api::{ShellClientFrame, ShellServerFrame};
use onmemos::client::id::SessionId;
use onmemos::client::{Client, ShellEvent};
use tokio::io::AsyncReadExt;

use super::credits::credits;

const HELP: &str = "built-ins (type at the start of a line): /help  /status  /credits  /clear\r\n";

/// Restores the terminal when dropped, however the shell ends.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<Self> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// What the local line editor decided about a key.
enum Local {
    /// Send these bytes to the session.
    Send(Vec<u8>),
    /// Run this built-in.
    Builtin(String),
    /// Nothing yet (a `/` line is being typed).
    Wait,
}

/// Tracks whether input is at the start of a line and buffers `/` lines.
#[derive(Default)]
struct LineEditor {
    mid_line: bool,
    command: Option<String>,
}

impl LineEditor {
    fn key(&mut self, byte: u8, echo: &mut impl Write) -> Local {
        if let Some(cmd) = &mut self.command {
            match byte {
                b'\r' | b'\n' => {
                    let cmd = self.command.take().unwrap_or_default();
                    let _ = echo.write_all(b"\r\n");
                    self.mid_line = false;
                    return if ["/help", "/status", "/credits", "/clear"].contains(&cmd.as_str()) {
                        Local::Builtin(cmd)
                    } else {
                        let mut bytes = cmd.into_bytes();
                        bytes.push(b'\r');
                        Local::Send(bytes)
                    };
                }
                0x7f | 0x08 => {
                    cmd.pop();
                    let _ = echo.write_all(b"\x08 \x08");
                    if cmd.is_empty() {
                        self.command = None;
                    }
                }
                // Ctrl-C abandons the local line.
                0x03 => {
                    self.command = None;
                    let _ = echo.write_all(b"^C\r\n");
                    return Local::Send(vec![b'\r']);
                }
                _ => {
                    cmd.push(char::from(byte));
                    let _ = echo.write_all(&[byte]);
                }
            }
            let _ = echo.flush();
            return Local::Wait;
        }
        if byte == b'/' && !self.mid_line {
            self.command = Some("/".into());
            let _ = echo.write_all(b"/");
            let _ = echo.flush();
            return Local::Wait;
        }
        self.mid_line = !matches!(byte, b'\r' | b'\n' | 0x03 | 0x04 | 0x15);
        Local::Send(vec![byte])
    }
}

fn size() -> (u16, u16) {
    // A terminal that does not know its size says 0×0.
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (rows.min(1000), cols.min(1000)),
        _ => (24, 80),
    }
}

pub(crate) async fn run(client: &Client, session: SessionId) -> anyhow::Result<()> {
    let (rows, cols) = size();
    let options = onmemos::client::ShellOptions {
        rows,
        cols,
        ..Default::default()
    };
    let mut shell = client.shell_with(session, options).await?;
    let _raw = RawMode::enable()?;
    let mut stdout = std::io::stdout();
    let mut stdin = tokio::io::stdin();
    let mut editor = LineEditor::default();
    let mut buf = [0u8; 1024];
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let _ = stdout.write_all(b"connected; type /help at the start of a line for built-ins\r\n");
    let _ = stdout.flush();
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    break;
                }
                for &byte in &buf[..n] {
                    match editor.key(byte, &mut stdout) {
                        Local::Send(bytes) => shell.send(&bytes).await?,
                        Local::Builtin(cmd) => match cmd.as_str() {
                            "/help" => { let _ = stdout.write_all(HELP.as_bytes()); }
                            "/status" => shell.control(&ShellClientFrame::Status).await?,
                            "/credits" => shell.control(&ShellClientFrame::Credits).await?,
                            _ => {
                                let _ = stdout.write_all(b"\x1b[2J\x1b[H");
                                shell.send(b"\x0c").await?;
                            }
                        },
                        Local::Wait => {}
                    }
                }
                let _ = stdout.flush();
            }
            _ = resized.recv() => {
                let (rows, cols) = size();
                shell.control(&ShellClientFrame::Resize { rows, cols }).await?;
            }
            event = shell.next() => match event {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(ShellEvent::Reconnected { .. })) => {
                    let _ = stdout.write_all(b"\r\n[reconnected]\r\n");
                    let _ = stdout.flush();
                }
                Some(Ok(ShellEvent::Output(bytes))) => {
                    let _ = stdout.write_all(&bytes);
                    let _ = stdout.flush();
                }
                Some(Ok(ShellEvent::Control(frame))) => {
                    let line = match frame {
                        ShellServerFrame::Status { session } => format!(
                            "[{} · {} · cost {} credits · {} credits/h]",
                            session.id,
                            session.status.as_str(),
                            credits(session.cost_micros),
                            credits(session.rate_micros_per_hour)
                        ),
                        ShellServerFrame::Credits { balance } => format!(
                            "[credits available: {}]",
                            credits(balance.available)
                        ),
                        ShellServerFrame::Notice { message, .. } => format!("[onmemos] {message}"),
                        ShellServerFrame::Error { message, .. } => format!("[error] {message}"),
                        ShellServerFrame::Exit { code, reason } => {
                            let _ = write!(stdout, "\r\n[session ended: {reason}{}]\r\n",
                                code.map(|c| format!(", exit code {c}")).unwrap_or_default());
                            let _ = stdout.flush();
                            break;
                        }
                    };
                    let _ = write!(stdout, "\r\n{line}\r\n");
                    let _ = stdout.flush();
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LineEditor, Local};

    fn feed(editor: &mut LineEditor, text: &[u8]) -> Vec<String> {
        let mut echo = Vec::new();
        text.iter()
            .filter_map(|b| match editor.key(*b, &mut echo) {
                Local::Send(bytes) => Some(format!("send:{}", String::from_utf8_lossy(&bytes))),
                Local::Builtin(cmd) => Some(format!("builtin:{cmd}")),
                Local::Wait => None,
            })
            .collect()
    }

    #[test]
    fn slash_lines_at_line_start_are_built_ins_and_others_pass_through() {
        let mut e = LineEditor::default();
        assert_eq!(feed(&mut e, b"/status\r"), ["builtin:/status"]);
        // Not at the start of a line: a plain slash.
        assert_eq!(
            feed(&mut e, b"ls /"),
            ["send:l", "send:s", "send: ", "send:/"]
        );
        assert_eq!(feed(&mut e, b"\r"), ["send:\r"]);
        // An unknown slash command goes to the session as typed.
        assert_eq!(feed(&mut e, b"/usr/bin/env\r"), ["send:/usr/bin/env\r"]);
        // Backspacing the slash away leaves the local line.
        assert_eq!(feed(&mut e, b"/\x7fx"), ["send:x"]);
    }
}
