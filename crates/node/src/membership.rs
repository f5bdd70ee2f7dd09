//! Gossip membership and SWIM failure detection, sans-IO, on top of [`foca`].
//!
//! Every node spreads a [`MemberInfo`] about itself (addresses, data-directory
//! incarnation, layout version, status). foca runs SWIM over those identities:
//! it probes a member per period, asks others to probe indirectly when a ping
//! goes unanswered, marks the member Suspect, and declares it Down when the
//! suspicion is not refuted in time. Cluster updates and our own metadata
//! broadcasts ride on the protocol's messages.
//!
//! Like the rest of the node this module does no I/O: bytes to send, timers to
//! set and what changed come out as [`GossipOut`]s, and randomness comes from
//! a seed, so the same seed and inputs give the same outputs.
//!
//! # Changes to the integration API as first drafted
//! - [`Membership::new`] takes a `generation` besides the seed: a number that
//!   must grow with every process start of the same node id (wall-clock
//!   milliseconds at start in the server, simulated time in the simulator).
//!   foca resolves two identities with the same node id by asking which one
//!   wins; the data-dir incarnation is random, so it cannot order restarts.
//!   A node that starts with a generation that is not larger (clock set back)
//!   still gets in, more slowly: its announces lose against the old identity,
//!   the peers answer "you are down" (`TurnUndead`), foca renews the identity
//!   (renew + 1) and tries again; one round trip per renewal the old start
//!   made (tested).
//! - [`GossipOut::Updated`] is new: a member appeared or its [`MemberInfo`]
//!   changed (for example its layout version), so the node can react without
//!   polling [`Membership::members`].
//! - [`GossipOut::Metadata`] carries the item's `key` and `version` too.
//! - [`Membership::broadcast`] returns a `Result`: an item too large for one
//!   gossip packet is refused instead of sitting in the buffer forever.
//!
//! # foca behaviour this relies on (checked in foca 2.0.0's source)
//! - An `Announce` is accepted when its destination has the receiver's
//!   address (node id), whatever the rest of the identity says, so announcing
//!   to a peer known by id (generation 0) reaches its current identity. For an
//!   address-only target we send to a placeholder identity (empty node id,
//!   never valid) through [`GossipOut::SendAddr`]; the receiver's
//!   [`Membership::handle_data`] rewrites the placeholder destination to
//!   itself. The reply is a `Feed` whose header names the real node, and
//!   foca adds the sender of every accepted message as Alive; destinations are
//!   never added, so the placeholder never becomes a member.
//! - foca reports only "member up/down"; Suspect is read from its membership
//!   state after every call and diffed against our last view.
//! - foca has no "suspect this member" call; [`Membership::suspect`] applies a
//!   Suspect update through `Foca::apply_many` (and gossips it). The member
//!   refutes by bumping its SWIM incarnation; if it is really gone, the next
//!   failed probe schedules the Down timer.
//! - Changing identity (`update_me`, rejoin) leaves foca disconnected until a
//!   message reaches the new identity; an empty `apply_many` right after it
//!   reconnects it (restarts the probe timers) at once.
//! - A suspicion ends only three ways: the suspect refutes it (it must hear
//!   of it first), a message from the suspect carries a higher incarnation
//!   than the suspected one, or the prober's Down timer fires. Nobody else
//!   holds a Down timer, and foca drops the prober's (stale timer token) when
//!   the prober changes identity or goes idle; the suspicion itself is sent
//!   on only `max_transmissions` times. A live suspect's probe replies carry
//!   the suspected incarnation, which clears nothing. So after a partition
//!   heals, a suspicion whose transmissions were all lost to the partition,
//!   and whose prober rejoined (the other side had declared it Down) or
//!   whose probes succeed again, stayed forever. [`Membership`] therefore
//!   tells every member it holds Suspect so, directly, once per probe period
//!   for as long as it does (a `Gossip` packet carrying the suspicion); a
//!   live suspect refutes, a dead one is declared Down by its next failed
//!   probe.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BufMut};
use foca::{
    AccumulatingRuntime, BroadcastHandler, Codec, Config, Foca, Header, Identity, Invalidates,
    Member, Message, OwnedNotification, PeriodicParams, PostcardCodec, State, Timer,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};

/// What every node spreads about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The node's stable id.
    pub id: NodeId,
    /// Where its peer (RPC) transport listens.
    pub rpc_addr: String,
    /// Where its HTTP API listens.
    pub http_addr: String,
    /// The incarnation of its data directory (see `ringkv_storage_fjall::datadir`).
    pub incarnation: u32,
    /// The highest layout version it has adopted: a node that sees a higher
    /// one than its own knows there is a layout to fetch.
    pub layout_version: u64,
    /// Whether it serves or is on its way out.
    pub status: MemberStatus,
}

/// A member's declared intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Serving as a member of the cluster.
    Active,
    /// Handing its data off before it leaves.
    Leaving,
}

