//! Range checks of a scenario beyond node names: sizes, times,
//! distributions, rates and weights, so that a run never panics (or loops
//! forever, or overflows its clock) on what a scenario file says. The limits
//! themselves are constants in [`crate::scenario`].

use crate::scenario::{
    Arrival, CLIENTS_MAX, DURATION_MS_MAX, KEYS_MAX, KeyDist, LATENCY_MS_MAX, Latency,
    MIXTURE_DEPTH_MAX, NODES_MAX, RATE_PER_S_MAX, RandomFaults, Scenario, ScenarioError, SimSync,
    StrongWorkload, WEIGHT_MAX, Workload,
};

impl Scenario {
    /// The checks the engine relies on beyond names: sizes, times,
    /// distributions, rates and weights, so a run never panics on input.
    pub(crate) fn validate_ranges(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.nodes > NODES_MAX {
            return bad(format!("nodes={} must be at most {NODES_MAX}", self.nodes));
        }
        if self.timeout_ms == 0 || self.timeout_ms > ringkv_node::TIMEOUT_MS_MAX {
            return bad(format!(
                "timeout_ms={} must be from 1 to {}",
                self.timeout_ms,
                ringkv_node::TIMEOUT_MS_MAX
            ));
        }
        if self.duration_ms == 0 || self.duration_ms > DURATION_MS_MAX {
            return bad(format!(
                "duration_ms={} must be from 1 to {DURATION_MS_MAX}",
                self.duration_ms
            ));
        }
        if self.converge_ms > DURATION_MS_MAX || self.aae_interval_ms > DURATION_MS_MAX {
            return bad(format!(
                "converge_ms={} and aae_interval_ms={} must be at most {DURATION_MS_MAX}",
                self.converge_ms, self.aae_interval_ms
            ));
        }
        if self.cluster_ops > ringkv_core::plan::CHANGES_MAX - 4 {
            return bad(format!(
                "cluster_ops={} must be at most {} (changes staged at once)",
                self.cluster_ops,
                ringkv_core::plan::CHANGES_MAX - 4
            ));
        }
        if let SimSync::Periodic { interval_ms } = self.sync
            && (interval_ms == 0 || interval_ms > DURATION_MS_MAX)
        {
            return bad(format!(
                "sync interval_ms={interval_ms} must be from 1 to {DURATION_MS_MAX}"
            ));
        }
        let legs = &self.network.latency;
        legs.default.validate("network.latency.default", 0)?;
        for (name, leg) in [
            ("network.latency.write_request", &legs.write_request),
            ("network.latency.write_ack", &legs.write_ack),
            ("network.latency.read_request", &legs.read_request),
            ("network.latency.read_response", &legs.read_response),
        ] {
            if let Some(l) = leg {
                l.validate(name, 0)?;
            }
        }
        let reorder_ms = self.network.reorder_ms;
        if !(reorder_ms.is_finite() && (0.0..=LATENCY_MS_MAX).contains(&reorder_ms)) {
            return bad(format!(
                "network.reorder_ms={reorder_ms} must be from 0 to {LATENCY_MS_MAX}"
            ));
        }
        self.random_faults.validate(self.nodes)?;
        self.workload.validate()
    }
}

/// Whether `x` is a finite number from `lo` to `hi`.
fn within(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

impl Latency {
    /// Checks the parameters (finite, in range, mixtures not empty nor too
    /// deep); `name` says where the distribution is, for the message.
    pub fn validate(&self, name: &str, depth: usize) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(format!("{name}: {m}")));
        let ms = |x: f64| within(x, 0.0, LATENCY_MS_MAX);
        match self {
            Latency::Constant { ms: c } if !ms(*c) => bad(format!(
                "constant ms={c} must be from 0 to {LATENCY_MS_MAX}"
            )),
            Latency::Uniform { min_ms, max_ms }
                if !(ms(*min_ms) && ms(*max_ms) && min_ms <= max_ms) =>
            {
                bad(format!(
                    "uniform needs 0 <= min_ms <= max_ms <= {LATENCY_MS_MAX}, got {min_ms}..{max_ms}"
                ))
            }
            Latency::Exponential { mean_ms, min_ms } if !(ms(*mean_ms) && ms(*min_ms)) => {
                bad(format!(
                    "exponential mean_ms={mean_ms} and min_ms={min_ms} must be from 0 to {LATENCY_MS_MAX}"
                ))
            }
            Latency::Pareto { scale_ms, shape }
                if !(ms(*scale_ms) && *scale_ms > 0.0 && within(*shape, 0.01, 100.0)) =>
            {
                bad(format!(
                    "pareto needs 0 < scale_ms <= {LATENCY_MS_MAX} and shape from 0.01 to 100, got scale_ms={scale_ms}, shape={shape}"
                ))
            }
            Latency::Mixture { parts } => {
                if depth >= MIXTURE_DEPTH_MAX {
                    return bad(format!("mixtures nest more than {MIXTURE_DEPTH_MAX} deep"));
                }
                if parts.is_empty() {
                    return bad("a mixture needs at least one part".into());
                }
                if !parts.iter().all(|p| within(p.weight, 0.0, WEIGHT_MAX)) {
                    return bad(format!("mixture weights must be from 0 to {WEIGHT_MAX}"));
                }
                if parts.iter().map(|p| p.weight).sum::<f64>() <= 0.0 {
                    return bad("mixture weights must not all be 0".into());
                }
                parts
                    .iter()
                    .try_for_each(|p| p.latency.validate(name, depth + 1))
            }
            _ => Ok(()),
        }
    }
}

