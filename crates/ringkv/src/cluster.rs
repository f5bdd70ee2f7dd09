//! `ringkv cluster ...`: stage layout changes, review the plan, commit it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ringkv_core::cluster::{ChangeSpec, ClusterInfo, LayoutInfo};
use ringkv_core::plan::Plan;

use crate::cli::AdminArgs;
use crate::kv::{client, write_stdout};

/// `ringkv cluster ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Stage a node joining: start it first with `ringkv server ... --join
    /// ADDR` so it announces its address, or give --addr.
    Join(JoinArgs),
    /// Stage a member leaving: it hands its partitions to the others.
    Leave(NodeArgs),
    /// Stage the removal of a member that is gone for good: its partitions
    /// are rebuilt from the other replicas.
    Remove(NodeArgs),
    /// Stage a member's zone (and capacity) change.
    Zone(ZoneArgs),
    /// Stage the removal of OLD and the join of NEW in one plan.
    Replace(ReplaceArgs),
    /// Drop the change staged for a node.
    Unstage(NodeArgs),
    /// Drop every staged change.
    Clear(AdminArgs),
    /// Show what committing the staged changes would do: partitions moving,
    /// data to receive per node, balance, replicas sharing a node or zone.
    Plan(AdminArgs),
    /// Commit the staged changes (the plan `cluster plan` shows).
    Commit(CommitArgs),
    /// Show the layout in force, the staged changes and a committed target.
    Status(AdminArgs),
}

/// A change about one node.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The node id.
    #[arg(value_name = "NODE")]
    pub node: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv cluster join`.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The node id.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Its peer address (host:port); by default the one it announced.
    #[arg(long)]
    pub addr: Option<String>,
    /// Its zone (rack, room, data centre).
    #[arg(long)]
    pub zone: Option<String>,
    /// Its relative weight (partitions in proportion). [default: 1]
    #[arg(long)]
    pub capacity: Option<u32>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv cluster zone`.
