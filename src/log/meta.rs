//! Small records in the `meta` column family. Each module keeps its own key prefix.

use std::sync::Arc;

use anyhow::{Context, Result};
use rocksdb::{ReadOptions, WriteBatch, DB};

#[derive(Clone)]
pub struct Meta {
    db: Arc<DB>,
    cf: &'static str,
}

impl Meta {
    pub(super) fn new(db: Arc<DB>, cf: &'static str) -> Meta {
        Meta { db, cf }
    }

    fn cf(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(self.cf).expect("meta column family exists")
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(), key).context("reading metadata")
    }

    /// Writes all puts (`Some`) and deletes (`None`) atomically.
    pub fn write(&self, changes: &[(&[u8], Option<&[u8]>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (key, value) in changes {
            match value {
                Some(v) => batch.put_cf(self.cf(), key, v),
                None => batch.delete_cf(self.cf(), key),
            }
        }
        self.db.write(batch).context("writing metadata")
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = prefix_end(prefix) {
            opts.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(), opts);
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
        batch.delete_range_cf(self.cf(), prefix.to_vec(), end);
        self.db.write(batch).context("deleting metadata")
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