impl RandomFaults {
    /// Checks rates, shares and durations against a cluster of `nodes`.
    pub fn validate(&self, nodes: usize) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(format!("random_faults: {m}")));
        for (name, rate) in [
            ("crashes_per_s", self.crashes_per_s),
            ("partitions_per_s", self.partitions_per_s),
        ] {
            if !within(rate, 0.0, RATE_PER_S_MAX) {
                return bad(format!("{name}={rate} must be from 0 to {RATE_PER_S_MAX}"));
            }
        }
        if !within(self.power_share, 0.0, 1.0) {
            return bad(format!(
                "power_share={} must be a share from 0 to 1",
                self.power_share
            ));
        }
        if self.crashes_per_s > 0.0 && (self.max_down == 0 || self.down_ms == 0) {
            return bad("crashes_per_s > 0 needs max_down >= 1 and down_ms >= 1".into());
        }
        if self.partitions_per_s > 0.0 && (self.partition_ms == 0 || nodes < 2) {
            return bad("partitions_per_s > 0 needs partition_ms >= 1 and at least 2 nodes".into());
        }
        if self.down_ms > DURATION_MS_MAX || self.partition_ms > DURATION_MS_MAX {
            return bad(format!(
                "down_ms and partition_ms must be at most {DURATION_MS_MAX}"
            ));
        }
        Ok(())
    }
}

impl Workload {
    /// Checks sizes, the key distribution, the mix and the arrival rate.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(format!("workload: {m}")));
        if self.keys > KEYS_MAX || self.clients > CLIENTS_MAX {
            return bad(format!(
                "keys={} and clients={} must be at most {KEYS_MAX} and {CLIENTS_MAX}",
                self.keys, self.clients
            ));
        }
        let value_max = ringkv_core::Limits::default().value_bytes_max;
        if self.value_bytes > value_max {
            return bad(format!(
                "value_bytes={} must be at most {value_max}",
                self.value_bytes
            ));
        }
        match self.key_dist {
            KeyDist::Uniform => {}
            KeyDist::Zipfian { theta } => {
                if !(theta.is_finite() && theta > 0.0 && theta < 1.0) {
                    return bad(format!(
                        "zipfian theta={theta} must be above 0 and below 1 (YCSB uses 0.99)"
                    ));
                }
            }
            KeyDist::Hotspot { hot_keys, hot_ops } => {
                if !within(hot_keys, 0.0, 1.0) || !within(hot_ops, 0.0, 1.0) {
                    return bad(format!(
                        "hotspot hot_keys={hot_keys} and hot_ops={hot_ops} must be shares from 0 to 1"
                    ));
                }
            }
        }
        let m = &self.mix;
        let weights = [m.get, m.put, m.rmw, m.delete];
        if !weights.iter().all(|w| within(*w, 0.0, WEIGHT_MAX))
            || weights.iter().sum::<f64>() <= 0.0
        {
            return bad(format!(
                "mix weights get={}, put={}, rmw={}, delete={} must be from 0 to {WEIGHT_MAX} and not all 0",
                m.get, m.put, m.rmw, m.delete
            ));
        }
        if let Arrival::Closed { think_ms } = self.arrival
            && think_ms > DURATION_MS_MAX
        {
            return bad(format!(
                "closed-loop think_ms={think_ms} must be at most {DURATION_MS_MAX}"
            ));
        }
        if let Arrival::Open { rate_per_s } = self.arrival
            && !(within(rate_per_s, 0.0, RATE_PER_S_MAX) && rate_per_s > 0.0)
        {
            return bad(format!(
                "open-loop rate_per_s={rate_per_s} must be above 0 and at most {RATE_PER_S_MAX}"
            ));
        }
        self.strong
            .as_ref()
            .map_or(Ok(()), StrongWorkload::validate)
    }
}

impl StrongWorkload {
    /// Checks the share, the number of keys and the mix.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(format!("workload.strong: {m}")));
        if !within(self.share, 0.0, 1.0) {
            return bad(format!("share={} must be from 0 to 1", self.share));
        }
        if self.keys == 0 || self.keys > KEYS_MAX {
            return bad(format!("keys={} must be from 1 to {KEYS_MAX}", self.keys));
        }
        let m = &self.mix;
        let weights = [m.get, m.put, m.cas, m.delete];
        if !weights.iter().all(|w| within(*w, 0.0, WEIGHT_MAX))
            || weights.iter().sum::<f64>() <= 0.0
        {
            return bad(format!(
                "mix weights get={}, put={}, cas={}, delete={} must be from 0 to {WEIGHT_MAX} and not all 0",
                m.get, m.put, m.cas, m.delete
            ));
        }
        Ok(())
    }
}
