//! Which stored snapshots to keep.
//!
//! Snapshots are written every few records and would otherwise pile up for ever (a tenant of a
//! million events keeps hundreds of megabytes of them). Each is only a shortcut to the state at
//! its `seq`, so thinning them loses nothing; it only lengthens the replay behind a question
//! about a past moment. The newest is always kept (start-up loads it); among the others, the
//! one whose neighbours are closest together goes first, so what remains stays spread over the
//! log and the longest replay to any past moment stays short.

use idpsync_storage::Seq;

use super::Tenant;

/// The snapshots to remove from `stored` (ascending) so that at most `keep` remain.
pub(crate) fn snapshots_to_remove(stored: &[Seq], keep: usize) -> Vec<Seq> {
    let keep = keep.max(1);
    let mut kept = stored.to_vec();
    let mut removed = Vec::new();
    while kept.len() > keep {
        // Never the newest. With only the newest and one more left, the older one goes; else the
        // interior snapshot whose removal leaves the smallest gap (the oldest of equals).
        let victim = if kept.len() == 2 {
            0
        } else {
            (0..kept.len() - 1)
                .min_by_key(|&i| {
                    let before = if i == 0 { Seq::ZERO } else { kept[i - 1] };
                    kept[i + 1].0 - before.0
                })
                .expect("at least two snapshots besides the newest")
        };
        removed.push(kept.remove(victim));
    }
    removed.sort();
    removed
}

/// Removes the tenant's stored snapshots beyond its setting. Failures are logged: an extra
/// snapshot costs disk, never correctness.
pub(crate) async fn prune_snapshots(tenant: &Tenant) {
    let stored = match tenant.store.snapshots(&tenant.id).await {
        Ok(stored) => stored.into_iter().map(|info| info.seq).collect::<Vec<_>>(),
        Err(error) => {
            tracing::warn!(tenant = %tenant.id, %error, "cannot list snapshots to thin them");
            return;
        }
    };
    for seq in snapshots_to_remove(&stored, tenant.settings.snapshots_kept) {
        match tenant.store.remove_snapshot(&tenant.id, seq).await {
            Ok(_) => tracing::debug!(tenant = %tenant.id, %seq, "old snapshot removed"),
            Err(error) => tracing::warn!(tenant = %tenant.id, %seq, %error, "cannot remove an old snapshot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(values: &[u64]) -> Vec<Seq> {
        values.iter().copied().map(Seq).collect()
    }

    #[test]
    fn nothing_goes_while_within_the_limit() {
        assert!(snapshots_to_remove(&seqs(&[10, 20, 30]), 3).is_empty());
        assert!(snapshots_to_remove(&[], 1).is_empty());
    }

    #[test]
    fn the_newest_always_stays() {
        assert_eq!(snapshots_to_remove(&seqs(&[10, 20, 30]), 1), seqs(&[10, 20]));
        assert_eq!(
            snapshots_to_remove(&seqs(&[10, 20, 30]), 0),
            seqs(&[10, 20]),
            "0 means 1"
        );
    }

    #[test]
    fn evenly_written_snapshots_thin_out_evenly() {
        // Every 10 records, 17 of them, keep 9: every other one goes, the newest stays.
        let stored: Vec<Seq> = (1..=17).map(|i| Seq(i * 10)).collect();
        let removed = snapshots_to_remove(&stored, 9);
        let kept: Vec<u64> = stored.iter().filter(|s| !removed.contains(s)).map(|s| s.0).collect();
        assert_eq!(kept.len(), 9);
        assert_eq!(*kept.last().unwrap(), 170);
        let gaps: Vec<u64> = std::iter::once(kept[0])
            .chain(kept.windows(2).map(|w| w[1] - w[0]))
            .collect();
        assert!(
            gaps.iter().all(|gap| *gap <= 20),
            "no gap wider than two intervals: {kept:?}"
        );
    }

    #[test]
    fn a_crowded_stretch_is_thinned_first() {
        // Snapshots taken on demand close together (checkpoints) go before the spread ones.
        let removed = snapshots_to_remove(&seqs(&[100, 200, 201, 202, 300, 400]), 4);
        assert_eq!(removed, seqs(&[201, 202]));
    }
}
