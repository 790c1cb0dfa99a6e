//! Jute, ZooKeeper's wire encoding (big-endian integers, i32-length-prefixed buffers and
//! strings, i32-count-prefixed vectors), and the records of the client protocol.

/// Why a record could not be decoded; the connection that sent it is closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("length {0} is negative or beyond the frame")]
    BadLength(i32),
    #[error("string is not UTF-8")]
    Utf8,
    #[error("unknown operation type {0} inside multi")]
    UnknownMultiOp(i32),
}

/// ZooKeeper's error codes (KeeperException.Code) that Gregor answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    Unimplemented = -6,
    BadArguments = -8,
    NoNode = -101,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
}

pub mod op {
    pub const CLOSE: i32 = -11;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const SET_WATCHES: i32 = 101;
    /// The type of an error result inside a multi response, and of its end marker.
    pub const ERROR: i32 = -1;
}

/// xid of watch notifications.
pub const NOTIFICATION_XID: i32 = -1;
/// Watch event types (Watcher.Event.EventType's NodeCreated, NodeDeleted, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Created = 1,
    Deleted = 2,
    DataChanged = 3,
    ChildrenChanged = 4,
}
/// Watcher.Event.KeeperState.SyncConnected: the only state a live connection reports.
const SYNC_CONNECTED: i32 = 3;

pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn int(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn long(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A buffer; length -1 (null) reads as empty. The length is checked against what the
    /// frame holds before anything is copied.
    pub fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.int()?;
        if len == -1 {
            return Ok(&[]);
        }
        let n = usize::try_from(len).ok().filter(|&n| n <= self.buf.len()).ok_or(DecodeError::BadLength(len))?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.buffer()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    /// A vector's count; -1 (null) reads as 0. Every element takes at least one byte, so a
    /// count beyond the remaining bytes is rejected up front.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.int()?;
        if n == -1 {
            return Ok(0);
        }
        usize::try_from(n).ok().filter(|&c| c <= self.buf.len()).ok_or(DecodeError::BadLength(n))
    }

    pub fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        // Grown as elements decode, not sized from the count.
        let mut out = Vec::new();
        for _ in 0..self.count()? {
            out.push(self.string()?);
        }
        Ok(out)
    }

    /// ACLs are accepted and not kept (every node is world:anyone with all permissions).
    fn skip_acls(&mut self) -> Result<(), DecodeError> {
        for _ in 0..self.count()? {
            self.int()?;
            self.buffer()?;
            self.buffer()?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer for one frame: its 4-byte length is filled in by [`Writer::finish`].
    pub fn frame() -> Writer {
        Writer { buf: vec![0; 4] }
    }

    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.int(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    /// Bytes already encoded, such as a response body.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    pub fn strings<'s>(&mut self, items: impl ExactSizeIterator<Item = &'s String>) -> &mut Self {
        self.int(items.len() as i32);
        for s in items {
            self.string(s);
        }
        self
    }

    pub fn stat(&mut self, s: &Stat) -> &mut Self {
        self.long(s.czxid).long(s.mzxid).long(s.ctime).long(s.mtime);
        self.int(s.version).int(s.cversion).int(s.aversion);
        self.long(s.ephemeral_owner).int(s.data_length).int(s.num_children).long(s.pzxid)
    }

    /// The one ACL every node reports: world:anyone with all permissions.
    pub fn open_acl(&mut self) -> &mut Self {
        self.int(1).int(31).string("world").string("anyone")
    }

    /// ReplyHeader: the request's xid, the last zxid, the error code.
    pub fn reply_header(&mut self, xid: i32, zxid: i64, err: ErrorCode) -> &mut Self {
        self.int(xid).long(zxid).int(err as i32)
    }
}

/// A znode's metadata as clients see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub fn read(r: &mut Reader) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: r.long()?,
            mzxid: r.long()?,
            ctime: r.long()?,
            mtime: r.long()?,
            version: r.int()?,
            cversion: r.int()?,
            aversion: r.int()?,
            ephemeral_owner: r.long()?,
            data_length: r.int()?,
            num_children: r.int()?,
            pzxid: r.long()?,
        })
    }
}

/// A watch notification frame.
pub fn watch_event(kind: EventType, path: &str) -> Vec<u8> {
    let mut w = Writer::frame();
    w.reply_header(NOTIFICATION_XID, -1, ErrorCode::Ok).int(kind as i32).int(SYNC_CONNECTED).string(path);
    w.finish()
}

