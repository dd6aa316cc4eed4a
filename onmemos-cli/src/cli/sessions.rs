//! `onmemos session …` and `onmemos estimate`.

use clap::Subcommand;
use onmemos::client::Client;
use onmemos::client::api::{
    CompareRequest, CreateSession, Estimate, EstimateRequest, EventListParams, ExecCommand,
    LimitOverrides, SessionListParams,
};
use onmemos::client::id::{SessionId, WorkspaceId};
use onmemos::client::model::{MicroCredits, Placement, Resources, Session, SessionStatus};

use super::Output;
use super::credits::{credits, parse_credits};
use super::output::when;

/// Runs `command`, writing its output to this process's stdout and stderr as it comes, byte
/// for byte; its exit code.
async fn stream_exec(
    sessions: onmemos::client::Sessions<'_>,
    session: SessionId,
    command: &ExecCommand,
) -> anyhow::Result<Option<i32>> {
    use futures_util::StreamExt as _;
    use onmemos::client::api::ExecStreamLine;
    use std::io::Write as _;
    let mut lines = sessions.exec_stream(session, command).await?;
    while let Some(line) = lines.next().await {
        match line? {
            ExecStreamLine::Stdout { data, encoding } => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&encoding.decode(&data)?)?;
                stdout.flush()?;
            }
            ExecStreamLine::Stderr { data, encoding } => {
                let mut stderr = std::io::stderr().lock();
                stderr.write_all(&encoding.decode(&data)?)?;
                stderr.flush()?;
            }
            ExecStreamLine::Exit { exit_code } => return Ok(exit_code),
            ExecStreamLine::Error { message } => anyhow::bail!("{message}"),
        }
    }
    anyhow::bail!("the output stream ended before the command did")
}

/// `30s`, `15m`, `2h`, `1d` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 2h or 1d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Start a session from a template in a workspace.
    Create {
        /// The workspace (id).
        #[arg(long, short)]
        workspace: WorkspaceId,
        /// The template (name or id).
        #[arg(long, short, default_value = "python")]
        template: String,
        /// Stop it after this long (e.g. 2h).
        #[arg(long, value_parser = parse_duration)]
        max_duration: Option<u64>,
        /// Stop it once it has cost this many credits (e.g. 2.5).
        #[arg(long, value_parser = parse_credits)]
        max_cost: Option<MicroCredits>,
        /// Stop it after this long without activity (e.g. 30m).
        #[arg(long, value_parser = parse_duration)]
        idle_timeout: Option<u64>,
        /// Run on spot capacity.
        #[arg(long)]
        spot: bool,
        /// Environment variables, `KEY=VALUE` (repeatable).
        #[arg(long = "env", short = 'e', value_parser = parse_env)]
        env: Vec<(String, String)>,
    },
    /// List your sessions.
    #[command(alias = "ls")]
    List {
        /// Only those of this workspace.
        #[arg(long)]
        workspace: Option<WorkspaceId>,
        /// Only those in this status (running, stopped, failed…).
        #[arg(long, value_parser = parse_status)]
        status: Option<SessionStatus>,
    },
    /// Show one session.
    Get {
        /// The session.
        session: SessionId,
    },
    /// Stop a session (it is charged up to now).
    Stop {
        /// The session.
        session: SessionId,
    },
    /// Delete a session that has ended.
    #[command(alias = "rm")]
    Delete {
        /// The session.
        session: SessionId,
    },
    /// Run a command in a session: `onmemos session exec <id> -- ls -la`.
    ///
    /// Output is written as it comes, byte for byte, and `onmemos` exits with the command's
    /// exit code (137 when it was killed), as `ssh` and `kubectl exec` do.
    Exec {
        /// The session.
        session: SessionId,
        /// Kill it after this long (default 60s).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<u64>,
        /// Send this terminal's standard input to the command (UTF-8 text, up to 1 MiB).
        #[arg(short = 'i', long)]
        stdin: bool,
        /// An environment variable for the command (repeatable).
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show a session's events: every one of them, page after page.
    Events {
        /// The session.
        session: SessionId,
        /// Then keep printing new events as they happen, until the session's last one.
        #[arg(short, long)]
        follow: bool,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn parse_status(s: &str) -> Result<SessionStatus, String> {
    SessionStatus::parse(s).ok_or_else(|| {
        format!("unknown status {s:?}: pending, starting, running, stopping, stopped or failed")
    })
}

fn rows(sessions: &[Session]) -> Vec<Vec<String>> {
    sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.status.as_str().into(),
                s.stop_reason.map(|r| r.as_str()).unwrap_or("-").into(),
                credits(s.rate_micros_per_hour),
                credits(s.cost_micros),
                when(s.started_at),
                when(s.stopped_at),
            ]
        })
        .collect()
}

