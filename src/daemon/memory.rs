//! Gives memory the daemon has freed back to the system.
//!
//! glibc's malloc keeps what is freed in its arenas (one per thread that allocates, up to eight
//! per core) for reuse, and returns it only from the top of the main heap. A burst of reads
//! (pages, folds, span batches) therefore leaves the resident size at its peak long after the
//! burst's memory was freed, which is what a container's memory limit counts. Every
//! [`TRIM_EVERY`], `malloc_trim(0)` hands the free pages of every arena back (`MADV_DONTNEED`);
//! the memory stays mapped and is reused when needed again. Elsewhere (musl, other systems)
//! this does nothing.

use std::time::Duration;

use tokio::sync::watch;

pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Trims every [`TRIM_EVERY`] until `stop` turns true.
pub async fn trim_until(mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {
                // It walks every arena, taking each one's lock in turn: not on a runtime thread.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only reorganises the allocator's own free
    // lists; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Resident bytes of this process.
    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
    }

    #[test]
    fn freed_memory_between_live_allocations_goes_back_to_the_system() {
        const CHUNK: usize = 4096;
        const CHUNKS: usize = 32 * 1024; // 128 MiB
        // A thread of its own allocates, as a runtime thread does: its own arena. Every 32nd
        // chunk stays alive, so what is freed is holes between live chunks, which free() alone
        // never returns.
        let kept = std::thread::spawn(|| {
            let mut all: Vec<Vec<u8>> = (0..CHUNKS).map(|i| vec![i as u8; CHUNK]).collect();
            let kept: Vec<Vec<u8>> = all.iter_mut().step_by(32).map(std::mem::take).collect();
            drop(all);
            kept
        })
        .join()
        .unwrap();
        let before = rss();
        super::trim();
        let after = rss();
        let freed = CHUNKS * CHUNK / 32 * 31;
        assert!(
            before.saturating_sub(after) > freed / 2,
            "trimming returned {} of the {} bytes freed (RSS {} -> {})",
            before.saturating_sub(after),
            freed,
            before,
            after
        );
        assert_eq!(kept.len(), CHUNKS / 32);
        assert!(kept.iter().enumerate().all(|(i, c)| c[0] == (i * 32) as u8));
    }
}