/// The first frame of a connection, which has no request header.
#[derive(Debug)]
pub struct ConnectRequest {
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Sent by 3.4+ clients; an older client's request simply ends before it.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(frame: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut r = Reader::new(frame);
        let _protocol_version = r.int()?;
        let last_zxid_seen = r.long()?;
        let timeout_ms = r.int()?;
        let session_id = r.long()?;
        let passwd = r.buffer()?.to_vec();
        let read_only = if r.is_empty() { None } else { Some(r.bool()?) };
        Ok(ConnectRequest { last_zxid_seen, timeout_ms, session_id, passwd, read_only })
    }
}

/// The connect answer; a timeout of 0 tells the client its session has expired.
pub fn connect_response(timeout_ms: i32, session_id: i64, passwd: &[u8], read_only: Option<bool>) -> Vec<u8> {
    let mut w = Writer::frame();
    w.int(0).int(timeout_ms).long(session_id).buffer(passwd);
    if read_only.is_some() {
        // This server is never in read-only mode.
        w.bool(false);
    }
    w.finish()
}

/// How a create names and keeps its node (CreateMode, from the request's flags and opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    Container,
    /// Deleted once unmodified and childless for this many milliseconds.
    Ttl(i64),
}

/// TTLs are kept in the low 40 bits of ephemeralOwner, as ZooKeeper does.
pub const MAX_TTL_MS: i64 = (1 << 40) - 1;

#[derive(Debug, Clone)]
pub struct Create {
    /// The opcode, which decides the response shape (path, or path and stat).
    pub opcode: i32,
    pub path: String,
    pub data: Vec<u8>,
    pub flags: i32,
    pub ttl: i64,
}

impl Create {
    /// The node's mode and whether its name gets a sequence suffix; `None` when the flags are
    /// unknown or do not fit the opcode (containers need createContainer, TTLs createTTL).
    pub fn mode(&self) -> Option<(CreateMode, bool)> {
        let (mode, sequential) = match self.flags {
            0 => (CreateMode::Persistent, false),
            1 => (CreateMode::Ephemeral, false),
            2 => (CreateMode::Persistent, true),
            3 => (CreateMode::Ephemeral, true),
            4 => (CreateMode::Container, false),
            5 => (CreateMode::Ttl(self.ttl), false),
            6 => (CreateMode::Ttl(self.ttl), true),
            _ => return None,
        };
        let fits = match mode {
            CreateMode::Container => self.opcode == op::CREATE_CONTAINER,
            CreateMode::Ttl(ttl) => self.opcode == op::CREATE_TTL && (1..=MAX_TTL_MS).contains(&ttl),
            _ => self.opcode == op::CREATE || self.opcode == op::CREATE2,
        };
        fits.then_some((mode, sequential))
    }
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    Create(Create),
    Delete { path: String, version: i32 },
    SetData { path: String, data: Vec<u8>, version: i32 },
    Check { path: String, version: i32 },
}

impl WriteOp {
    pub fn opcode(&self) -> i32 {
        match self {
            WriteOp::Create(c) => c.opcode,
            WriteOp::Delete { .. } => op::DELETE,
            WriteOp::SetData { .. } => op::SET_DATA,
            WriteOp::Check { .. } => op::CHECK,
        }
    }