/// A member's liveness as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liveness {
    /// Answers probes (or refuted the last suspicion).
    Alive,
    /// Missed a probe or timed out a request; may still refute.
    Suspect,
    /// Declared failed (or replaced by a newer start of the same node).
    Down,
}

/// Timing and size settings of the protocol. Build with [`GossipConfig::lan`]
/// (real clusters) or [`GossipConfig::fast`] (tests, simulation) and adjust
/// fields if needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// How often a member is probed (one member per period, round robin).
    pub probe_period_ms: u64,
    /// How long a direct ping may take before indirect probes start; must be
    /// below `probe_period_ms`.
    pub probe_rtt_ms: u64,
    /// How many members are asked to probe indirectly (and gossiped to).
    pub num_indirect_probes: usize,
    /// How many times each update or metadata item is sent on.
    pub max_transmissions: u8,
    /// How long a member stays Suspect before it is declared Down.
    pub suspect_to_down_ms: u64,
    /// How long a Down member is remembered by foca (it keeps the same id
    /// from rejoining with an identity that does not win; see
    /// [`Membership::new`]). This module remembers it as Down regardless.
    pub remove_down_after_ms: u64,
    /// Largest gossip packet, in bytes (we send over TCP frames).
    pub max_packet_size: usize,
    /// How often pending updates are pushed to a few members.
    pub periodic_gossip_ms: u64,
    /// How often a random member is re-announced to (heals split views).
    pub periodic_announce_ms: u64,
    /// How often a couple of Down members are announced to (heals partitions).
    pub periodic_announce_down_ms: u64,
    /// While this node knows no live member, how often it re-announces to
    /// its join targets and to the members it knows as Down.
    pub join_retry_ms: u64,
}

impl GossipConfig {
    /// foca's LAN profile for a cluster of about `cluster_size` nodes, with
    /// large packets (TCP frames) and at least 4 transmissions per update.
    /// Probe every 1 s; a member that stops answering is Suspect after about
    /// 1-2 probe periods of whoever probes it and Down 4 s later (more above
    /// 10 nodes: 4 s x log10(size)).
    pub fn lan(cluster_size: u32) -> Self {
        let foca = Config::new_lan(NonZeroU32::new(cluster_size.max(1)).expect("max(1)"));
        GossipConfig {
            probe_period_ms: ms(foca.probe_period),
            probe_rtt_ms: ms(foca.probe_rtt),
            num_indirect_probes: foca.num_indirect_probes.get(),
            max_transmissions: foca.max_transmissions.get().max(4),
            suspect_to_down_ms: ms(foca.suspect_to_down_after),
            remove_down_after_ms: foca.remove_down_after.map(ms).unwrap_or(24 * 3600 * 1000),
            max_packet_size: 60 * 1024,
            periodic_gossip_ms: 200,
            periodic_announce_ms: 30_000,
            // foca's LAN default is 65 s; after a partition heals, both
            // sides hold each other Down until one announces, and meanwhile
            // writes go to fallbacks and hints wait. Two small messages every
            // 5 s while a member is Down is a cheap price for a 5 s bound.
            periodic_announce_down_ms: 5_000,
            join_retry_ms: 1_000,
        }
    }

    /// A fast profile for tests and simulation: probe every 100 ms, Down
    /// 500 ms after Suspect.
    pub fn fast() -> Self {
        GossipConfig {
            probe_period_ms: 100,
            probe_rtt_ms: 40,
            num_indirect_probes: 3,
            max_transmissions: 6,
            suspect_to_down_ms: 500,
            remove_down_after_ms: 600_000,
            max_packet_size: 60 * 1024,
            periodic_gossip_ms: 50,
            periodic_announce_ms: 2_000,
            periodic_announce_down_ms: 500,
            join_retry_ms: 200,
        }
    }

    /// Largest metadata item [`Membership::broadcast`] accepts (key + data +
    /// a few bytes): what is left of a packet after a generous header.
    pub fn max_metadata_size(&self) -> usize {
        self.max_packet_size
            .saturating_sub(4096)
            .min(u16::MAX as usize)
    }

