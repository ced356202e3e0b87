//! Reading `/proc/sysvipc/shm` and `/proc/sysvipc/sem`, the tables that
//! `ipcs` reads. Columns are found by their header names.

use crate::error::{Error, Result};

/// One semaphore set as `/proc/sysvipc/sem` lists it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SemRow {
    /// The key (0 for a private set).
    pub(super) key: i32,
    pub(super) semid: i32,
    pub(super) nsems: u64,
    /// Creator uid.
    pub(super) cuid: u32,
    /// Last change by `semctl` (creation, SETALL), seconds since the epoch.
    pub(super) ctime: u64,
}

/// One segment as `/proc/sysvipc/shm` lists it (readable by anyone, even
/// where `shmctl(IPC_STAT)` is refused).
#[derive(Debug, Clone, Copy)]
pub(super) struct ShmRow {
    pub(super) key: i32,
    pub(super) shmid: i32,
    /// Permission bits and status bits (`sys::split_mode` tells them apart).
    pub(super) perms: u32,
    pub(super) size: usize,
    pub(super) nattch: u64,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) cuid: u32,
}

/// Every segment id.
pub(super) fn shm_ids() -> Result<Vec<i32>> {
    let table = Table::read("/proc/sysvipc/shm")?;
    let ids = table.rows().filter_map(|r| table.num(&r, "shmid"));
    Ok(ids.collect())
}

/// The listing's row of segment `shmid`.
pub(super) fn shm_row(shmid: i32) -> Result<Option<ShmRow>> {
    let t = Table::read("/proc/sysvipc/shm")?;
    let row = |r: &[&str]| {
        Some(ShmRow {
            key: t.num::<i64>(r, "key")? as i32,
            shmid: t.num(r, "shmid")?,
            // Printed in octal.
            perms: u32::from_str_radix(r.get(t.column("perms")?)?, 8).ok()?,
            size: t.num(r, "size")?,
            nattch: t.num(r, "nattch")?,
            uid: t.num(r, "uid")?,
            gid: t.num(r, "gid")?,
            cuid: t.num(r, "cuid")?,
        })
    };
    Ok(t.rows().filter_map(|r| row(&r)).find(|r| r.shmid == shmid))
}

/// Every semaphore set.
pub(super) fn sem_rows() -> Result<Vec<SemRow>> {
    let t = Table::read("/proc/sysvipc/sem")?;
    let row = |r: &[&str]| {
        Some(SemRow {
            // Printed as a signed int; read wide so either form parses.
            key: t.num::<i64>(r, "key")? as i32,
            semid: t.num(r, "semid")?,
            nsems: t.num(r, "nsems")?,
            cuid: t.num(r, "cuid")?,
            ctime: t.num(r, "ctime")?,
        })
    };
    Ok(t.rows().filter_map(|r| row(&r)).collect())
}

struct Table {
    columns: Vec<String>,
    text: String,
}

impl Table {
    fn read(path: &str) -> Result<Table> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Os {
            call: "read",
            channel: path.into(),
            source: e,
        })?;
        let header = text.lines().next().unwrap_or_default();
        let columns = header.split_whitespace().map(str::to_owned).collect();
        Ok(Table { columns, text })
    }

    fn rows(&self) -> impl Iterator<Item = Vec<&str>> {
        let lines = self.text.lines().skip(1);
        lines.map(|l| l.split_whitespace().collect())
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn num<T: std::str::FromStr>(&self, row: &[&str], column: &str) -> Option<T> {
        row.get(self.column(column)?)?.parse().ok()
    }
}
