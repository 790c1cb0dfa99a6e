//! A value built from a listener's settings and the files they name (TLS certificates, a
//! JWKS), rebuilt when one of those files changes, so renewed files take effect without a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::Layer;

#[derive(Clone)]
pub struct Reloading<T> {
    pub listener: String,
    /// What the value is, for the log (`its TLS certificates`).
    what: &'static str,
    settings: Arc<Layer>,
    build: fn(&str, &Layer) -> Result<Built<T>, String>,
    built: Arc<Mutex<Built<T>>>,
}

/// What was built and the files it was built from, with their modification times then.
pub struct Built<T> {
    pub files: Vec<(PathBuf, Option<SystemTime>)>,
    pub value: T,
}

impl<T: Clone> Reloading<T> {
    pub fn new(listener: &str, what: &'static str, settings: &Layer, build: fn(&str, &Layer) -> Result<Built<T>, String>) -> Result<Reloading<T>, String> {
        let built = build(listener, settings)?;
        Ok(Reloading { listener: listener.to_string(), what, settings: Arc::new(settings.clone()), build, built: Arc::new(Mutex::new(built)) })
    }

    /// The value to use now: rebuilt first if a file it came from has changed; a file that
    /// no longer loads keeps the previous value in use, with a warning.
    pub fn current(&self) -> T {
        let mut built = self.built.lock().expect("reloading lock");
        if built.files.iter().any(|(path, modified)| modified_time(path) != *modified) {
            match (self.build)(&self.listener, &self.settings) {
                Ok(rebuilt) => {
                    tracing::info!("listener {}: reloaded {}", self.listener, self.what);
                    *built = rebuilt;
                }
                Err(e) => {
                    tracing::warn!("listener {}: keeping {} already loaded: {e}", self.listener, self.what);
                    built.files = built.files.iter().map(|(path, _)| (path.clone(), modified_time(path))).collect();
                }
            }
        }
        built.value.clone()
    }
}

pub fn modified_time(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
