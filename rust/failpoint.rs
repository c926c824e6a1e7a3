//! Named fault-injection points, compiled in only with the `failpoints`
//! cargo feature; without it `hit` is an inlined `Ok(())`.
//!
//! Configure with `RAFTWAL_FAILPOINTS="name=action[@n];..."` (read at the
//! first hit) or with `configure` at run time. Actions: `eio` and `enospc`
//! make the operation fail with that errno; `kill` SIGKILLs the process at
//! the point; `tear` (write sites only) writes part of the buffer (the
//! caller decides how much), then SIGKILLs. `@n` fires on the n-th hit only (1-based); without
//! it, on every hit. `off` removes a point.
//!
//! Points: `create_before_rename`, `preallocate`, `write_before`,
//! `write_after`, `fsync_before`, `fsync_after`, `dirsync_before`,
//! `cut_before_truncate`, `cut_before_header`, `cut_before_rename`,
//! `cut_after_rename`, `snapshot_before_record`.

use std::io;

#[cfg(feature = "failpoints")]
mod imp {
    use std::collections::HashMap;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Action {
        Eio,
        Enospc,
        Kill,
        Tear,
    }

    struct Point {
        action: Action,
        nth: Option<u64>,
        hits: u64,
    }

    static ACTIVE: AtomicBool = AtomicBool::new(false);
    static TABLE: OnceLock<Mutex<HashMap<String, Point>>> = OnceLock::new();

    fn table() -> &'static Mutex<HashMap<String, Point>> {
        TABLE.get_or_init(|| {
            let m = Mutex::new(HashMap::new());
            if let Ok(spec) = std::env::var("RAFTWAL_FAILPOINTS") {
                let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                if parse_into(&spec, &mut g).is_ok() && !g.is_empty() {
                    ACTIVE.store(true, Ordering::SeqCst);
                }
            }
            m
        })
    }

    fn parse_into(spec: &str, t: &mut HashMap<String, Point>) -> Result<(), String> {
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once('=')
                .ok_or_else(|| format!("bad failpoint {item:?}"))?;
            let (act, nth) = match rest.split_once('@') {
                Some((a, n)) => (
                    a,
                    Some(
                        n.parse::<u64>()
                            .map_err(|_| format!("bad count in {item:?}"))?,
                    ),
                ),
                None => (rest, None),
            };
            let action = match act {
                "eio" => Action::Eio,
                "enospc" => Action::Enospc,
                "kill" => Action::Kill,
                "tear" => Action::Tear,
                "off" => {
                    t.remove(name);
                    continue;
                }
                _ => return Err(format!("unknown failpoint action {act:?}")),
            };
            t.insert(
                name.to_string(),
                Point {
                    action,
                    nth,
                    hits: 0,
                },
            );
        }
        Ok(())
    }

    pub fn configure(spec: &str) -> Result<(), String> {
        let mut g = table().lock().unwrap_or_else(|p| p.into_inner());
        parse_into(spec, &mut g)?;
        ACTIVE.store(!g.is_empty(), Ordering::SeqCst);
        Ok(())
    }

    pub fn hits(name: &str) -> u64 {
        let g = table().lock().unwrap_or_else(|p| p.into_inner());
        g.get(name).map_or(0, |p| p.hits)
    }

    /// The action due at this hit of `name`, if any.
    pub fn due(name: &str) -> Option<Action> {
        let t = table();
        if !ACTIVE.load(Ordering::Relaxed) {
            return None;
        }
        let mut g = t.lock().unwrap_or_else(|p| p.into_inner());
        let p = g.get_mut(name)?;
        p.hits += 1;
        match p.nth {
            Some(n) if n != p.hits => None,
            _ => Some(p.action),
        }
    }

    pub fn kill() -> ! {
        // SAFETY: plain syscalls; SIGKILL cannot be caught.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
            libc::_exit(137)
        }
    }

    pub fn err(a: Action) -> io::Error {
        match a {
            Action::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
            _ => io::Error::from_raw_os_error(libc::EIO),
        }
    }
}

/// Pass through failpoint `name`: an injected error, a kill, or nothing.
#[inline(always)]
pub fn hit(_name: &str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(a) = imp::due(_name) {
        return match a {
            imp::Action::Kill | imp::Action::Tear => imp::kill(),
            other => Err(imp::err(other)),
        };
    }
    Ok(())
}

/// A write site: like `hit`, but `tear` hands `buf` to `write` (which
/// writes the part that survives) before the process is killed.
#[inline(always)]
pub fn write_site<F: FnMut(&[u8]) -> io::Result<()>>(
    _name: &str,
    _buf: &[u8],
    _write: F,
) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(a) = imp::due(_name) {
        let mut write = _write;
        return match a {
            imp::Action::Tear => {
                let _ = write(_buf);
                imp::kill()
            }
            imp::Action::Kill => imp::kill(),
            other => Err(imp::err(other)),
        };
    }
    Ok(())
}

/// Whether this build has failpoints.
pub const ENABLED: bool = cfg!(feature = "failpoints");

#[cfg(feature = "failpoints")]
pub use imp::{configure, hits};
