//! Small records in the `meta` column family. Each module keeps its own key prefix.

use std::sync::Arc;

use anyhow::{Context, Result};
use rocksdb::{ReadOptions, WriteBatch, DB};

use super::db::{Db, META_CF};

#[derive(Clone)]
pub struct Meta {
    db: Arc<Db>,
}

fn cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(META_CF).expect("meta column family exists")
}

impl Meta {
    pub(super) fn new(db: Arc<Db>) -> Meta {
        Meta { db }
    }

    fn handle(&self) -> Result<Arc<DB>> {
        self.db.get().map_err(|_| anyhow::anyhow!("the store is unavailable after a failed reopen"))
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.db.write(batch).map_err(|_| anyhow::anyhow!("the store refused the write (disk full or failed); see the error logged before"))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.handle()?;
        db.get_cf(cf(&db), key).context("reading metadata")
    }

    /// Writes all puts (`Some`) and deletes (`None`) atomically.
    pub fn write(&self, changes: &[(&[u8], Option<&[u8]>)]) -> Result<()> {
        let db = self.handle()?;
        let mut batch = WriteBatch::default();
        for (key, value) in changes {
            match value {
                Some(v) => batch.put_cf(cf(&db), key, v),
                None => batch.delete_cf(cf(&db), key),
            }
        }
        drop(db);
        self.commit(batch)
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
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

    pub fn delete_prefix(&self, prefix: &[u8]) -> Result<()> {
        let end = prefix_end(prefix).context("cannot delete an all-0xff prefix")?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&*self.handle()?), prefix.to_vec(), end);
        self.commit(batch)
    }
}

/// The smallest key above every key with this prefix.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