    /// Decodes the body of a write operation, or `None` if `opcode` is not one.
    fn decode(opcode: i32, r: &mut Reader) -> Result<Option<WriteOp>, DecodeError> {
        Ok(Some(match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.string()?;
                let data = r.buffer()?.to_vec();
                r.skip_acls()?;
                let flags = r.int()?;
                let ttl = if opcode == op::CREATE_TTL { r.long()? } else { -1 };
                WriteOp::Create(Create { opcode, path, data, flags, ttl })
            }
            op::DELETE => WriteOp::Delete { path: r.string()?, version: r.int()? },
            op::SET_DATA => WriteOp::SetData { path: r.string()?, data: r.buffer()?.to_vec(), version: r.int()? },
            op::CHECK => WriteOp::Check { path: r.string()?, version: r.int()? },
            _ => return Ok(None),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Exists,
    GetData,
    GetChildren,
    /// getChildren2: the children and the node's stat.
    GetChildren2,
}

#[derive(Debug)]
pub enum Request {
    Ping,
    Close,
    Read { kind: ReadKind, path: String, watch: bool },
    GetAcl { path: String },
    SetAcl { path: String, version: i32 },
    Sync { path: String },
    Write(WriteOp),
    Multi(Vec<WriteOp>),
    SetWatches { relative_zxid: i64, data: Vec<String>, exist: Vec<String>, child: Vec<String> },
    /// An operation Gregor does not serve; answered with UNIMPLEMENTED.
    Unsupported(i32),
}

impl Request {
    /// Decodes a request frame into its xid and request.
    pub fn decode(frame: &[u8]) -> Result<(i32, Request), DecodeError> {
        let mut r = Reader::new(frame);
        let xid = r.int()?;
        let opcode = r.int()?;
        let read = |r: &mut Reader, kind| -> Result<Request, DecodeError> {
            Ok(Request::Read { kind, path: r.string()?, watch: r.bool()? })
        };
        let request = match opcode {
            op::PING => Request::Ping,
            op::CLOSE => Request::Close,
            op::EXISTS => read(&mut r, ReadKind::Exists)?,
            op::GET_DATA => read(&mut r, ReadKind::GetData)?,
            op::GET_CHILDREN => read(&mut r, ReadKind::GetChildren)?,
            op::GET_CHILDREN2 => read(&mut r, ReadKind::GetChildren2)?,
            op::GET_ACL => Request::GetAcl { path: r.string()? },
            op::SET_ACL => {
                let path = r.string()?;
                r.skip_acls()?;
                Request::SetAcl { path, version: r.int()? }
            }
            op::SYNC => Request::Sync { path: r.string()? },
            op::SET_WATCHES => Request::SetWatches {
                relative_zxid: r.long()?,
                data: r.strings()?,
                exist: r.strings()?,
                child: r.strings()?,
            },
            op::MULTI => Request::Multi(decode_multi(&mut r)?),
            // A check on its own is only meaningful inside a multi.
            op::CHECK => Request::Unsupported(opcode),
            _ => match WriteOp::decode(opcode, &mut r)? {
                Some(write) => Request::Write(write),
                None => Request::Unsupported(opcode),
            },
        };
        Ok((xid, request))
    }
}

/// MultiHeader {type, done, err} before each op, and a done header at the end.
fn decode_multi(r: &mut Reader) -> Result<Vec<WriteOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let opcode = r.int()?;
        let done = r.bool()?;
        let _err = r.int()?;
        if done {
            return Ok(ops);
        }
        ops.push(WriteOp::decode(opcode, r)?.ok_or(DecodeError::UnknownMultiOp(opcode))?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut w = Writer::default();
        w.int(0).long(7).int(30_000).long(0).buffer(&[0; 16]);
        let old = w.into_inner();
        let r = ConnectRequest::decode(&old).unwrap();
        assert_eq!((r.last_zxid_seen, r.timeout_ms, r.read_only), (7, 30_000, None));
        let mut new = old.clone();
        new.push(1);
        assert_eq!(ConnectRequest::decode(&new).unwrap().read_only, Some(true));
        assert!(ConnectRequest::decode(&old[..20]).is_err());
    }

    #[test]
    fn lengths_beyond_the_frame_are_rejected() {
        let mut w = Writer::default();
        w.int(1).int(op::GET_DATA).int(i32::MAX);
        assert!(matches!(Request::decode(&w.into_inner()), Err(DecodeError::BadLength(_))));
        let mut w = Writer::default();
        w.int(1).int(op::SET_WATCHES).long(0).int(1_000_000);
        assert!(matches!(Request::decode(&w.into_inner()), Err(DecodeError::BadLength(_))));
    }

    #[test]
    fn multi_decodes_until_the_done_header() {
        let mut w = Writer::default();
        w.int(5).int(op::MULTI);
        w.int(op::CHECK).bool(false).int(-1).string("/a").int(3);
        w.int(op::DELETE).bool(false).int(-1).string("/b").int(-1);
        w.int(-1).bool(true).int(-1);
        let (xid, req) = Request::decode(&w.into_inner()).unwrap();
        assert_eq!(xid, 5);
        let Request::Multi(ops) = req else { panic!("not a multi") };
        assert_eq!(ops.len(), 2);
        assert!(matches!(&ops[0], WriteOp::Check { path, version: 3 } if path == "/a"));
    }
}
