//! Read positions on disk: one small JSON file per execution under `<dir>/executions/`, and the
//! run-time tracking changes in `<dir>/tracked.json`. Every write goes to a temporary file in the
//! same folder, is fsynced, then renamed over the old one (and the folder fsynced), so a crash
//! leaves the old file or the new one, never half of one. Write groups reuse the files they
//! replace as their temporary files ([`CheckpointStore::write_group`]). Files carry a format
//! version; a file that cannot be read is moved aside (`*.corrupt-<unix seconds>`) and reported,
//! and that execution is read again from the start.

use std::borrow::Cow;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Where one execution's spans have been acknowledged up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cursor {
    /// Shared with the tracked set's key.
    pub arn: std::sync::Arc<str>,
    /// The last EventId whose spans the collector acknowledged (0: nothing yet).
    pub last_event_id: u64,
    /// The marker of the page that held `last_event_id` (a shortcut that may expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// ExecutionStarted, in milliseconds since the epoch (for the trace id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_start_ms: Option<i64>,
    /// The execution's X-Ray trace header, from GetDurableExecution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    /// The execution's function ARN, from GetDurableExecution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    /// The terminal status, once the execution ended and every span was acknowledged. One of
    /// the few statuses the API has, shared rather than a string of each execution's own.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_status"
    )]
    pub finished_status: Option<Cow<'static, str>>,
    /// When (wall clock, ms) the end was acknowledged: retention counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The last invocation drawn before the event after its InvocationCompleted
    /// (`Pipeline::settle`) whose span the collector acknowledged: a restart that rebuilds
    /// the fold up to `last_event_id` settles it again without drawing it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_invocation: Option<u32>,
    /// The fold (open operations, invocation state) exactly at `last_event_id`, so a restart
    /// resumes from `marker` instead of re-reading the history from the start. Absent when the
    /// daemon had read further than the collector acknowledged; a snapshot that does not read
    /// back (another version's format) just means that re-read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: in memory a cursor has none (it goes to disk with the copy written).
    pub fold: Option<Box<serde_json::Value>>,
}

/// A status read back: shared when it is one the API has (any other is kept as it is).
fn known_status<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'static, str>>, D::Error> {
    let status = Option::<String>::deserialize(d)?;
    Ok(status.map(
        |s| match crate::config::EXECUTION_STATUSES.iter().find(|k| **k == s) {
            Some(k) => Cow::Borrowed(*k),
            None => Cow::Owned(s),
        },
    ))
}

/// The on-disk form, versioned.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum CursorFile {
    #[serde(rename = "1")]
    V1(Cursor),
}

/// Executions added or removed over the HTTP API, and finished ones forgotten after
/// `checkpoint.retention`, so the changes survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TrackingChanges {
    /// Added at run time (on top of the configuration).
    pub added: Vec<String>,
    /// Removed at run time (also from the configuration's list).
    pub removed: Vec<String>,
    /// Finished, exported and forgotten: never tracked (and exported) again while the
    /// configuration lists them or discovery could still find them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<Forgotten>,
}

/// A finished execution whose cursor retention is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    pub arn: String,
    /// ExecutionStarted (ms): once older than every discovery look-back, discovery cannot
    /// find it again and the record can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum TrackingFile {
    #[serde(rename = "1")]
    V1(TrackingChanges),
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("writing checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint directory {dir} is in use by another durable-exporter (it holds {LOCK_FILE}'s lock): two daemons on one directory would overwrite each other's positions; give each replica its own checkpoint.dir, or stop the other daemon first"
    )]
    Locked { dir: PathBuf },
}

/// Held (an advisory `flock`) by the daemon that uses the directory, for as long as it runs; the
/// kernel lets go of it when the process ends, however it ends.
const LOCK_FILE: &str = ".lock";

/// The format version this build writes; files of a higher one come from a newer build.
pub const FORMAT_VERSION: u32 = 1;

/// A file written by a newer version of the exporter (after a rollback).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} was written by a newer version of durable-exporter (checkpoint format {version}; this version reads {FORMAT_VERSION}): upgrade again, or set checkpoint.on_newer_version: reread to read its execution again from the start (its spans are exported again)", path.display())]
pub struct NewerFile {
    pub path: PathBuf,
    pub version: String,
}

/// Why a file could not be taken.
enum Unreadable {
    Corrupt(String),
    Newer(String),
}

/// The version a file that did not parse claims, when it is a whole number above ours.
fn newer_version(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Versioned {
        version: serde_json::Value,
    }
    let v = serde_json::from_slice::<Versioned>(bytes).ok()?.version;
    let text = match &v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (text.parse::<u64>().ok()? > u64::from(FORMAT_VERSION)).then_some(text)
}