    /// Checks that the timings fit together: every period and count at
    /// least 1, a direct ping's timeout below the probe period, packets of
    /// at least 1 KiB. Nothing is clamped.
    pub fn validate(&self) -> Result<(), GossipConfigError> {
        let at_least = |name: &'static str, value: u64, min: u64| {
            if value < min {
                Err(GossipConfigError::TooSmall { name, value, min })
            } else {
                Ok(())
            }
        };
        at_least("probe_period_ms", self.probe_period_ms, 2)?;
        at_least("probe_rtt_ms", self.probe_rtt_ms, 1)?;
        at_least("num_indirect_probes", self.num_indirect_probes as u64, 1)?;
        at_least("max_transmissions", u64::from(self.max_transmissions), 1)?;
        at_least("max_packet_size", self.max_packet_size as u64, 1024)?;
        at_least("periodic_gossip_ms", self.periodic_gossip_ms, 1)?;
        at_least("periodic_announce_ms", self.periodic_announce_ms, 1)?;
        at_least(
            "periodic_announce_down_ms",
            self.periodic_announce_down_ms,
            1,
        )?;
        at_least("join_retry_ms", self.join_retry_ms, 1)?;
        if self.probe_rtt_ms >= self.probe_period_ms {
            return Err(GossipConfigError::RttNotBelowPeriod {
                probe_rtt_ms: self.probe_rtt_ms,
                probe_period_ms: self.probe_period_ms,
            });
        }
        Ok(())
    }

    /// foca's config for these settings, which must be valid.
    fn to_foca(&self) -> Config {
        if let Err(e) = self.validate() {
            panic!("invalid gossip config (validate it where it is built): {e}");
        }
        let d = Duration::from_millis;
        let nonzero = |n: usize| NonZeroUsize::new(n).expect("validated: at least 1");
        let mut c = Config::simple();
        c.probe_period = d(self.probe_period_ms);
        c.probe_rtt = d(self.probe_rtt_ms);
        c.num_indirect_probes = nonzero(self.num_indirect_probes);
        c.max_transmissions =
            NonZeroU8::new(self.max_transmissions).expect("validated: at least 1");
        c.suspect_to_down_after = d(self.suspect_to_down_ms);
        c.remove_down_after = Some(d(self.remove_down_after_ms));
        c.max_packet_size = nonzero(self.max_packet_size);
        c.notify_down_members = true;
        let one = |ms: u64, n: usize| {
            Some(PeriodicParams {
                frequency: d(ms),
                num_members: nonzero(n),
            })
        };
        c.periodic_gossip = one(self.periodic_gossip_ms, self.num_indirect_probes);
        c.periodic_announce = one(self.periodic_announce_ms, 1);
        c.periodic_announce_to_down_members = one(self.periodic_announce_down_ms, 2);
        c
    }
}

/// A [`GossipConfig`] whose settings do not fit together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GossipConfigError {
    /// A setting is below its minimum.
    #[error("{name}={value} is too small: use at least {min}")]
    TooSmall {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// A direct ping's timeout must end before the next probe.
    #[error("probe_rtt_ms={probe_rtt_ms} must be below probe_period_ms={probe_period_ms}")]
    RttNotBelowPeriod {
        /// The ping timeout given.
        probe_rtt_ms: u64,
        /// The probe period given.
        probe_period_ms: u64,
    },
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the runtime must do, or what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipOut {
    /// Send these bytes to the member `to` (known id).
    Send {
        /// The member.
        to: NodeId,
        /// One gossip packet, for its [`Membership::handle_data`].
        data: Vec<u8>,
    },
    /// Send to an address whose member id is not known yet (only for
    /// `--join` announces, [`Membership::join_addrs`]).
    SendAddr {
        /// The RPC address given to `join_addrs`.
        addr: String,
        /// One gossip packet.
        data: Vec<u8>,
    },
    /// Call [`Membership::handle_timer`]`(now, token)` at `at_ms` or later.
    Timer {
        /// When (same clock as the `now_ms` passed in).
        at_ms: u64,
        /// Echo this back.
        token: u64,
    },
    /// A member's liveness as this node sees it changed (also emitted when a
    /// new member appears, after its [`GossipOut::Updated`]).
    Changed {
        /// The member.
        id: NodeId,
        /// Its liveness now.
        liveness: Liveness,
    },
    /// A member appeared or its info changed (addresses, incarnation, layout
    /// version, status).
    Updated {
        /// Its info now.
        info: MemberInfo,
    },
    /// A custom broadcast (cluster metadata) arrived from another node and was
    /// new to us.
    Metadata {
        /// The item's key, as given to [`Membership::broadcast`].
        key: Vec<u8>,
        /// Its version.
        version: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
}

/// Why gossip input was refused. Nothing changed when one is returned by
/// [`Membership::handle_data`]: drop the packet (log at debug level; a peer
/// that keeps sending garbage is worth a warning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// The packet is larger than [`GossipConfig::max_packet_size`].
    #[error("gossip packet of {len} bytes is over the {max}-byte limit")]
    TooBig {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The packet does not decode as a gossip message.
    #[error("malformed gossip packet: {0}")]
    Malformed(String),
    /// foca refused a well-formed packet (for example one sent by an older
    /// start of this very node).
    #[error("gossip packet refused: {0}")]
    Refused(String),
    /// A metadata item is larger than [`GossipConfig::max_metadata_size`].
    #[error("metadata item of {len} bytes is over the {max}-byte limit")]
    MetadataTooBig {
        /// Its encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

// ---------------------------------------------------------------------------
// foca plumbing: identity, RNG, custom broadcasts.

/// foca's identity: our info plus the rank that orders starts of the same
/// node. Its address is the node id, so two identities of one node conflict
/// and the higher `(generation, renew)` wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ident {
    info: MemberInfo,
    generation: u64,
    renew: u32,
}

impl Ident {
    /// An announce target known only by address. The empty node id is never
    /// valid, so it can never be a member.
    fn placeholder(addr: &str) -> Self {
        Ident {
            info: MemberInfo {
                id: NodeId::from(""),
                rpc_addr: addr.to_string(),
                http_addr: String::new(),
                incarnation: 0,
                layout_version: 0,
                status: MemberStatus::Active,
            },
            generation: 0,
            renew: 0,
        }
    }

    fn is_placeholder(&self) -> bool {
        self.info.id.as_str().is_empty()
    }

    fn rank(&self) -> (u64, u32) {
        (self.generation, self.renew)
    }

    /// A total order for identities of the same node (ties in rank broken on
    /// the info, so two distinct identities never both "win").
    fn order_key(&self) -> impl Ord + '_ {
        let i = &self.info;
        (
            self.rank(),
            i.incarnation,
            i.layout_version,
            i.status == MemberStatus::Leaving,
            i.rpc_addr.as_str(),
            i.http_addr.as_str(),
        )
    }

    fn bumped(&self) -> Self {
        let (generation, renew) = match self.renew.checked_add(1) {
            Some(r) => (self.generation, r),
            None => (self.generation.saturating_add(1), 0),
        };
        Ident {
            info: self.info.clone(),
            generation,
            renew,
        }
    }
}

impl Identity for Ident {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(self.bumped())
    }

    fn addr(&self) -> NodeId {
        self.info.id.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.order_key() > adversary.order_key()
    }
}

/// rand_chacha 0.9's ChaCha8Rng (reproducible across rand releases) behind
/// the rand 0.10 trait foca 2 takes.
struct SeededRng(ChaCha8Rng);

impl rand_core_010::TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

/// One metadata item on the wire.
#[derive(Serialize, Deserialize)]
struct MetaItem {
    key: Vec<u8>,
    version: u64,
    data: Vec<u8>,
}

/// foca's broadcast key: a newer item of the same key replaces an older one
/// still waiting in the buffer.
struct MetaKey(Vec<u8>);

impl Invalidates for MetaKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// What the broadcast handler knows; shared with [`Membership`] because foca
/// owns the handler and offers no way back to it.
#[derive(Default)]
struct MetaState {
    /// Highest version seen per key.
    seen: BTreeMap<Vec<u8>, u64>,
    /// Items from other nodes, new to us, not yet handed out.
    delivered: Vec<MetaItem>,
}

struct MetaHandler(Arc<Mutex<MetaState>>);

#[derive(Debug, thiserror::Error)]
#[error("bad metadata item: {0}")]
struct MetaError(String);

fn lock(m: &Mutex<MetaState>) -> MutexGuard<'_, MetaState> {
    // A panic while holding it cannot leave the map half-written in a way
    // that matters (inserts are atomic), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BroadcastHandler<Ident> for MetaHandler {
    type Key = MetaKey;
    type Error = MetaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Ident>,
    ) -> Result<Option<MetaKey>, MetaError> {
        let item = decode_meta(data).map_err(MetaError)?;
        let mut st = lock(&self.0);
        if st.seen.get(&item.key).is_some_and(|v| *v >= item.version) {
            return Ok(None);
        }
        st.seen.insert(item.key.clone(), item.version);
        let key = MetaKey(item.key.clone());
        if sender.is_some() {
            st.delivered.push(item);
        }
        Ok(Some(key))
    }
}

