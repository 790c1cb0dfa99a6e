//! Client quotas (Kafka's KIP-13, KIP-55, KIP-124, KIP-219): byte rates for produce and
//! fetch, set per user, per client id, or per both, with `<default>` entities, and the
//! [`ClientQuotaManager`] that measures each client against its quota and says how long to
//! throttle it.
//!
//! The quotas themselves are metadata (records applied to the image, written through the
//! controller); this module owns what they mean: which entities and keys exist, how a request's
//! values are checked, which quota applies to a client, and the rate math. It reads quotas
//! through [`ClientQuotas`], so it knows nothing of where they are kept.

pub mod rate;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::cluster::Failure;
pub use rate::{Rate, SampleWindows};

/// The name of one side of a quota entity: a user or client id, or the default for all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    /// Kafka's `<default>` (a null name on the wire).
    Default,
    Named(String),
}

impl EntityName {
    /// The wire form: `None` for the default.
    pub fn wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Default => write!(f, "<default>"),
            EntityName::Named(name) => write!(f, "{name}"),
        }
    }
}

/// Who a quota applies to: a user, a client id, or a user's client id (Kafka's
/// `ClientQuotaEntity` of the `user` and `client-id` types).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
/// Kafka's IP entity (connection creation rates), which Gregor does not keep.
pub const IP: &str = "ip";

impl QuotaEntity {
    /// `(type, name)` pairs as the protocol carries them, user first.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let user = self.user.as_ref().map(|u| (USER, u.wire()));
        let client = self.client_id.as_ref().map(|c| (CLIENT_ID, c.wire()));
        user.into_iter().chain(client).collect()
    }

    /// Checks a request's entity as Kafka's ClientQuotaControlManager does.
    pub fn from_components(components: &[(String, Option<String>)]) -> Result<QuotaEntity, Failure> {
        if components.is_empty() {
            return Err(invalid("Invalid empty client quota entity".into()));
        }
        let mut entity = QuotaEntity { user: None, client_id: None };
        for (kind, name) in components {
            let slot = match kind.as_str() {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => return Err(invalid("IP quotas (connection_creation_rate) are not supported by this broker".into())),
                other => return Err((ResponseError::UnsupportedVersion, format!("Unhandled client quota entity type: {other}"))),
            };
            if slot.is_some() {
                return Err(invalid(format!("Invalid empty client quota entity, duplicate entity entry {kind}")));
            }
            *slot = Some(match name {
                None => EntityName::Default,
                Some(name) if name.is_empty() => return Err(invalid(format!("Empty {kind} not supported"))),
                Some(name) => EntityName::Named(name.clone()),
            });
        }
        Ok(entity)
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.components().into_iter().map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>"))).collect();
        write!(f, "{}", parts.join(","))
    }
}

fn invalid(message: String) -> Failure {
    (ResponseError::InvalidRequest, message)
}

/// The quota keys of user and client-id entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// Bytes per second a client may produce (Kafka's `producer_byte_rate`).
    ProducerByteRate,
    /// Bytes per second a client may fetch as a consumer.
    ConsumerByteRate,
    /// Percent of one thread's time a client's requests may take to handle (Kafka's
    /// `request_percentage`).
    RequestPercentage,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 3] = [QuotaKey::ProducerByteRate, QuotaKey::ConsumerByteRate, QuotaKey::RequestPercentage];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
        }
    }

    pub fn parse(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Checks a value to set as Kafka does: the byte rates are LONG settings, the
    /// percentage a DOUBLE; a quota of zero or less would never let anything through.
    pub fn check_value(self, value: f64) -> Result<f64, Failure> {
        let key = self.name();
        if !value.is_finite() || value <= 0.0 {
            return Err(invalid(format!("Invalid value {value} for configuration {key}: Quota must be positive")));
        }
        if self != QuotaKey::RequestPercentage {
            if value > i64::MAX as f64 {
                return Err(invalid(format!("Proposed value for {key} is too large for a LONG.")));
            }
            if value.fract() != 0.0 {
                return Err(invalid(format!("Configuration {key} must be a Long value")));
            }
        }
        Ok(value)
    }
}