/// A file that could not be read and was moved aside.
#[derive(Debug, Clone)]
pub struct CorruptFile {
    pub path: PathBuf,
    pub moved_to: Option<PathBuf>,
    pub reason: String,
}

/// How a checkpoint file being written (then renamed into place) is named.
const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    /// The directory's lock, held while any clone of the store lives.
    _lock: std::sync::Arc<fs::File>,
    /// Files a write group may overwrite before renaming them into place.
    spares: std::sync::Arc<std::sync::Mutex<Spares>>,
}

/// Spare files in the executions folder: files no cursor is read from (old cursors replaced by
/// a write group, removed ones), named with [`TMP_PREFIX`] so that a restart removes them.
#[derive(Debug, Default)]
struct Spares {
    free: Vec<PathBuf>,
    /// The next spare name's number.
    next: u64,
}

/// The most spares kept; beyond it removed files are deleted.
const MAX_SPARES: usize = 1024;

impl Spares {
    /// A new spare name, not in use.
    fn name(&mut self, folder: &Path) -> PathBuf {
        self.next += 1;
        folder.join(format!("{TMP_PREFIX}spare-{}", self.next))
    }

    fn has_room(&self) -> bool {
        self.free.len() < MAX_SPARES
    }

    fn put(&mut self, spare: PathBuf) {
        if self.has_room() {
            self.free.push(spare);
        } else {
            let _ = fs::remove_file(spare);
        }
    }