const HEADERS: &[&str] = &[
    "id",
    "status",
    "stop reason",
    "credits/h",
    "cost",
    "started",
    "stopped",
];

pub(crate) async fn run(
    client: &Client,
    command: SessionCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let sessions = client.sessions();
    match command {
        SessionCommand::Create {
            workspace,
            template,
            max_duration,
            max_cost,
            idle_timeout,
            spot,
            env,
        } => {
            let s = sessions
                .create(&CreateSession {
                    workspace_id: workspace,
                    template,
                    limits: LimitOverrides {
                        max_duration_secs: max_duration,
                        max_cost_micros: max_cost,
                        idle_timeout_secs: idle_timeout,
                    },
                    placement: if spot {
                        Placement::Spot
                    } else {
                        Placement::OnDemand
                    },
                    env: env.into_iter().collect(),
                })
                .await?;
            out.print(&s, HEADERS, rows(std::slice::from_ref(&s)))
        }
        SessionCommand::List { workspace, status } => {
            let mut params = SessionListParams {
                workspace_id: workspace,
                status,
                limit: Some(200),
                ..Default::default()
            };
            let mut items = Vec::new();
            loop {
                let page = sessions.list(&params).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            out.print(&items, HEADERS, rows(&items))
        }
        SessionCommand::Get { session } => {
            let s = sessions.get(session).await?;
            out.print(&s, HEADERS, rows(std::slice::from_ref(&s)))
        }
        SessionCommand::Stop { session } => {
            let s = sessions.stop(session).await?;
            out.print(&s, HEADERS, rows(std::slice::from_ref(&s)))
        }
        SessionCommand::Delete { session } => {
            sessions.delete(session).await?;
            out.done(&format!("deleted {session}"))
        }
        SessionCommand::Exec {
            session,
            timeout,
            stdin,
            env,
            command,
        } => {
            let stdin = if stdin {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| anyhow::anyhow!("standard input must be UTF-8 text: {e}"))?;
                Some(text)
            } else {
                None
            };
            let command = ExecCommand {
                command,
                env: env.into_iter().collect(),
                stdin,
                timeout_secs: timeout,
            };
            let code = if out.json {
                let result = sessions.exec(session, &command).await?;
                println!("{}", serde_json::to_string_pretty(&result)?);
                result.exit_code
            } else {
                stream_exec(sessions, session, &command).await?
            };
            match code {
                Some(0) => Ok(()),
                Some(code) => Err(super::CommandExit(u8::try_from(code).unwrap_or(1)).into()),
                None => {
                    eprintln!("(the command was killed: a signal, or its timeout)");
                    Err(super::CommandExit(137).into())
                }
            }
        }
        SessionCommand::Events {
            session,
            follow: false,
        } => {
            use futures_util::TryStreamExt as _;
            let events: Vec<_> = sessions
                .events_all(session, EventListParams::default())
                .try_collect()
                .await?;
            let rows = events.iter().map(|e| {
                vec![
                    e.seq.to_string(),
                    e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    e.message.clone(),
                ]
            });
            out.print(&events, &["seq", "at", "event"], rows)
        }
        SessionCommand::Events {
            session,
            follow: true,
        } => {
            // One line per event as it happens (a JSON object per line with --json).
            use futures_util::TryStreamExt as _;
            let mut events = sessions.follow_events(session, None).await?;
            while let Some(e) = events.try_next().await? {
                if out.json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{:>6}  {}  {}",
                        e.seq,
                        e.at.format("%Y-%m-%d %H:%M:%S"),
                        e.message
                    );
                }
            }
            Ok(())
        }
    }
}