#[derive(Debug, Args)]
pub(crate) struct ZoneArgs {
    /// The node id.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Its new zone ("" for none).
    #[arg(value_name = "ZONE")]
    pub zone: String,
    /// Its new relative weight.
    #[arg(long)]
    pub capacity: Option<u32>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv cluster replace`.
#[derive(Debug, Args)]
pub(crate) struct ReplaceArgs {
    /// The member to remove.
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The node to join in its place (started with --join).
    #[arg(value_name = "NEW")]
    pub new: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv cluster commit`.
#[derive(Debug, Args)]
pub(crate) struct CommitArgs {
    /// The layout version the plan was made from (`cluster plan` shows
    /// it); by default the one in force now, after showing the plan.
    #[arg(long)]
    pub version: Option<u64>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

fn spec(op: &str, node: &str) -> ChangeSpec {
    ChangeSpec {
        op: op.into(),
        node: node.into(),
        addr: None,
        zone: None,
        capacity: None,
    }
}

/// Runs one `ringkv cluster` command.
pub(crate) async fn cluster(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    let (admin, changes) = match cmd {
        ClusterCommand::Join(a) => {
            let mut s = spec("join", &a.node);
            (s.addr, s.zone, s.capacity) = (a.addr, a.zone, a.capacity);
            (a.admin, vec![s])
        }
        ClusterCommand::Leave(a) => (a.admin, vec![spec("leave", &a.node)]),
        ClusterCommand::Remove(a) => (a.admin, vec![spec("remove", &a.node)]),
        ClusterCommand::Zone(a) => {
            let mut s = spec("zone", &a.node);
            (s.zone, s.capacity) = (Some(a.zone), a.capacity);
            (a.admin, vec![s])
        }
        ClusterCommand::Replace(a) => (a.admin, vec![spec("remove", &a.old), spec("join", &a.new)]),
        ClusterCommand::Unstage(a) => return unstage(a.admin, Some(&a.node)).await,
        ClusterCommand::Clear(a) => return unstage(a, None).await,
        ClusterCommand::Plan(a) => return plan(a).await,
        ClusterCommand::Commit(a) => return commit(a).await,
        ClusterCommand::Status(a) => {
            let info = client(&a.connection)?
                .cluster_layout()
                .await
                .context("cannot read the cluster layout")?;
            return print_info(&a, &info);
        }
    };
    let c = client(&admin.connection)?;
    let mut info = None;
    for change in &changes {
        info = Some(
            c.cluster_stage(change)
                .await
                .with_context(|| format!("cannot stage {} of {}", change.op, change.node))?,
        );
    }
    print_info(&admin, &info.expect("at least one change"))
}

async fn unstage(admin: AdminArgs, node: Option<&str>) -> anyhow::Result<ExitCode> {
    let info = client(&admin.connection)?
        .cluster_unstage(node)
        .await
        .context("cannot drop the staged change")?;
    print_info(&admin, &info)
}

async fn plan(admin: AdminArgs) -> anyhow::Result<ExitCode> {
    let plan = client(&admin.connection)?
        .cluster_plan()
        .await
        .context("cannot make the plan")?;
    let text = if admin.json {
        serde_json::to_string_pretty(&plan)? + "\n"
    } else {
        render_plan(&plan)
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

async fn commit(args: CommitArgs) -> anyhow::Result<ExitCode> {
    let c = client(&args.admin.connection)?;
    let version = match args.version {
        Some(v) => v,
        None => {
            let plan = c.cluster_plan().await.context("cannot make the plan")?;
            if !args.admin.json {
                write_stdout(render_plan(&plan).as_bytes())?;
            }
            plan.from_version
        }
    };
    let info = c
        .cluster_commit(version)
        .await
        .context("cannot commit the plan")?;
    print_info(&args.admin, &info)
}

fn print_info(admin: &AdminArgs, info: &ClusterInfo) -> anyhow::Result<ExitCode> {
    let text = if admin.json {
        serde_json::to_string_pretty(info)? + "\n"
    } else {
        render_info(info)
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn render_layout(out: &mut String, title: &str, l: &LayoutInfo) {
    let _ = writeln!(
        out,
        "{title}: version {}, {} partitions",
        l.version, l.ring_size
    );
    let _ = writeln!(
        out,
        "  {:<12} {:<22} {:<10} {:>8} {:>10}",
        "NODE", "ADDRESS", "ZONE", "CAPACITY", "PARTITIONS"
    );
    for m in &l.members {
        let zone = if m.zone.is_empty() { "-" } else { &m.zone };
        let _ = writeln!(
            out,
            "  {:<12} {:<22} {:<10} {:>8} {:>10}",
            m.id, m.addr, zone, m.capacity, m.partitions
        );
    }
}

fn render_info(info: &ClusterInfo) -> String {
    let mut out = String::new();
    render_layout(&mut out, "layout in force", &info.layout);
    if let Some(t) = &info.target {
        render_layout(&mut out, "moving to", t);
    }
    if info.staged.is_empty() {
        out.push_str("no staged changes\n");
    } else {
        out.push_str("staged changes (see `ringkv cluster plan`):\n");
        for c in &info.staged {
            let mut line = format!("  {} {}", c.op, c.node);
            if let Some(a) = &c.addr {
                let _ = write!(line, " addr={a}");
            }
            if let Some(z) = c.zone.as_ref().filter(|z| !z.is_empty()) {
                let _ = write!(line, " zone={z}");
            }
            if let Some(cap) = c.capacity {
                let _ = write!(line, " capacity={cap}");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn render_plan(p: &Plan) -> String {
    let mut out = format!(
        "plan: layout version {} -> {} (N = {})\n",
        p.from_version, p.to_version, p.n
    );
    let _ = writeln!(
        out,
        "  {:<12} {:<10} {:>8} {:>12} {:>12} {:>9} {:>10} {:>12}",
        "NODE", "ZONE", "CAPACITY", "OWNED", "REPLICAS", "RECEIVES", "KEYS", "BYTES"
    );
    let size = |x: u64| {
        if p.sizes_known {
            x.to_string()
        } else {
            "?".to_string()
        }
    };
    for n in &p.nodes {
        let zone = if n.zone.is_empty() { "-" } else { &n.zone };
        let _ = writeln!(
            out,
            "  {:<12} {:<10} {:>8} {:>12} {:>12} {:>9} {:>10} {:>12}",
            n.id,
            zone,
            n.capacity,
            format!("{} -> {}", n.owned_before, n.owned_after),
            format!("{} -> {}", n.replicas_before, n.replicas_after),
            n.receives,
            size(n.receive_keys),
            size(n.receive_bytes)
        );
    }
    if !p.sizes_known {
        out.push_str("(keys and bytes to receive: not measured by this version)\n");
    }
    let _ = writeln!(
        out,
        "partitions changing owner: {}; replica sets changing: {}",
        p.owners_changed,
        p.moves.len()
    );
    let _ = writeln!(
        out,
        "balance (max - min partitions owned): {} -> {}; largest distance from a node's \
         capacity share: {}",
        p.balance_before, p.balance_after, p.off_target_after
    );
    if !p.short_of_nodes.is_empty() {
        let _ = writeln!(
            out,
            "WARNING: {} partitions would have fewer than {} distinct nodes",
            p.short_of_nodes.len(),
            p.n
        );
    }
    if !p.shared_zones.is_empty() {
        let _ = writeln!(
            out,
            "WARNING: {} partitions would have more than one replica in one zone (e.g. \
             partition {})",
            p.shared_zones.len(),
            p.shared_zones[0]
        );
    }
    out
}