    /// A spare opened for writing at its start (the caller cuts it to length), or a new file
    /// when there is none.
    fn open(&mut self, folder: &Path) -> std::io::Result<(fs::File, PathBuf)> {
        while let Some(spare) = self.free.pop() {
            // One that went missing (removed by hand) is dropped.
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&spare) {
                return Ok((f, spare));
            }
        }
        loop {
            let spare = self.name(folder);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&spare)
            {
                Ok(f) => return Ok((f, spare)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl CheckpointStore {
    /// Opens (creating) the directory and checks that it is writable.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let executions = dir.join("executions");
        fs::create_dir_all(&executions).map_err(|source| CheckpointError::Dir {
            dir: executions.clone(),
            source,
        })?;
        let lock = lock(dir)?;
        let store = CheckpointStore {
            dir: dir.to_path_buf(),
            _lock: std::sync::Arc::new(lock),
            spares: Default::default(),
        };
        // Fail at start-up, not at the first acknowledgement, when the volume is read-only.
        let probe = dir.join(".write-probe");
        store
            .write_atomic(&probe, b"ok")
            .map_err(|e| CheckpointError::Dir {
                dir: dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let _ = fs::remove_file(probe);
        // `tracked.json` is written beside the folder, the cursors in it.
        store.remove_leftovers(dir);
        store.remove_leftovers(&executions);
        Ok(store)
    }

    /// Removes the temporary files of writes a crash cut short (never renamed, so never in
    /// force): without this each kill during a write would leave one behind for good.
    fn remove_leftovers(&self, folder: &Path) {
        let Ok(entries) = fs::read_dir(folder) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::debug!(path = %entry.path().display(), "removed an unfinished checkpoint write")
                    }
                    Err(e) => {
                        tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an unfinished checkpoint write")
                    }
                }
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn cursor_path(&self, arn: &str) -> PathBuf {
        let digest = Sha256::digest(arn.as_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join("executions").join(format!("{name}.json"))
    }

    /// Every cursor on disk; unreadable files are moved aside and reported. A file a newer
    /// version wrote is an error unless `reread_newer` (then it is moved aside too).
    pub fn load_all(
        &self,
        reread_newer: bool,
    ) -> Result<(Vec<Cursor>, Vec<CorruptFile>), NewerFile> {
        let mut cursors = Vec::new();
        let mut corrupt = Vec::new();
        let Ok(entries) = fs::read_dir(self.dir.join("executions")) else {
            return Ok((cursors, corrupt));
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        // Every newer file is found before anything is moved: a refusal changes nothing.
        let mut read = Vec::with_capacity(paths.len());
        for path in paths {
            let r = read_cursor(&path);
            if let (Err(Unreadable::Newer(version)), false) = (&r, reread_newer) {
                return Err(NewerFile {
                    path,
                    version: version.clone(),
                });
            }
            read.push((path, r));
        }
        for (path, r) in read {
            match r {
                Ok(c) if self.cursor_path(&c.arn) == path => cursors.push(c),
                Ok(c) => corrupt.push(self.move_aside(
                    &path,
                    format!("holds the cursor of {} under another name", c.arn),
                )),
                Err(Unreadable::Corrupt(reason)) => corrupt.push(self.move_aside(&path, reason)),
                Err(Unreadable::Newer(v)) => corrupt.push(self.move_aside(
                    &path,
                    format!("written by a newer version (checkpoint format {v}); checkpoint.on_newer_version is reread"),
                )),
            }
        }
        Ok((cursors, corrupt))
    }

    fn move_aside(&self, path: &Path, reason: String) -> CorruptFile {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let to = path.with_extension(format!("json.corrupt-{secs}"));
        let moved_to = fs::rename(path, &to).ok().map(|()| to);
        CorruptFile {
            path: path.to_path_buf(),
            moved_to,
            reason,
        }
    }

    pub fn save(&self, cursor: &Cursor) -> Result<(), CheckpointError> {
        let path = self.cursor_path(&cursor.arn);
        let body = serde_json::to_vec(&CursorFile::V1(cursor.clone())).map_err(|e| {
            CheckpointError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        self.write_atomic(&path, &body)
    }

    /// Writes every cursor and removes the files of `removed` as one group: every file written
    /// to a spare file and fsynced, then all renamed into place, then the folder fsynced once (a
    /// crash leaves each file old or new, never half). An error fails the whole group; writing
    /// it again is harmless.
    ///
    /// The spares are the files the group replaces: before a new file is renamed over the old
    /// one, the old one is given a spare name (a hard link), and a removed file is renamed to
    /// one. Creating a file was the largest single cost of a checkpoint (ext4 looks for a free
    /// inode among the recently deleted ones: 15% of the daemon's CPU at 3,000 executions); a
    /// spare is written over and cut to length instead, so a steady tracked set creates almost
    /// no files. Where hard links are refused, the old file is simply replaced and the next
    /// write creates its file, as before.
    pub fn write_group(&self, saves: &[Cursor], removed: &[String]) -> Result<(), CheckpointError> {
        let folder = self.dir.join("executions");
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        // Written and fsynced, not yet renamed: (the spare, its place).
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(saves.len());
        let mut result = Ok(());
        for cursor in saves {
            let path = self.cursor_path(&cursor.arn);
            let err = |source| CheckpointError::Write {
                path: path.clone(),
                source,
            };
            let body = match serde_json::to_vec(&CursorFile::V1(cursor.clone())) {
                Ok(b) => b,
                Err(e) => {
                    result = Err(err(std::io::Error::other(e)));
                    break;
                }
            };
            let (mut file, spare) = match spares.open(&folder) {
                Ok(f) => f,
                Err(e) => {
                    result = Err(err(e));
                    break;
                }
            };
            // Written over the spare's blocks, then cut to length: emptying it first would
            // give its blocks back only to take new ones.
            let written = file
                .write_all(&body)
                .and_then(|()| file.set_len(body.len() as u64))
                .and_then(|()| file.sync_all());
            staged.push((spare, path.clone()));
            if let Err(e) = written {
                result = Err(err(e));
                break;
            }
        }
        let mut staged = staged.into_iter();
        if result.is_ok() {
            for (spare, path) in staged.by_ref() {
                // The old file, kept as the next spare; it must not be reused unless the
                // rename took it out of place.
                let old = spares.name(&folder);
                let kept = fs::hard_link(&path, &old).is_ok();
                match fs::rename(&spare, &path) {
                    Ok(()) => {
                        if kept {
                            spares.put(old);
                        }
                    }
                    Err(source) => {
                        if kept {
                            let _ = fs::remove_file(&old);
                        }
                        spares.put(spare);
                        result = Err(CheckpointError::Write { path, source });
                        break;
                    }
                }
            }
        }
        // Not renamed (the group failed): their bytes are in no file that is read.
        for (spare, _) in staged {
            spares.put(spare);
        }
        result?;
        for arn in removed {
            let path = self.cursor_path(arn);
            let gone = if spares.has_room() {
                let spare = spares.name(&folder);
                fs::rename(&path, &spare).map(|()| spares.put(spare))
            } else {
                fs::remove_file(&path)
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CheckpointError::Write { path, source }),
            }
        }
        if let Ok(d) = fs::File::open(&folder) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn remove(&self, arn: &str) -> Result<(), CheckpointError> {
        let path = self.cursor_path(arn);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CheckpointError::Write { path, source }),
        }
    }

    /// The run-time tracking changes; a corrupt file is moved aside and reported. A file a
    /// newer version wrote is an error unless `reread_newer` (then it is moved aside too: the
    /// registrations in it are lost, and said so).
    pub fn load_tracking(
        &self,
        reread_newer: bool,
    ) -> Result<(TrackingChanges, Option<CorruptFile>), NewerFile> {
        let path = self.dir.join("tracked.json");
        let Ok(bytes) = fs::read(&path) else {
            return Ok((TrackingChanges::default(), None));
        };
        match serde_json::from_slice::<TrackingFile>(&bytes) {
            Ok(TrackingFile::V1(t)) => Ok((t, None)),
            Err(e) => match newer_version(&bytes) {
                Some(version) if !reread_newer => Err(NewerFile { path, version }),
                Some(version) => Ok((
                    TrackingChanges::default(),
                    Some(self.move_aside(
                        &path,
                        format!("written by a newer version (format {version}); checkpoint.on_newer_version is reread"),
                    )),
                )),
                None => Ok((
                    TrackingChanges::default(),
                    Some(self.move_aside(&path, e.to_string())),
                )),
            },
        }
    }

    pub fn save_tracking(&self, t: &TrackingChanges) -> Result<(), CheckpointError> {
        let path = self.dir.join("tracked.json");
        let body = serde_json::to_vec_pretty(&TrackingFile::V1(t.clone())).map_err(|e| {
            CheckpointError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        self.write_atomic(&path, &body)
    }

    /// Temp file in the same folder, fsync, rename, fsync the folder.
    fn write_atomic(&self, path: &Path, body: &[u8]) -> Result<(), CheckpointError> {
        let err = |source| CheckpointError::Write {
            path: path.to_path_buf(),
            source,
        };
        let parent = path.parent().unwrap_or(&self.dir);
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(parent)
            .map_err(err)?;
        tmp.write_all(body).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// What the coordinator asks of the [`Writer`].
#[derive(Debug)]
enum Write {
    Save(Cursor),
    Remove(String),
    /// Answered once everything asked before it is on disk.
    Barrier(tokio::sync::oneshot::Sender<()>),
    /// The fold snapshot of the newest cursor asked or written for this execution.
    Load(std::sync::Arc<str>, FoldReply),
}

type FoldReply = tokio::sync::oneshot::Sender<Option<Loaded>>;

/// What a load finds: the fold of a cursor still queued, or the bytes of its file (parsed by
/// the caller, straight into the fold's type).
#[derive(Debug)]
enum Loaded {
    Queued(serde_json::Value),
    File(Vec<u8>),
}

/// What a load reads of a cursor file: one typed pass over the bytes, the other fields
/// skipped (parsing the whole cursor, then its fold from a JSON tree, cost three times as
/// much, and every dormant execution's wake pays it).
#[derive(Deserialize)]
struct FoldOf<T> {
    version: String,
    arn: String,
    fold: Option<T>,
}

/// Writes cursors off the coordinator, in groups: whatever is asked while a group is being
/// written goes into the next one. A barrier is answered once everything asked before it is on
/// disk, which is how the exporter is held (it sends no batch before the last one's positions
/// are written). When writes fail, the writer keeps the newest cursor of each execution, says
/// so ([`Health::checkpoint_error`](super::Health), `durable_exporter_checkpoints_writable`)
/// and tries again, doubling from 0.5 s to 10 s, with the barriers waiting.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: tokio::sync::mpsc::UnboundedSender<Write>,
}

impl Writer {
    /// Starts the writer task.
    pub fn spawn(
        store: CheckpointStore,
        metrics: super::metrics::ExporterMetrics,
        health: std::sync::Arc<super::Health>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(rx, store, metrics, health));
        (Writer { tx }, task)
    }

    pub fn save(&self, cursor: Cursor) {
        let _ = self.tx.send(Write::Save(cursor));
    }

    pub fn remove(&self, arn: &str) {
        let _ = self.tx.send(Write::Remove(arn.to_owned()));
    }

    /// `done` is answered once everything asked before it is on disk (dropped, unanswered, if
    /// the writer stops first).
    pub fn barrier(&self, done: tokio::sync::oneshot::Sender<()>) {
        let _ = self.tx.send(Write::Barrier(done));
    }

    /// A handle for tasks that read folds back ([`WeakWriter::load_fold`]) without keeping the
    /// writer open at shutdown.
    pub fn downgrade(&self) -> WeakWriter {
        WeakWriter {
            tx: self.tx.downgrade(),
        }
    }
}

/// See [`Writer::downgrade`].
#[derive(Debug, Clone)]
pub struct WeakWriter {
    tx: tokio::sync::mpsc::WeakUnboundedSender<Write>,
}

impl WeakWriter {
    /// The fold snapshot in the newest cursor of `arn` that was asked to be saved before this
    /// call: from the writer's queue while it is not on disk yet (or cannot be written), else
    /// from its file. None when there is none, it does not read as a `T`, the file is of
    /// another version or execution, or the writer stopped. Parsed by the caller's task.
    pub async fn load_fold<T: serde::de::DeserializeOwned>(
        &self,
        arn: std::sync::Arc<str>,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.upgrade()?.send(Write::Load(arn.clone(), tx)).ok()?;
        match rx.await.ok().flatten()? {
            Loaded::Queued(fold) => serde_json::from_value(fold).ok(),
            Loaded::File(bytes) => {
                let file: FoldOf<T> = serde_json::from_slice(&bytes).ok()?;
                let current = file.version.parse() == Ok(FORMAT_VERSION);
                (current && *file.arn == *arn).then_some(file.fold)?
            }
        }
    }
}

const WRITE_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const WRITE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// What is asked and not written yet.
#[derive(Default)]
struct Pending {
    saves: std::collections::BTreeMap<std::sync::Arc<str>, Cursor>,
    removed: std::collections::BTreeSet<String>,
    barriers: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Loads to answer from disk (nothing newer is queued for them).
    loads: Vec<(std::sync::Arc<str>, FoldReply)>,
}

impl Pending {
    fn absorb(&mut self, w: Write) {
        match w {
            Write::Save(c) => {
                self.removed.remove(&*c.arn);
                self.saves.insert(c.arn.clone(), c);
            }
            Write::Remove(arn) => {
                self.saves.remove(arn.as_str());
                self.removed.insert(arn);
            }
            Write::Barrier(b) => self.barriers.push(b),
            Write::Load(arn, reply) => {
                if let Some(c) = self.saves.get(&arn) {
                    let _ = reply.send(c.fold.as_deref().cloned().map(Loaded::Queued));
                } else if self.removed.contains(&*arn) {
                    let _ = reply.send(None);
                } else {
                    self.loads.push((arn, reply));
                }
            }
        }
    }

    /// Nothing to write (loads aside).
    fn nothing_to_write(&self) -> bool {
        self.saves.is_empty() && self.removed.is_empty() && self.barriers.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.nothing_to_write() && self.loads.is_empty()
    }
}

/// Answers loads from the files (what is queued was answered when asked).
fn answer_loads(store: &CheckpointStore, loads: Vec<(std::sync::Arc<str>, FoldReply)>) {
    for (arn, reply) in loads {
        let bytes = fs::read(store.cursor_path(&arn)).ok();
        let _ = reply.send(bytes.map(Loaded::File));
    }
}

async fn write_loop(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Write>,
    store: CheckpointStore,
    metrics: super::metrics::ExporterMetrics,
    health: std::sync::Arc<super::Health>,
) {
    let mut pending = Pending::default();
    let mut wait = WRITE_RETRY_MIN;
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(w) => pending.absorb(w),
                None => return,
            }
        }
        while let Ok(w) = rx.try_recv() {
            pending.absorb(w);
        }
        let loads = std::mem::take(&mut pending.loads);
        let s = store.clone();
        if pending.nothing_to_write() {
            let _ = tokio::task::spawn_blocking(move || answer_loads(&s, loads)).await;
            continue;
        }
        let saves: Vec<Cursor> = pending.saves.values().cloned().collect();
        let removed: Vec<String> = pending.removed.iter().cloned().collect();
        let written = tokio::task::spawn_blocking(move || {
            let written = s.write_group(&saves, &removed).map(|()| saves.len());
            answer_loads(&s, loads);
            written
        })
        .await
        .unwrap_or_else(|e| {
            Err(CheckpointError::Write {
                path: store.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        match written {
            Ok(n) => {
                metrics.checkpoint_writes.inc_by(n as u64);
                pending.saves.clear();
                pending.removed.clear();
                for b in pending.barriers.drain(..) {
                    let _ = b.send(());
                }
                let was_failing = health
                    .checkpoint_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .is_some();
                if was_failing {
                    metrics.checkpoints_writable.set(1);
                    tracing::info!("checkpoints are written again: exporting resumes");
                }
                wait = WRITE_RETRY_MIN;
            }
            Err(e) => {
                metrics.checkpoint_failures.inc();
                metrics.checkpoints_writable.set(0);
                let first = health
                    .checkpoint_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(e.to_string())
                    .is_none();
                if first {
                    tracing::error!(error = %e, "checkpoint write failed: exporting pauses until checkpoints can be written again (spans wait in the buffer; nothing is lost)");
                }
                if !open {
                    // Shutting down: the positions stay as they were on disk, and what their
                    // spans' acknowledgements moved is read and sent again after the restart.
                    tracing::error!(
                        cursors = pending.saves.len(),
                        "shutting down while checkpoints cannot be written: their spans are read and sent again after the restart"
                    );
                    return;
                }
                // Wait, taking what else is asked meanwhile (the stop included).
                let until = tokio::time::Instant::now() + wait;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        w = rx.recv() => match w {
                            Some(w) => pending.absorb(w),
                            None => {
                                open = false;
                                break;
                            }
                        },
                    }
                }
                wait = (wait * 2).min(WRITE_RETRY_MAX);
            }
        }
        if rx.is_closed() && rx.is_empty() {
            open = false;
        }
    }
}

/// Takes the directory's lock, without waiting: another daemon holding it is an error.
fn lock(dir: &Path) -> Result<fs::File, CheckpointError> {
    let path = dir.join(LOCK_FILE);
    let err = |source| CheckpointError::Dir {
        dir: dir.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(CheckpointError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(err(e)),
    }
}

fn read_cursor(path: &Path) -> Result<Cursor, Unreadable> {
    let bytes = fs::read(path).map_err(|e| Unreadable::Corrupt(e.to_string()))?;
    match serde_json::from_slice::<CursorFile>(&bytes) {
        Ok(CursorFile::V1(c)) if !c.arn.is_empty() => Ok(c),
        Ok(CursorFile::V1(_)) => Err(Unreadable::Corrupt("the cursor has no ARN".into())),
        Err(e) => Err(match newer_version(&bytes) {
            Some(v) => Unreadable::Newer(v),
            None => Unreadable::Corrupt(e.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(arn: &str, id: u64) -> Cursor {
        Cursor {
            arn: arn.into(),
            last_event_id: id,
            marker: Some("m".into()),
            execution_start_ms: Some(1_795_248_229_083),
            ..Cursor::default()
        }
    }

    #[test]
    fn write_groups_reuse_the_files_they_replace() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let executions = dir.path().join("executions");
        let inodes = || -> std::collections::BTreeSet<u64> {
            fs::read_dir(&executions)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().ino())
                .collect()
        };
        let arns: Vec<String> = (0..8).map(|i| format!("arn:e{i}")).collect();
        let group = |id: u64| -> Vec<Cursor> { arns.iter().map(|a| cursor(a, id)).collect() };
        store.write_group(&group(1), &[]).unwrap();
        store.write_group(&group(2), &[]).unwrap();
        // From here on every file of a group is one it replaced: no new file.
        let steady = inodes();
        for id in 3..10 {
            store.write_group(&group(id), &[]).unwrap();
            let (mut all, corrupt) = store.load_all(false).unwrap();
            all.sort_by(|a, b| a.arn.cmp(&b.arn));
            assert!(corrupt.is_empty(), "{corrupt:?}");
            assert_eq!(all, group(id), "every file holds its own, newest cursor");
        }
        assert_eq!(inodes(), steady);
        // A removed file becomes a spare, and the next new execution is written into it: a
        // longer file than its cursor, cut to length.
        let long = Cursor {
            marker: Some("m".repeat(5000)),
            ..cursor("arn:e7", 10)
        };
        store.write_group(&[long], &[]).unwrap();
        store
            .write_group(&[cursor("arn:e0", 20)], &["arn:e7".into()])
            .unwrap();
        store.write_group(&[cursor("arn:new", 1)], &[]).unwrap();
        assert_eq!(inodes(), steady);
        let (mut all, _) = store.load_all(false).unwrap();
        all.sort_by(|a, b| a.arn.cmp(&b.arn));
        let ids: Vec<(&str, u64)> = all.iter().map(|c| (&*c.arn, c.last_event_id)).collect();
        assert_eq!(
            ids,
            [
                ("arn:e0", 20),
                ("arn:e1", 9),
                ("arn:e2", 9),
                ("arn:e3", 9),
                ("arn:e4", 9),
                ("arn:e5", 9),
                ("arn:e6", 9),
                ("arn:new", 1)
            ]
        );
        // The spares are never read, and a restart removes them.
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(&executions).unwrap().count(), 8);
        assert_eq!(store.load_all(false).unwrap().0.len(), 8);
    }

    #[test]
    fn cursors_round_trip_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&cursor("arn:a", 3)).unwrap();
        store.save(&cursor("arn:b/x", 9)).unwrap();
        store.save(&cursor("arn:a", 4)).unwrap();
        let (mut all, corrupt) = store.load_all(false).unwrap();
        all.sort_by(|a, b| a.arn.cmp(&b.arn));
        assert!(corrupt.is_empty());
        assert_eq!(all, vec![cursor("arn:a", 4), cursor("arn:b/x", 9)]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("executions"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        store.remove("arn:a").unwrap();
        store.remove("arn:never").unwrap();
        assert_eq!(store.load_all(false).unwrap().0, vec![cursor("arn:b/x", 9)]);
    }

    #[test]
    fn unfinished_writes_are_removed_at_open_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&cursor("arn:kept", 3)).unwrap();
        // A crash between writing a temporary file and renaming it.
        let unfinished = cursor("arn:kept", 9);
        let executions = dir.path().join("executions");
        let tmp = executions.join(format!("{TMP_PREFIX}abc123"));
        fs::write(
            &tmp,
            serde_json::to_vec(&CursorFile::V1(unfinished)).unwrap(),
        )
        .unwrap();
        let tracking_tmp = dir.path().join(format!("{TMP_PREFIX}def456"));
        fs::write(&tracking_tmp, b"{\"added\": [").unwrap();
        // The crashed daemon is gone (and its lock with it).
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(!tmp.exists());
        assert!(!tracking_tmp.exists());
        let (cursors, corrupt) = store.load_all(false).unwrap();
        assert!(corrupt.is_empty(), "{corrupt:?}");
        assert_eq!(cursors, vec![cursor("arn:kept", 3)]);
    }

    fn spawn_writer(store: CheckpointStore) -> (Writer, tokio::task::JoinHandle<()>) {
        let metrics = super::super::metrics::ExporterMetrics::register(
            &mut prometheus_client::registry::Registry::default(),
        );
        Writer::spawn(store, metrics, Default::default())
    }

    #[tokio::test]
    async fn a_fold_loads_back_as_last_asked_from_the_queue_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let with_fold = |id: u64| Cursor {
            fold: Some(Box::new(serde_json::json!({ "at": id }))),
            ..cursor("arn:a", id)
        };
        // On disk before the writer started.
        store.save(&with_fold(1)).unwrap();
        let (writer, task) = spawn_writer(store.clone());
        let weak = writer.downgrade();
        let arn = std::sync::Arc::<str>::from("arn:a");
        assert_eq!(
            weak.load_fold::<serde_json::Value>(arn.clone()).await,
            Some(serde_json::json!({ "at": 1 }))
        );
        // A save asked before the load is what the load answers, written or not yet.
        writer.save(with_fold(2));
        assert_eq!(
            weak.load_fold::<serde_json::Value>(arn.clone()).await,
            Some(serde_json::json!({ "at": 2 }))
        );
        let (done, written) = tokio::sync::oneshot::channel();
        writer.barrier(done);
        written.await.unwrap();
        assert_eq!(
            weak.load_fold::<serde_json::Value>(arn.clone()).await,
            Some(serde_json::json!({ "at": 2 }))
        );
        // A cursor saved without its fold, a removed one, one never saved: nothing to resume.
        writer.save(cursor("arn:a", 3));
        assert_eq!(weak.load_fold::<serde_json::Value>(arn.clone()).await, None);
        writer.save(with_fold(4));
        writer.remove("arn:a");
        assert_eq!(weak.load_fold::<serde_json::Value>(arn.clone()).await, None);
        assert_eq!(
            weak.load_fold::<serde_json::Value>("arn:b".into()).await,
            None
        );
        // A file that does not read back.
        writer.save(with_fold(5));
        let (done, written) = tokio::sync::oneshot::channel();
        writer.barrier(done);
        written.await.unwrap();
        fs::write(store.cursor_path("arn:a"), b"{not json").unwrap();
        assert_eq!(weak.load_fold::<serde_json::Value>(arn.clone()).await, None);
        // Another execution's cursor in its place, or another version's: not its fold.
        let other = serde_json::to_vec(&CursorFile::V1(Cursor {
            arn: "arn:b".into(),
            ..with_fold(6)
        }))
        .unwrap();
        fs::write(store.cursor_path("arn:a"), &other).unwrap();
        assert_eq!(weak.load_fold::<serde_json::Value>(arn.clone()).await, None);
        let mut newer: serde_json::Value =
            serde_json::to_value(CursorFile::V1(with_fold(7))).unwrap();
        newer["version"] = "2".into();
        fs::write(
            store.cursor_path("arn:a"),
            serde_json::to_vec(&newer).unwrap(),
        )
        .unwrap();
        assert_eq!(weak.load_fold::<serde_json::Value>(arn.clone()).await, None);
        newer["version"] = "1".into();
        fs::write(
            store.cursor_path("arn:a"),
            serde_json::to_vec(&newer).unwrap(),
        )
        .unwrap();
        assert_eq!(
            weak.load_fold::<serde_json::Value>(arn.clone()).await,
            Some(serde_json::json!({ "at": 7 }))
        );
        // The handle does not keep the writer open: once it stopped, loads answer None.
        drop(writer);
        task.await.unwrap();
        assert_eq!(weak.load_fold::<serde_json::Value>(arn).await, None);
    }

    #[test]
    fn one_store_at_a_time_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = CheckpointStore::open(dir.path()).unwrap();
        let again = CheckpointStore::open(dir.path()).unwrap_err();
        assert!(matches!(again, CheckpointError::Locked { .. }), "{again}");
        assert!(again.to_string().contains("own checkpoint.dir"), "{again}");
        // A clone (the writer's) keeps it held; the last one to go lets go of it.
        let writer = first.clone();
        drop(first);
        assert!(CheckpointStore::open(dir.path()).is_err());
        drop(writer);
        CheckpointStore::open(dir.path()).unwrap();
    }

    #[test]
    fn the_format_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&cursor("arn:a", 3)).unwrap();
        let text = fs::read_to_string(store.cursor_path("arn:a")).unwrap();
        assert!(text.starts_with("{\"version\":\"1\""), "{text}");
    }

    #[test]
    fn corrupt_files_are_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&cursor("arn:good", 5)).unwrap();
        let bad = store.cursor_path("arn:bad");
        fs::write(
            &bad,
            b"{\"version\":\"1\",\"arn\":\"arn:bad\",\"last_event_id\":",
        )
        .unwrap();
        let (all, corrupt) = store.load_all(false).unwrap();
        assert_eq!(all, vec![cursor("arn:good", 5)]);
        assert_eq!(corrupt.len(), 1);
        for c in &corrupt {
            assert!(!c.path.exists());
            assert!(c.moved_to.as_ref().unwrap().exists());
        }
        // Moved aside: the next start does not see them again.
        assert!(store.load_all(false).unwrap().1.is_empty());
    }

