//! File-system helpers: locks, preallocation, fsync of files and directories.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::failpoint;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Take an exclusive whole-file lock on `f`: an open-file-description lock
/// (what etcd uses on Linux, so etcd and raftwal see each other's locks),
/// falling back to flock where OFD locks are not supported.
/// Returns Ok(false) when `block` is false and another holder has it.
pub fn lock(f: &File, block: bool) -> io::Result<bool> {
    let fd = f.as_raw_fd();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: zeroed flock is a valid value; fcntl gets a pointer to it.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let cmd = if block {
            libc::F_OFD_SETLKW
        } else {
            libc::F_OFD_SETLK
        };
        loop {
            // SAFETY: valid fd and pointer to an initialised flock.
            let r = unsafe { libc::fcntl(fd, cmd, &fl) };
            if r != -1 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::EACCES) if !block => return Ok(false),
                Some(libc::EINVAL) => break, // no OFD locks: use flock
                _ => return Err(e),
            }
        }
    }
    let op = libc::LOCK_EX | if block { 0 } else { libc::LOCK_NB };
    loop {
        // SAFETY: plain syscall on a valid fd.
        let r = unsafe { libc::flock(fd, op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !block => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Whether another open file description holds a lock on `f` (a writer
/// is live on it), asked without taking one: a reader must never make a
/// writer's own lock attempt fail. Where that cannot be asked (no OFD
/// locks), says true, the cautious answer.
pub fn held_by_another(f: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: zeroed flock is a valid value; fcntl gets a pointer to it.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        loop {
            // SAFETY: valid fd and pointer to an initialised flock.
            let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
            if r != -1 {
                return fl.l_type != libc::F_UNLCK as libc::c_short;
            }
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return true;
            }
        }
    }
    #[allow(unreachable_code)]
    true
}

/// Take an exclusive flock on a directory opened read-only (record locks
/// need a file open for writing). Ok(false): another holder has it.
pub fn lock_dir(d: &File) -> io::Result<bool> {
    loop {
        // SAFETY: plain syscall on a valid fd.
        let r = unsafe { libc::flock(d.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Extend `f` to `size` bytes with allocated blocks (fallocate), falling back
/// to ftruncate where the file system cannot preallocate. A full disk is an
/// error here, before any record is written.
pub fn preallocate(f: &File, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    failpoint::hit("preallocate")?;
    let len = i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    #[cfg(target_os = "linux")]
    loop {
        // SAFETY: plain syscall on a valid fd.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP) => break,
            _ => return Err(e),
        }
    }
    let cur = f.metadata()?.len();
    if cur < size {
        f.set_len(size)?;
    }
    Ok(())
}

/// fdatasync: the data and the metadata needed to read it back.
pub fn fdatasync(f: &File) -> io::Result<()> {
    failpoint::hit("fsync_before")?;
    #[cfg(target_os = "linux")]
    loop {
        // SAFETY: plain syscall on a valid fd.
        let r = unsafe { libc::fdatasync(f.as_raw_fd()) };
        if r == 0 {
            return failpoint::hit("fsync_after");
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    #[cfg(not(target_os = "linux"))]
    f.sync_data()
}

/// fdatasync without failpoints, for work that is only an optimisation.
pub fn fdatasync_quiet(f: &File) -> io::Result<()> {
    loop {
        match f.sync_data() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// fsync a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_dir_handle(&open_dir(dir)?)
}

/// A directory opened for `sync_dir_handle` (a writer keeps its WAL
/// directory open, so a cut needs no new descriptor).
pub fn open_dir(dir: &Path) -> io::Result<File> {
    File::open(dir)
}

/// fsync an open directory, making renames and creations in it durable.
pub fn sync_dir_handle(dir: &File) -> io::Result<()> {
    failpoint::hit("dirsync_before")?;
    dir.sync_all()
}

pub fn create_locked(path: &Path, block: bool) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    if lock(&f, block)? {
        Ok(Some(f))
    } else {
        Ok(None)
    }
}

pub fn open_locked(path: &Path, block: bool) -> io::Result<Option<File>> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    if lock(&f, block)? {
        Ok(Some(f))
    } else {
        Ok(None)
    }
}

pub fn mkdir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(DIR_MODE).create(path)
}

/// Set the file's size to `off` and then back to `len`, so that every byte
/// from `off` on reads as zero (stale bytes after the end of the log are
/// wiped before new records are appended behind it).
pub fn zero_to_end(f: &File, off: u64) -> io::Result<()> {
    let len = f.metadata()?.len();
    f.set_len(off)?;
    if len > off {
        preallocate(f, len)?;
    }
    Ok(())
}

/// This process's id without a system call per ask (a save checks it
/// several times, to refuse writes from a forked child): cached, and
/// forgotten in a child by a `pthread_atfork` handler, so a child asks the
/// kernel again.
pub fn current_pid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Once;
    static PID: AtomicU32 = AtomicU32::new(0);
    static HOOK: Once = Once::new();
    extern "C" fn forget() {
        PID.store(0, Ordering::Relaxed);
    }
    HOOK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which
        // is async-signal-safe as a fork child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget));
        }
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// A new, empty file open for reading and writing, for tests.
#[cfg(test)]
pub fn fresh_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_sees_its_own_pid() {
        let parent = current_pid();
        assert_eq!(parent, std::process::id());
        let mut fds = [0; 2];
        // SAFETY: a pipe and a fork whose child only computes, writes four
        // bytes and exits without unwinding.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let child = libc::fork();
            assert!(child >= 0);
            if child == 0 {
                let ok: u32 =
                    u32::from(current_pid() == std::process::id() && current_pid() != parent);
                libc::write(fds[1], (&ok as *const u32).cast(), 4);
                libc::_exit(0);
            }
            let mut got = 0u32;
            assert_eq!(libc::read(fds[0], (&mut got as *mut u32).cast(), 4), 4);
            libc::waitpid(child, std::ptr::null_mut(), 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
            assert_eq!(got, 1, "the child saw the parent's pid");
        }
        assert_eq!(current_pid(), parent);
    }

    #[test]
    fn a_reader_sees_a_writer_s_lock_without_taking_one() {
        let dir = std::env::temp_dir().join(format!("raftwal-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg");
        let writer = fresh_file(&path);
        let reader = File::open(&path).unwrap();
        assert!(!held_by_another(&reader));
        assert!(lock(&writer, false).unwrap());
        assert!(held_by_another(&reader));
        // Asking did not take the lock: a second writer is still refused
        // only because the first holds it, and gets it once that one goes.
        let second = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(!lock(&second, false).unwrap());
        drop(writer);
        assert!(!held_by_another(&reader));
        assert!(lock(&second, false).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
