//! Bounded per-flow tables for the analyses: when a table is full, the idlest entries are handed
//! back to the analysis (which still counts them) instead of growing memory with the file.

use crate::flow::FastMap;

/// Removes and returns the entries idle for `horizon_ns` (then half, a quarter...) until at most
/// three quarters of `max` remain, so a full table frees room in one sweep.
pub fn drain_idle<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut FastMap<K, V>,
    now_ns: i64,
    max: usize,
    horizon_ns: i64,
    last_seen: impl Fn(&V) -> i64,
) -> Vec<(K, V)> {
    let mut out = Vec::new();
    let mut horizon = horizon_ns;
    while map.len() > max * 3 / 4 && horizon > 0 {
        let idle: Vec<K> = map
            .iter()
            .filter(|(_, v)| now_ns.saturating_sub(last_seen(v)) >= horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(v) = map.remove(&k) {
                out.push((k, v));
            }
        }
        horizon /= 2;
    }
    out
}