    #[test]
    fn a_file_of_a_newer_version_is_refused_unless_reread() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&cursor("arn:good", 5)).unwrap();
        let future = dir.path().join("executions/ffff.json");
        fs::write(
            &future,
            b"{\"version\":\"2\",\"arn\":\"x\",\"new_field\":1}",
        )
        .unwrap();
        let e = store.load_all(false).unwrap_err();
        assert_eq!(e.path, future);
        assert_eq!(e.version, "2");
        let text = e.to_string();
        assert!(
            text.contains("ffff.json") && text.contains("format 2"),
            "{text}"
        );
        assert!(future.exists(), "a refusal moves nothing");
        // Reread: moved aside like a corrupt file, the rest loads.
        let (all, corrupt) = store.load_all(true).unwrap();
        assert_eq!(all, vec![cursor("arn:good", 5)]);
        assert_eq!(corrupt.len(), 1);
        assert!(
            corrupt[0].reason.contains("newer version"),
            "{:?}",
            corrupt[0]
        );
        assert!(!future.exists());
        // The same for tracked.json.
        let tracked = dir.path().join("tracked.json");
        fs::write(&tracked, b"{\"version\":\"3\",\"added\":[]}").unwrap();
        assert_eq!(store.load_tracking(false).unwrap_err().version, "3");
        let (t, moved) = store.load_tracking(true).unwrap();
        assert_eq!(t, TrackingChanges::default());
        assert!(moved.is_some());
    }

    #[test]
    fn tracking_changes_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(
            store.load_tracking(false).unwrap().0,
            TrackingChanges::default()
        );
        let t = TrackingChanges {
            added: vec!["arn:x".into()],
            removed: vec!["arn:y".into()],
            forgotten: vec![Forgotten {
                arn: "arn:z".into(),
                started_ms: Some(5),
            }],
        };
        store.save_tracking(&t).unwrap();
        assert_eq!(store.load_tracking(false).unwrap().0, t);
        fs::write(dir.path().join("tracked.json"), b"nonsense").unwrap();
        let (t2, corrupt) = store.load_tracking(false).unwrap();
        assert_eq!(t2, TrackingChanges::default());
        assert!(corrupt.is_some());
    }

    #[test]
    fn an_unwritable_directory_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        assert!(CheckpointStore::open(&file).is_err());
    }
}