fn decode_meta(data: &[u8]) -> Result<MetaItem, String> {
    match postcard::take_from_bytes::<MetaItem>(data) {
        Ok((item, [])) => Ok(item),
        Ok((_, rest)) => Err(format!("{} trailing bytes", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

type Rt = AccumulatingRuntime<Ident>;
type FocaInst = Foca<Ident, PostcardCodec, SeededRng, MetaHandler>;

enum TimerKind {
    Foca(Timer<Ident>),
    JoinRetry,
    /// Tell this member, if it is still Suspect here, that it is.
    RemindSuspect(NodeId),
}

/// Whom to (re-)announce to until we know a live member.
#[derive(Clone)]
enum JoinTarget {
    Known(Ident),
    Addr(String),
}

/// Gossip membership and failure detection for one node.
///
/// Feed it bytes from peers ([`Membership::handle_data`]) and the timers it
/// asked for ([`Membership::handle_timer`]); perform the [`GossipOut`]s it
/// returns. Deterministic: same seed, generation and inputs, same outputs.
pub struct Membership {
    foca: FocaInst,
    cfg: GossipConfig,
    rt: Rt,
    codec: PostcardCodec,
    meta: Arc<Mutex<MetaState>>,
    timers: BTreeMap<u64, TimerKind>,
    next_token: u64,
    /// Every other member we have known, as last reported.
    view: BTreeMap<NodeId, (MemberInfo, Liveness)>,
    join_targets: Vec<JoinTarget>,
    join_timer_armed: bool,
    /// Suspect members with a [`TimerKind::RemindSuspect`] pending.
    reminding: BTreeSet<NodeId>,
    last_now_ms: u64,
}

impl Membership {
    /// A node that knows nobody yet; call [`Membership::join_known`] or
    /// [`Membership::join_addrs`] next.
    ///
    /// `generation` must be larger at every process start of the same node
    /// id (wall-clock ms at start, or simulated time): it makes a restarted
    /// node supersede its old self at once. `seed` drives every random choice.
    pub fn new(me: MemberInfo, generation: u64, seed: u64, cfg: GossipConfig) -> Self {
        let meta = Arc::new(Mutex::new(MetaState::default()));
        let ident = Ident {
            info: me,
            generation,
            renew: 0,
        };
        let foca = Foca::with_custom_broadcast(
            ident,
            cfg.to_foca(),
            SeededRng(ChaCha8Rng::seed_from_u64(seed)),
            PostcardCodec,
            MetaHandler(meta.clone()),
        );
        Membership {
            foca,
            cfg,
            rt: Rt::new(),
            codec: PostcardCodec,
            meta,
            timers: BTreeMap::new(),
            next_token: 1,
            view: BTreeMap::new(),
            join_targets: Vec::new(),
            join_timer_armed: false,
            reminding: BTreeSet::new(),
            last_now_ms: 0,
        }
    }

    /// Announce ourselves to seed nodes we know by id and info (the initial
    /// cluster). Entries for ourselves are skipped. Re-announces every
    /// `join_retry_ms` for as long as no member is alive.
    pub fn join_known(&mut self, now_ms: u64, peers: &[MemberInfo], out: &mut Vec<GossipOut>) {
        let my_id = self.me().id.clone();
        for p in peers.iter().filter(|p| p.id != my_id) {
            self.join_targets.push(JoinTarget::Known(Ident {
                info: p.clone(),
                generation: 0,
                renew: 0,
            }));
        }
        self.join(now_ms, out);
    }

    /// Announce ourselves to nodes known only by RPC address (`--join ADDR`);
    /// the packets come out as [`GossipOut::SendAddr`]. Retried like
    /// [`Membership::join_known`].
    pub fn join_addrs(&mut self, now_ms: u64, addrs: &[String], out: &mut Vec<GossipOut>) {
        for a in addrs {
            self.join_targets.push(JoinTarget::Addr(a.clone()));
        }
        self.join(now_ms, out);
    }

    fn join(&mut self, now_ms: u64, out: &mut Vec<GossipOut>) {
        self.last_now_ms = now_ms;
        self.announce_targets();
        if !self.join_timer_armed {
            self.join_timer_armed = true;
            let token = self.token(TimerKind::JoinRetry);
            out.push(GossipOut::Timer {
                at_ms: now_ms.saturating_add(self.cfg.join_retry_ms),
                token,
            });
        }
        self.finish(now_ms, out);
    }

    fn announce_targets(&mut self) {
        let mut dsts: Vec<Ident> = self
            .join_targets
            .iter()
            .map(|t| match t {
                JoinTarget::Known(i) => i.clone(),
                JoinTarget::Addr(a) => Ident::placeholder(a),
            })
            .collect();
        // Members we know as Down may be back (we may be the isolated one).
        let my_id = self.me().id.clone();
        dsts.extend(
            self.foca
                .iter_membership_state()
                .filter(|m| m.state() == State::Down && m.id().info.id != my_id)
                .map(|m| m.id().clone()),
        );
        for d in dsts {
            if let Err(e) = self.foca.announce(d, &mut self.rt) {
                tracing::debug!(error = %e, "gossip announce failed");
            }
        }
    }

    /// Bytes from the network, from any sender. Garbage is refused with an
    /// error and changes nothing (the whole packet is checked before foca
    /// sees it).
    pub fn handle_data(
        &mut self,
        now_ms: u64,
        data: &[u8],
        out: &mut Vec<GossipOut>,
    ) -> Result<(), GossipError> {
        self.last_now_ms = now_ms;
        let rewritten = self.check_packet(data)?;
        let res = self
            .foca
            .handle_data(rewritten.as_deref().unwrap_or(data), &mut self.rt);
        self.finish(now_ms, out);
        res.map_err(|e| GossipError::Refused(e.to_string()))
    }

    /// A timer asked for by [`GossipOut::Timer`] is due. Unknown (already
    /// handled) tokens are ignored.
    pub fn handle_timer(&mut self, now_ms: u64, token: u64, out: &mut Vec<GossipOut>) {
        self.last_now_ms = now_ms;
        match self.timers.remove(&token) {
            None => return,
            Some(TimerKind::Foca(t)) => {
                // Errors here are stale timers (not connected any more).
                if let Err(e) = self.foca.handle_timer(t, &mut self.rt) {
                    tracing::trace!(error = %e, "gossip timer ignored");
                }
            }
            Some(TimerKind::JoinRetry) => {
                if self.foca.num_members() == 0 {
                    self.announce_targets();
                }
                let token = self.token(TimerKind::JoinRetry);
                out.push(GossipOut::Timer {
                    at_ms: now_ms.saturating_add(self.cfg.join_retry_ms),
                    token,
                });
            }
            Some(TimerKind::RemindSuspect(id)) => {
                // `finish` arms the next reminder if it is still Suspect.
                self.reminding.remove(&id);
                out.extend(self.remind_suspect(&id));
            }
        }
        self.finish(now_ms, out);
    }

    /// A `Gossip` packet to `id`, if we hold it Suspect, carrying just that
    /// suspicion: a live suspect refutes it (bumps its incarnation), which
    /// is the only way a suspicion of a member that answers probes ends. A
    /// suspicion of an older incarnation changes nothing there; the next
    /// message from the suspect clears it here.
    ///
    /// foca does not tell us our own incarnation: the header says 0, which
    /// never outranks what the receiver knows of us.
    fn remind_suspect(&mut self, id: &NodeId) -> Option<GossipOut> {
        let suspect = self
            .foca
            .iter_membership_state()
            .find(|m| &m.id().info.id == id && m.state() == State::Suspect)?;
        let suspicion = Member::new(suspect.id().clone(), suspect.incarnation(), State::Suspect);
        let header = Header {
            src: self.foca.identity().clone(),
            src_incarnation: Default::default(),
            dst: suspect.id().clone(),
            message: Message::Gossip,
        };
        let mut data = Vec::new();
        let encoded =
            Codec::<Ident>::encode_header(&mut self.codec, &header, &mut data).and_then(|()| {
                data.put_u16(1);
                Codec::<Ident>::encode_member(&mut self.codec, &suspicion, &mut data)
            });
        if let Err(e) = encoded {
            tracing::debug!(error = %e, "gossip suspicion reminder not encoded");
            return None;
        }
        Some(GossipOut::Send {
            to: id.clone(),
            data,
        })
    }

    /// Mark a live member Suspect from outside (a request to it timed out).
    /// The suspicion is gossiped (and repeated to the member itself while it
    /// lasts); the member refutes it if it is alive, and the next failed
    /// probe of it starts the countdown to Down if not.
    /// No-op for ourselves, unknown members and members not Alive.
    pub fn suspect(&mut self, now_ms: u64, id: &NodeId, out: &mut Vec<GossipOut>) {
        self.last_now_ms = now_ms;
        let target = self
            .foca
            .iter_membership_state()
            .find(|m| &m.id().info.id == id && m.state() == State::Alive)
            .map(|m| Member::new(m.id().clone(), m.incarnation(), State::Suspect));
        if let Some(update) = target
            && id != &self.me().id
        {
            let r = self
                .foca
                .apply_many(std::iter::once(update), true, &mut self.rt)
                .and_then(|()| self.foca.gossip(&mut self.rt));
            if let Err(e) = r {
                tracing::debug!(error = %e, "gossip suspect failed");
            }
        }
        self.finish(now_ms, out);
    }

    /// Update our own info (layout version, status, addresses) and spread it.
    /// `info.id` must be ours (a different id is ignored). No-op if unchanged.
    pub fn update_me(&mut self, now_ms: u64, info: MemberInfo, out: &mut Vec<GossipOut>) {
        self.last_now_ms = now_ms;
        let cur = self.foca.identity();
        if info.id != cur.info.id || info == cur.info {
            debug_assert_eq!(info.id, cur.info.id, "update_me with another node's id");
            return;
        }
        let mut next = cur.bumped();
        next.info = info;
        self.change_identity(next);
        self.finish(now_ms, out);
    }

    fn change_identity(&mut self, next: Ident) {
        let r = self
            .foca
            .change_identity(next, &mut self.rt)
            // Reconnect now rather than when a message reaches the new identity.
            .and_then(|()| self.foca.apply_many(std::iter::empty(), true, &mut self.rt));
        if let Err(e) = r {
            tracing::warn!(error = %e, "gossip identity change failed");
        }
    }

    /// Spread a piece of cluster metadata to every node. A newer `version`
    /// of the same `key` replaces an older one still in the buffer; receivers
    /// take (and pass on) only versions newer than any they saw for the key,
    /// and report them as [`GossipOut::Metadata`]. An older or equal version
    /// than one already seen here is ignored (`Ok`).
    pub fn broadcast(
        &mut self,
        key: &[u8],
        version: u64,
        data: Vec<u8>,
        out: &mut Vec<GossipOut>,
    ) -> Result<(), GossipError> {
        let item = MetaItem {
            key: key.to_vec(),
            version,
            data,
        };
        let bytes =
            postcard::to_stdvec(&item).map_err(|e| GossipError::Malformed(e.to_string()))?;
        let max = self.cfg.max_metadata_size();
        if bytes.len() > max {
            return Err(GossipError::MetadataTooBig {
                len: bytes.len(),
                max,
            });
        }
        match self.foca.add_broadcast(&bytes) {
            Ok(true) => {
                if let Err(e) = self.foca.broadcast(&mut self.rt) {
                    tracing::debug!(error = %e, "gossip broadcast send failed");
                }
            }
            Ok(false) => {}
            Err(e) => return Err(GossipError::Refused(e.to_string())),
        }
        let now = self.last_now_ms;
        self.finish(now, out);
        Ok(())
    }

    /// Every member we know, ourselves included (always Alive), sorted by id.
    /// Members foca forgot (long Down) stay here as Down.
    pub fn members(&self) -> Vec<(MemberInfo, Liveness)> {
        let me = self.me();
        let mut v: Vec<(MemberInfo, Liveness)> = self
            .view
            .values()
            .filter(|(i, _)| i.id != me.id)
            .cloned()
            .collect();
        v.push((me.clone(), Liveness::Alive));
        v.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        v
    }

    /// A member's liveness as we see it; `None` if never heard of.
    pub fn liveness(&self, id: &NodeId) -> Option<Liveness> {
        if id == &self.me().id {
            return Some(Liveness::Alive);
        }
        self.view.get(id).map(|(_, l)| *l)
    }

    /// Our own info as currently spread.
    pub fn me(&self) -> &MemberInfo {
        &self.foca.identity().info
    }

    /// The configuration in use.
    pub fn config(&self) -> &GossipConfig {
        &self.cfg
    }

    fn token(&mut self, kind: TimerKind) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        self.timers.insert(t, kind);
        t
    }

    /// After every foca call: react to notifications, then turn what foca
    /// accumulated into outputs and diff the view.
    fn finish(&mut self, now_ms: u64, out: &mut Vec<GossipOut>) {
        // Notifications first: a rejoin must reconnect before we drain.
        self.on_notifications();
        self.drain_sends(out);
        while let Some((after, timer)) = self.rt.to_schedule() {
            let token = self.token(TimerKind::Foca(timer));
            out.push(GossipOut::Timer {
                at_ms: now_ms.saturating_add(ms(after)),
                token,
            });
        }
        let delivered = std::mem::take(&mut lock(&self.meta).delivered);
        for item in delivered {
            out.push(GossipOut::Metadata {
                key: item.key,
                version: item.version,
                data: item.data,
            });
        }
        self.diff_view(out);
        self.arm_reminders(now_ms, out);
    }

    /// Reacts to foca's notifications: after a rejoin (a new identity),
    /// reconnect at once; a defunct node (declared down, cannot rejoin) is
    /// logged.
    fn on_notifications(&mut self) {
        let defunct = || tracing::warn!("gossip: this node was declared down and could not rejoin");
        let mut rejoined = false;
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Rejoin(_) => rejoined = true,
                OwnedNotification::Defunct => defunct(),
                _ => {}
            }
        }
        if rejoined && let Err(e) = self.foca.apply_many(std::iter::empty(), true, &mut self.rt) {
            tracing::debug!(error = %e, "gossip reconnect after rejoin failed");
        }
        while let Some(n) = self.rt.to_notify() {
            if n == OwnedNotification::Defunct {
                defunct();
            }
        }
    }

    /// The packets foca wants sent: to a member by id, or to a bare address
    /// for a join announce.
    fn drain_sends(&mut self, out: &mut Vec<GossipOut>) {
        while let Some((to, data)) = self.rt.to_send() {
            let data = data.to_vec();
            if to.is_placeholder() {
                out.push(GossipOut::SendAddr {
                    addr: to.info.rpc_addr,
                    data,
                });
            } else {
                out.push(GossipOut::Send {
                    to: to.info.id,
                    data,
                });
            }
        }
    }

    /// A reminder timer for every member Suspect here that has none.
    fn arm_reminders(&mut self, now_ms: u64, out: &mut Vec<GossipOut>) {
        let due: Vec<NodeId> = self
            .view
            .iter()
            .filter(|(id, (_, l))| *l == Liveness::Suspect && !self.reminding.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.reminding.insert(id.clone());
            let token = self.token(TimerKind::RemindSuspect(id));
            out.push(GossipOut::Timer {
                at_ms: now_ms.saturating_add(self.cfg.probe_period_ms.max(1)),
                token,
            });
        }
    }

    fn diff_view(&mut self, out: &mut Vec<GossipOut>) {
        let my_id = &self.foca.identity().info.id;
        let mut now: BTreeMap<&NodeId, (&MemberInfo, Liveness)> = BTreeMap::new();
        for m in self.foca.iter_membership_state() {
            let i = m.id();
            if &i.info.id == my_id || i.is_placeholder() {
                continue;
            }
            let l = match m.state() {
                State::Alive => Liveness::Alive,
                State::Suspect => Liveness::Suspect,
                State::Down => Liveness::Down,
            };
            now.insert(&i.info.id, (&i.info, l));
        }
        for (id, (info, l)) in &now {
            match self.view.get_mut(*id) {
                None => {
                    out.push(GossipOut::Updated {
                        info: (*info).clone(),
                    });
                    out.push(GossipOut::Changed {
                        id: (*id).clone(),
                        liveness: *l,
                    });
                    self.view.insert((*id).clone(), ((*info).clone(), *l));
                }
                Some((old_info, old_l)) => {
                    if old_info != *info {
                        *old_info = (*info).clone();
                        out.push(GossipOut::Updated {
                            info: (*info).clone(),
                        });
                    }
                    if old_l != l {
                        *old_l = *l;
                        out.push(GossipOut::Changed {
                            id: (*id).clone(),
                            liveness: *l,
                        });
                    }
                }
            }
        }
        // Forgotten by foca (removed after being Down for long): Down here.
        for (id, (_, l)) in self.view.iter_mut() {
            if !now.contains_key(id) && *l != Liveness::Down {
                *l = Liveness::Down;
                out.push(GossipOut::Changed {
                    id: id.clone(),
                    liveness: Liveness::Down,
                });
            }
        }
    }

    /// Decodes the whole packet without touching any state, so that foca only
    /// ever sees packets it can apply completely. Returns a rewritten packet
    /// for an `Announce` addressed to a placeholder (address-only) identity.
    fn check_packet(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, GossipError> {
        let max = self.foca_max_packet();
        if data.len() > max {
            return Err(GossipError::TooBig {
                len: data.len(),
                max,
            });
        }
        let bad =
            |what: &str, e: &dyn std::fmt::Display| GossipError::Malformed(format!("{what}: {e}"));
        let mut buf = data;
        let header: Header<Ident> = Codec::<Ident>::decode_header(&mut self.codec, &mut buf)
            .map_err(|e| bad("header", &e))?;
        check_ident(&header.src, "sender")?;
        let announce = header.message == Message::Announce;
        if !(announce && header.dst.is_placeholder()) {
            check_ident(&header.dst, "destination")?;
        }
        match &header.message {
            Message::PingReq { target: i, .. }
            | Message::IndirectAck { target: i, .. }
            | Message::IndirectPing { origin: i, .. }
            | Message::ForwardedAck { origin: i, .. } => check_ident(i, "probe subject")?,
            _ => {}
        }
        if announce {
            if !buf.is_empty() {
                return Err(GossipError::Malformed(
                    "announce with a payload".to_string(),
                ));
            }
            if header.dst.is_placeholder() {
                let mut h = header;
                h.dst = self.foca.identity().clone();
                let mut v = Vec::new();
                Codec::<Ident>::encode_header(&mut self.codec, &h, &mut v)
                    .map_err(|e| bad("re-encoding announce", &e))?;
                return Ok(Some(v));
            }
            return Ok(None);
        }
        if buf.len() == 1 {
            return Err(GossipError::Malformed("one trailing byte".to_string()));
        }
        if buf.len() >= 2 && header.message != Message::Broadcast {
            let n = buf.get_u16();
            for _ in 0..n {
                let m: Member<Ident> = Codec::<Ident>::decode_member(&mut self.codec, &mut buf)
                    .map_err(|e| bad("member update", &e))?;
                check_ident(m.id(), "member update")?;
            }
        }
        if !buf.is_empty() && buf.len() < 3 {
            return Err(GossipError::Malformed("truncated broadcast".to_string()));
        }
        while buf.len() > 2 {
            let len = buf.get_u16() as usize;
            if len == 0 || buf.len() < len {
                return Err(GossipError::Malformed("bad broadcast length".to_string()));
            }
            decode_meta(&buf[..len]).map_err(|e| bad("metadata item", &e))?;
            buf.advance(len);
        }
        if !buf.is_empty() {
            return Err(GossipError::Malformed("trailing bytes".to_string()));
        }
        Ok(None)
    }

    fn foca_max_packet(&self) -> usize {
        self.cfg.max_packet_size.max(1024)
    }
}

fn check_ident(i: &Ident, what: &str) -> Result<(), GossipError> {
    NodeId::parse(i.info.id.as_str())
        .map(|_| ())
        .map_err(|e| GossipError::Malformed(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> MemberInfo {
        MemberInfo {
            id: NodeId::from(id),
            rpc_addr: format!("{id}:7000"),
            http_addr: format!("{id}:8000"),
            incarnation: 1,
            layout_version: 1,
            status: MemberStatus::Active,
        }
    }

    #[test]
    fn newer_generation_and_renew_win_the_address_conflict() {
        let a = Ident {
            info: info("n1"),
            generation: 5,
            renew: 9,
        };
        let b = Ident {
            info: info("n1"),
            generation: 6,
            renew: 0,
        };
        assert!(b.win_addr_conflict(&a) && !a.win_addr_conflict(&b));
        let c = a.renew().unwrap();
        assert!(c.win_addr_conflict(&a) && !a.win_addr_conflict(&c));
        assert_eq!(a.addr(), b.addr());
        // Same rank, different info: exactly one wins.
        let mut d = a.clone();
        d.info.layout_version = 2;
        assert!(d.win_addr_conflict(&a) != a.win_addr_conflict(&d));
    }

    #[test]
    fn membership_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Membership>();
    }

    #[test]
    fn lan_and_fast_timings() {
        let lan = GossipConfig::lan(5);
        assert_eq!(lan.probe_period_ms, 1000);
        assert_eq!(lan.suspect_to_down_ms, 4000);
        let f = GossipConfig::fast();
        assert!(f.probe_rtt_ms < f.probe_period_ms);
    }
}
