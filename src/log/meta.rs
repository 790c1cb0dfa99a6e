//! Small records in the `meta` column family. Each module keeps its own key prefix.
//!
//! Writes go through the store's meta writer thread and are applied in the order they are
//! submitted; reads (`get`, `scan`) run on the calling thread and are for start-up only.

use std::future::Future;

use anyhow::{Context, Result};
use rocksdb::{ReadOptions, WriteBatch, DB};

use super::db::META_CF;
use super::io::{Io, Lane};

#[derive(Clone)]
pub struct Meta {
    io: Io,
}

fn cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(META_CF).expect("meta column family exists")
}

impl Meta {
    pub(super) fn new(io: Io) -> Meta {
        Meta { io }
    }

    fn handle(&self) -> Result<std::sync::Arc<DB>> {
        self.io.db().get().map_err(|_| anyhow::anyhow!("the store is unavailable after a failed reopen"))
    }

    fn build(&self, fill: impl FnOnce(&DB, &mut WriteBatch) -> Result<()>) -> Result<WriteBatch> {
        let mut batch = WriteBatch::default();
        fill(&*self.handle()?, &mut batch)?;
        Ok(batch)
    }

    /// Queues the batch now; the future says whether it was stored.
    fn submit(&self, batch: Result<WriteBatch>) -> impl Future<Output = Result<()>> + Send + 'static {
        let written = batch.map(|batch| self.io.write(Lane::Meta, batch));
        async move {
            written?.await.map_err(|_| refused())
        }
    }

    /// For start-up: reads on the calling thread.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.handle()?;
        db.get_cf(cf(&db), key).context("reading metadata")
    }

    /// Queues all puts (`Some`) and deletes (`None`) as one atomic write, now.
    pub fn write(&self, changes: &[(&[u8], Option<&[u8]>)]) -> impl Future<Output = Result<()>> + Send + 'static {
        self.submit(self.build(|db, batch| {
            put_all(db, batch, changes);
            Ok(())
        }))
    }

    /// For start-up: writes on the calling thread.
    pub fn write_now(&self, changes: &[(&[u8], Option<&[u8]>)]) -> Result<()> {
        let db = self.handle()?;
        let mut batch = WriteBatch::default();
        put_all(&db, &mut batch, changes);
        drop(db);
        self.io.db().write(batch).map_err(|_| refused())
    }

    /// For start-up: every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = prefix_end(prefix) {
            opts.set_iterate_upper_bound(end);
        }
        let db = self.handle()?;
        let mut it = db.raw_iterator_cf_opt(cf(&db), opts);
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push((k.to_vec(), v.to_vec()));
            it.next();
        }
        it.status().context("scanning metadata")?;
        Ok(out)
    }

    /// Queues the deletion of every key starting with `prefix`, together with `changes`, now.
    pub fn delete_prefix(&self, prefix: &[u8], changes: &[(&[u8], Option<&[u8]>)]) -> impl Future<Output = Result<()>> + Send + 'static {
        self.submit(self.build(|db, batch| {
            batch.delete_range_cf(cf(db), prefix.to_vec(), prefix_end(prefix).context("cannot delete an all-0xff prefix")?);
            put_all(db, batch, changes);
            Ok(())
        }))
    }
}

fn refused() -> anyhow::Error {
    anyhow::anyhow!("the store refused the write (disk full or failed); see the error logged before")
}

pub(super) fn put_all(db: &DB, batch: &mut WriteBatch, changes: &[(&[u8], Option<&[u8]>)]) {
    for (key, value) in changes {
        match value {
            Some(v) => batch.put_cf(cf(db), key, v),
            None => batch.delete_cf(cf(db), key),
        }
    }
}

/// The smallest key above every key with this prefix.
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