/// One change of an entity's quotas: `Some` sets the key, `None` removes it.
pub fn check_op(key: &str, value: f64, remove: bool) -> Result<(QuotaKey, Option<f64>), Failure> {
    let quota_key = QuotaKey::parse(key).ok_or_else(|| invalid(format!("Invalid configuration key {key}")))?;
    match remove {
        true => Ok((quota_key, None)),
        false => quota_key.check_value(value).map(|v| (quota_key, Some(v))),
    }
}

/// One component of a DescribeClientQuotas filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// This name, or the default for `None` (Kafka's MATCH_TYPE_EXACT and MATCH_TYPE_DEFAULT).
    Exactly(EntityName),
    /// Any name, the default included (MATCH_TYPE_SPECIFIED).
    Any,
}

/// Which entities DescribeClientQuotas answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilter {
    user: Option<Match>,
    client_id: Option<Match>,
    /// Only entities with exactly the filtered types; otherwise more types may be present.
    strict: bool,
    /// The filter asks for IP entities, of which there are none.
    ip: bool,
}

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

impl QuotaFilter {
    /// Checks a request's `(entity type, match type, match)` components as Kafka does.
    pub fn new(components: &[(String, i8, Option<String>)], strict: bool) -> Result<QuotaFilter, Failure> {
        let mut filter = QuotaFilter { user: None, client_id: None, strict, ip: false };
        let mut seen = Vec::new();
        for (kind, match_type, name) in components {
            if seen.contains(kind) {
                return Err(invalid(format!("Entity type {kind} cannot appear more than once in the filter.")));
            }
            seen.push(kind.clone());
            let matching = match (*match_type, name) {
                (MATCH_EXACT, Some(name)) => Match::Exactly(EntityName::Named(name.clone())),
                (MATCH_EXACT, None) => return Err(invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.".into())),
                (MATCH_DEFAULT, None) => Match::Exactly(EntityName::Default),
                (MATCH_DEFAULT, Some(_)) => return Err(invalid("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.".into())),
                (MATCH_SPECIFIED, None) => Match::Any,
                (MATCH_SPECIFIED, Some(_)) => return Err(invalid("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.".into())),
                (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
            };
            match kind.as_str() {
                USER => filter.user = Some(matching),
                CLIENT_ID => filter.client_id = Some(matching),
                IP => filter.ip = true,
                other => return Err((ResponseError::UnsupportedVersion, format!("Custom entity type '{other}' not supported"))),
            }
        }
        if filter.ip && (filter.user.is_some() || filter.client_id.is_some()) {
            return Err(invalid("Invalid entity filter component combination, IP filter component should not be used with user or clientId filter component.".into()));
        }
        Ok(filter)
    }

    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        if self.ip {
            return false;
        }
        let side = |filter: &Option<Match>, name: &Option<EntityName>| match (filter, name) {
            (None, None) => true,
            (None, Some(_)) => !self.strict,
            (Some(_), None) => false,
            (Some(Match::Any), Some(_)) => true,
            (Some(Match::Exactly(want)), Some(name)) => want == name,
        };
        side(&self.user, &entity.user) && side(&self.client_id, &entity.client_id)
    }
}

/// Where the quotas are kept (the metadata image).
pub trait ClientQuotas {
    /// The value of `key` set on exactly `entity`.
    fn quota(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64>;
    /// Whether any quota is set at all: without, nothing is measured.
    fn any_quota(&self) -> bool;
}

/// The quota of `key` that applies to `user`'s connections with `client_id`, with the entity
/// it is set on: the first of Kafka's eight levels that sets it, most specific first.
pub fn resolve(quotas: &impl ClientQuotas, key: QuotaKey, user: &str, client_id: &str) -> Option<(QuotaEntity, f64)> {
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let default = || Some(EntityName::Default);
    let levels = [
        (named(user), named(client_id)),
        (named(user), default()),
        (named(user), None),
        (default(), named(client_id)),
        (default(), default()),
        (default(), None),
        (None, named(client_id)),
        (None, default()),
    ];
    levels.into_iter().map(|(user, client_id)| QuotaEntity { user, client_id }).find_map(|entity| quota_of(quotas, entity, key))
}

fn quota_of(quotas: &impl ClientQuotas, entity: QuotaEntity, key: QuotaKey) -> Option<(QuotaEntity, f64)> {
    quotas.quota(&entity, key).map(|value| (entity, value))
}

/// Rates idle this long are dropped (Kafka expires its quota sensors after an hour).
const SENSOR_IDLE_MS: u64 = 3_600_000;
/// How often idle rates are looked for.
const SENSOR_SWEEP_MS: u64 = 60_000;

/// Whose usage one rate measures: the user and client id of the connections it counts, each
/// empty when the quota that applies is not set per user or per client id. A quota on
/// `/users/alice` is shared by all of alice's clients; one on `/clients/<default>` is each
/// client id's own (Kafka's quota metric tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    key: QuotaKey,
    user: String,
    client_id: String,
}

struct Sensor {
    rate: Rate,
    last_recorded_ms: u64,
}

struct Sensors {
    by_key: HashMap<SensorKey, Sensor>,
    last_sweep_ms: u64,
}

/// Measures produce and fetch bytes against the client quotas (Kafka's ClientQuotaManager):
/// each call records a request's bytes and answers the throttle time, zero when the client
/// is within its quota or has none.
pub struct ClientQuotaManager {
    windows: SampleWindows,
    sensors: Mutex<Sensors>,
    started: Instant,
}

impl ClientQuotaManager {
    pub fn new(windows: SampleWindows) -> ClientQuotaManager {
        ClientQuotaManager { windows, sensors: Mutex::new(Sensors { by_key: HashMap::new(), last_sweep_ms: 0 }), started: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records `bytes` of `key` (a produce request's size, a fetch response's) for a user's
    /// client; the throttle in milliseconds.
    pub fn record(&self, quotas: &impl ClientQuotas, key: QuotaKey, user: &str, client_id: &str, bytes: usize) -> u64 {
        self.record_at(quotas, key, user, client_id, bytes as f64, self.now_ms())
    }

    /// Records the time a request's handler kept a thread busy against the client's
    /// `request_percentage`; the throttle in milliseconds. As in Kafka, a second of thread
    /// time counts 100 (percent of one thread), so the rate is the percentage.
    pub fn record_request_time(&self, quotas: &impl ClientQuotas, user: &str, client_id: &str, thread_time: Duration) -> u64 {
        self.record_at(quotas, QuotaKey::RequestPercentage, user, client_id, thread_time.as_secs_f64() * 100.0, self.now_ms())
    }

    /// Takes back bytes recorded but not sent after all (a throttled fetch answers empty).
    pub fn unrecord(&self, quotas: &impl ClientQuotas, key: QuotaKey, user: &str, client_id: &str, bytes: usize) {
        self.record_at(quotas, key, user, client_id, -(bytes as f64), self.now_ms());
    }

    /// The most a client may take in one fetch: its quota's worth of the shortest span a rate
    /// is measured over (Kafka's `getMaxValueInQuotaWindow`), so one response cannot put it
    /// far over; `None` without a quota.
    pub fn max_bytes_in_window(&self, quotas: &impl ClientQuotas, key: QuotaKey, user: &str, client_id: &str) -> Option<usize> {
        if !quotas.any_quota() {
            return None;
        }
        let (_, quota) = resolve(quotas, key, user, client_id)?;
        let span_ms = self.windows.windows.saturating_sub(1).max(1) as u64 * self.windows.window_ms;
        Some((quota * span_ms as f64 / 1000.0).min(i32::MAX as f64) as usize)
    }

    fn record_at(&self, quotas: &impl ClientQuotas, key: QuotaKey, user: &str, client_id: &str, value: f64, now_ms: u64) -> u64 {
        if !quotas.any_quota() {
            return 0;
        }
        let Some((entity, quota)) = resolve(quotas, key, user, client_id) else {
            return 0;
        };
        let sensor_key = SensorKey {
            key,
            user: if entity.user.is_some() { user.to_string() } else { String::new() },
            client_id: if entity.client_id.is_some() { client_id.to_string() } else { String::new() },
        };
        let mut sensors = self.sensors.lock().expect("quota sensors lock");
        if now_ms.saturating_sub(sensors.last_sweep_ms) >= SENSOR_SWEEP_MS {
            sensors.by_key.retain(|_, s| now_ms.saturating_sub(s.last_recorded_ms) < SENSOR_IDLE_MS);
            sensors.last_sweep_ms = now_ms;
        }
        let windows = self.windows;
        let sensor = sensors.by_key.entry(sensor_key).or_insert_with(|| Sensor { rate: Rate::new(windows, now_ms), last_recorded_ms: now_ms });
        sensor.rate.record(value, now_ms);
        sensor.last_recorded_ms = now_ms;
        sensor.rate.throttle_ms(quota, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Quotas(BTreeMap<(QuotaEntity, QuotaKey), f64>);

    impl Quotas {
        fn set(&mut self, user: Option<EntityName>, client_id: Option<EntityName>, value: f64) {
            self.0.insert((QuotaEntity { user, client_id }, QuotaKey::ProducerByteRate), value);
        }
    }

    impl ClientQuotas for Quotas {
        fn quota(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64> {
            self.0.get(&(entity.clone(), key)).copied()
        }
        fn any_quota(&self) -> bool {
            !self.0.is_empty()
        }
    }

    fn named(n: &str) -> Option<EntityName> {
        Some(EntityName::Named(n.into()))
    }
    const DEFAULT: Option<EntityName> = Some(EntityName::Default);

    #[test]
    fn quotas_resolve_in_kafkas_order() {
        let levels = [
            (named("alice"), named("app"), 1.0),
            (named("alice"), DEFAULT, 2.0),
            (named("alice"), None, 3.0),
            (DEFAULT, named("app"), 4.0),
            (DEFAULT, DEFAULT, 5.0),
            (DEFAULT, None, 6.0),
            (None, named("app"), 7.0),
            (None, DEFAULT, 8.0),
        ];
        let mut quotas = Quotas::default();
        for (user, client, value) in levels.iter().cloned() {
            quotas.set(user, client, value);
        }
        // Take the levels away from the most specific: each time the next one applies.
        for (user, client, value) in levels {
            let (entity, found) = resolve(&quotas, QuotaKey::ProducerByteRate, "alice", "app").expect("a quota applies");
            assert_eq!((entity.user.clone(), entity.client_id.clone(), found), (user.clone(), client.clone(), value));
            quotas.0.remove(&(QuotaEntity { user, client_id: client }, QuotaKey::ProducerByteRate));
        }
        assert!(resolve(&quotas, QuotaKey::ProducerByteRate, "alice", "app").is_none());
    }

    #[test]
    fn other_users_and_keys_do_not_apply() {
        let mut quotas = Quotas::default();
        quotas.set(named("bob"), None, 1.0);
        quotas.set(None, named("other"), 2.0);
        assert!(resolve(&quotas, QuotaKey::ProducerByteRate, "alice", "app").is_none());
        assert!(resolve(&quotas, QuotaKey::ConsumerByteRate, "bob", "app").is_none());
        assert_eq!(resolve(&quotas, QuotaKey::ProducerByteRate, "bob", "other").map(|(_, v)| v), Some(1.0), "the user's quota comes before the client id's");
    }

    #[test]
    fn a_user_quota_is_shared_and_a_default_client_quota_is_each_clients_own() {
        let manager = ClientQuotaManager::new(SampleWindows::DEFAULT);
        let mut quotas = Quotas::default();
        quotas.set(None, DEFAULT, 1000.0);
        // 10 000 bytes in the first 10 s window span is exactly the quota: no throttle.
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "a", 10_000.0, 0), 0);
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "b", 10_000.0, 0), 0, "b has its own rate");
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "a", 1000.0, 0), 1000);
        let mut quotas = Quotas::default();
        quotas.set(named("u"), None, 1000.0);
        let manager = ClientQuotaManager::new(SampleWindows::DEFAULT);
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "a", 10_000.0, 0), 0);
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "b", 1000.0, 0), 1000, "a and b share u's quota");
    }

    #[test]
    fn request_time_counts_as_a_percentage_of_one_thread() {
        let manager = ClientQuotaManager::new(SampleWindows::DEFAULT);
        let mut quotas = Quotas::default();
        quotas.0.insert((QuotaEntity { user: None, client_id: DEFAULT }, QuotaKey::RequestPercentage), 10.0);
        // 10 % of a thread over the 10 s the first windows span: 1 s of handling is the quota.
        let at = |ms: u64| manager.record_at(&quotas, QuotaKey::RequestPercentage, "u", "a", Duration::from_millis(ms).as_secs_f64() * 100.0, 0);
        assert_eq!(at(1000), 0);
        assert_eq!(at(100), 1000, "10 % over: throttled for a tenth of the 10 s");
        assert_eq!(manager.record_request_time(&quotas, "u", "b", Duration::from_millis(500)), 0, "b has its own rate");
        assert_eq!(manager.record_at(&quotas, QuotaKey::ProducerByteRate, "u", "a", 1e9, 0), 0, "no byte rate is set");
    }

    #[test]
    fn entities_and_values_are_checked_as_kafka_does() {
        let c = |kind: &str, name: Option<&str>| (kind.to_string(), name.map(String::from));
        let entity = QuotaEntity::from_components(&[c("user", None), c("client-id", Some("x"))]).expect("valid");
        assert_eq!(entity.to_string(), "user=<default>,client-id=x");
        for bad in [vec![], vec![c("user", Some("a")), c("user", Some("b"))], vec![c("user", Some(""))], vec![c("ip", Some("1.2.3.4"))]] {
            assert_eq!(QuotaEntity::from_components(&bad).unwrap_err().0, ResponseError::InvalidRequest, "{bad:?}");
        }
        assert_eq!(QuotaEntity::from_components(&[c("group", Some("g"))]).unwrap_err().0, ResponseError::UnsupportedVersion);
        assert_eq!(check_op("producer_byte_rate", 1024.0, false).expect("valid"), (QuotaKey::ProducerByteRate, Some(1024.0)));
        assert_eq!(check_op("nope", 1.0, true).unwrap_err().1, "Invalid configuration key nope");
        assert!(check_op("consumer_byte_rate", 1.5, false).is_err());
        assert!(check_op("consumer_byte_rate", 0.0, false).is_err());
        assert!(check_op("request_percentage", 12.5, false).is_ok());
    }

    #[test]
    fn filters_match_exact_default_and_specified_names() {
        let component = |kind: &str, match_type: i8, name: Option<&str>| (kind.to_string(), match_type, name.map(String::from));
        let alice = QuotaEntity { user: named("alice"), client_id: None };
        let alice_app = QuotaEntity { user: named("alice"), client_id: named("app") };
        let default_user = QuotaEntity { user: DEFAULT, client_id: None };
        let exact = QuotaFilter::new(&[component("user", MATCH_EXACT, Some("alice"))], false).expect("valid");
        assert!(exact.matches(&alice) && exact.matches(&alice_app) && !exact.matches(&default_user));
        let strict = QuotaFilter::new(&[component("user", MATCH_EXACT, Some("alice"))], true).expect("valid");
        assert!(strict.matches(&alice) && !strict.matches(&alice_app));
        let default = QuotaFilter::new(&[component("user", MATCH_DEFAULT, None)], false).expect("valid");
        assert!(default.matches(&default_user) && !default.matches(&alice));
        let specified = QuotaFilter::new(&[component("client-id", MATCH_SPECIFIED, None)], false).expect("valid");
        assert!(specified.matches(&alice_app) && !specified.matches(&alice));
        let everything = QuotaFilter::new(&[], false).expect("valid");
        assert!(everything.matches(&alice) && everything.matches(&default_user));
        assert!(QuotaFilter::new(&[component("user", MATCH_EXACT, None)], false).is_err());
        assert!(QuotaFilter::new(&[component("user", MATCH_SPECIFIED, None), component("user", MATCH_DEFAULT, None)], false).is_err());
    }
}