/// `onmemos estimate`: one configuration, or several templates side by side.
#[derive(Debug, clap::Args)]
pub(crate) struct EstimateArgs {
    /// Template(s) to quote (name or id); several are compared.
    #[arg(long, short)]
    template: Vec<String>,
    /// How long it would run (e.g. 2h).
    #[arg(long, short, value_parser = parse_duration, default_value = "1h")]
    duration: u64,
    /// vCPU in thousandths, instead of the template's.
    #[arg(long)]
    cpu_millis: Option<u32>,
    /// Memory in MiB, instead of the template's.
    #[arg(long)]
    memory_mib: Option<u32>,
    /// GPUs, instead of the template's.
    #[arg(long)]
    gpu: Option<u32>,
    /// Quote spot capacity.
    #[arg(long)]
    spot: bool,
}

fn estimate_rows(estimates: &[(String, &Estimate)]) -> Vec<Vec<String>> {
    estimates
        .iter()
        .map(|(what, e)| {
            vec![
                what.clone(),
                credits(e.rate_micros_per_hour),
                credits(e.expected_cost_micros),
                credits(e.p50_cost_micros),
                credits(e.p90_cost_micros),
                format!("{:?} ({})", e.confidence, e.samples).to_lowercase(),
                if e.affordable { "yes" } else { "no" }.into(),
            ]
        })
        .collect()
}

pub(crate) async fn estimate(
    client: &Client,
    args: EstimateArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let explicit = args.cpu_millis.is_some() || args.memory_mib.is_some() || args.gpu.is_some();
    let resources = explicit.then(|| Resources {
        cpu_millis: args.cpu_millis.unwrap_or(1000),
        memory_mib: args.memory_mib.unwrap_or(1024),
        gpu: args.gpu.unwrap_or(0),
        disk_gib: 10,
    });
    let placement = if args.spot {
        Placement::Spot
    } else {
        Placement::OnDemand
    };
    let request = |template: Option<String>| EstimateRequest {
        template,
        resources,
        duration_secs: args.duration,
        placement,
    };
    let headers = &[
        "config",
        "credits/h",
        "expected",
        "p50",
        "p90",
        "confidence",
        "covered",
    ];
    if args.template.len() > 1 {
        let cmp = client
            .estimates()
            .compare(&CompareRequest {
                configurations: args
                    .template
                    .iter()
                    .cloned()
                    .map(Some)
                    .map(request)
                    .collect(),
            })
            .await?;
        let named: Vec<(String, &Estimate)> = args
            .template
            .iter()
            .cloned()
            .zip(cmp.estimates.iter())
            .collect();
        out.print(&cmp, headers, estimate_rows(&named))?;
        if !out.json {
            println!("cheapest: {}", args.template[cmp.cheapest]);
        }
        return Ok(());
    }
    let template = args.template.into_iter().next();
    let label = template.clone().unwrap_or_else(|| "custom".into());
    let e = client.estimates().quote(&request(template)).await?;
    out.print(&e, headers, estimate_rows(&[(label, &e)]))?;
    if !out.json && !e.alternatives.is_empty() {
        println!("cheaper:");
        for a in &e.alternatives {
            println!(
                "  {} — {} credits (saves {}){}",
                a.description,
                credits(a.expected_cost_micros),
                credits(a.saving_micros),
                if a.available {
                    ""
                } else {
                    ", not available on this server"
                }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_with_units_and_refuse_junk() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
