//! Which replica owns an execution: `shard.count` replicas split the tracked executions by a
//! hash of the execution ARN, as kube-state-metrics splits objects (`--shard`/`--total-shards`)
//! and Prometheus splits targets (`hashmod`), without leader election or talk between replicas.
//!
//! The hash is 64-bit FNV-1a over the ARN's bytes, modulo the count: stable across versions,
//! platforms and restarts (never a seeded hash), so every replica, and `durable-exporter
//! shard`, agrees on the owner of an ARN.

/// This replica's part of the work: `index` of `count` (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// The only replica: owns everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// The most replicas one deployment may split into.
pub const MAX_COUNT: u32 = 1024;

impl Shard {
    /// None unless `count` is 1 to [`MAX_COUNT`] and `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        ((1..=MAX_COUNT).contains(&count) && index < count).then_some(Shard { index, count })
    }

    /// The index of the replica that owns `arn`.
    pub fn owner(&self, arn: &str) -> u32 {
        owner(arn, self.count)
    }

    pub fn owns(&self, arn: &str) -> bool {
        self.count == 1 || self.owner(arn) == self.index
    }

    /// This replica's share of an account-wide request rate.
    pub fn share_of(&self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }
}

/// The index (of `count`) of the replica that owns `arn`.
pub fn owner(arn: &str, count: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = arn
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(count.max(1))) as u32
}

/// The ordinal at the end of a StatefulSet pod's name (`durable-exporter-2` → 2).
pub fn ordinal_of_pod_name(name: &str) -> Option<u32> {
    let (_, digits) = name.trim().rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-1/6a1f0b2c-3d4e-5f60-7182-000000000001";

    #[test]
    fn fnv1a_as_published() {
        // The FNV-1a 64-bit test values of the algorithm's authors.
        let fnv = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv("foobar"), 0x8594_4171_f739_67e8);
        // owner() is that hash modulo the count.
        assert_eq!(
            owner("foobar", 1000),
            (0x8594_4171_f739_67e8_u64 % 1000) as u32
        );
    }

    #[test]
    fn every_arn_has_exactly_one_owner_and_the_split_is_even() {
        let count = 4;
        let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
        let mut per = [0usize; 4];
        for i in 0..10_000 {
            let arn = ARN.replace("order-1", &format!("order-{i}"));
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&arn))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{arn}: {owners:?}");
            assert_eq!(owners[0], owner(&arn, count));
            per[owners[0] as usize] += 1;
        }
        for n in per {
            assert!((2_300..=2_700).contains(&n), "{per:?}");
        }
    }

    #[test]
    fn one_replica_owns_everything_and_bad_shards_are_refused() {
        assert!(Shard::default().owns(ARN));
        assert!(Shard::new(0, 0).is_none());
        assert!(Shard::new(3, 3).is_none());
        assert!(Shard::new(0, MAX_COUNT + 1).is_none());
        assert_eq!(Shard::new(1, 4).unwrap().share_of(100.0), 25.0);
    }

    #[test]
    fn ordinals_come_from_statefulset_pod_names() {
        assert_eq!(ordinal_of_pod_name("durable-exporter-0"), Some(0));
        assert_eq!(ordinal_of_pod_name("durable-exporter-12"), Some(12));
        assert_eq!(ordinal_of_pod_name("durable-exporter"), None);
        assert_eq!(ordinal_of_pod_name("durable-exporter-abc"), None);
        assert_eq!(ordinal_of_pod_name("exporter-"), None);
        assert_eq!(ordinal_of_pod_name("exporter-+1"), None);
        assert_eq!(ordinal_of_pod_name("x-99999999999"), None);
    }
}
