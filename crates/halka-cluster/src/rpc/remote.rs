//! A replica reached through request and response messages, whatever carries them: TCP
//! between nodes ([`super::TcpPeer`]), or a simulated network in `halka-sim`.

use super::message::{Request, Response};
use crate::Coordinated;
use crate::replica::{answered, deferred, map_answer};
use crate::{Durability, Replica, ReplicaError, ReplicaFuture};
use bytes::Bytes;
use futures::future::BoxFuture;
use halka_store::{HashRange, NodeId, Record, Write};
use std::fmt;
use std::sync::Arc;

/// Carries one request to a peer and brings back its response.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The node at the other end.
    fn id(&self) -> &NodeId;

    /// Sends `request` and waits for its response. A response that never comes is for the
    /// caller's deadline to handle.
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Response, ReplicaError>>;
}

/// A [`Replica`] whose every call is one request over a [`Transport`].
#[derive(Debug, Clone)]
pub struct MessageReplica<T> {
    transport: T,
}

impl<T: Transport> MessageReplica<T> {
    #[must_use]
    pub fn with_transport(transport: T) -> Self {
        Self { transport }
    }

    #[must_use]
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Sends `request`; `pick` takes the answer it expects out of the response.
    fn ask<V: Send + 'static>(
        &self,
        request: Request,
        pick: fn(Response) -> Result<V, Response>,
    ) -> ReplicaFuture<V> {
        let call = self.transport.call(request);
        deferred(async move {
            match call.await? {
                Response::Error(e) => Err(e.into()),
                response => pick(response).map_err(|other| unexpected(&other)),
            }
        })
    }
}

pub(crate) fn unexpected(response: &Response) -> ReplicaError {
    ReplicaError::Unavailable(format!("unexpected response {response:?}"))
}

impl<T: Transport> Replica for MessageReplica<T> {
    fn id(&self) -> &NodeId {
        self.transport.id()
    }

    fn coordinate_write(&self, key: &Bytes, write: &Write) -> ReplicaFuture<Coordinated> {
        map_answer(self.coordinate_write_deferred(key, write), |(coordinated, _)| coordinated)
    }

    /// The peer answers once the write is durable, so the durability comes with the record.
    fn coordinate_write_deferred(
        &self,
        key: &Bytes,
        write: &Write,
    ) -> ReplicaFuture<(Coordinated, ReplicaFuture<Durability>)> {
        let request = Request::CoordinateWrite { key: key.clone(), write: write.clone() };
        self.ask(request, |r| match r {
            Response::Coordinated(c, durability) => Ok((c, answered(Ok(durability)))),
            // Applied: only its durability failed, which the coordinator counts as this
            // replica's failure without handing the write to another owner.
            Response::CoordinatedNotDurable(failed) => {
                let (c, e) = *failed;
                Ok((c, answered(Err(e.into()))))
            }
            other => Err(other),
        })
    }

    fn merge(&self, key: &Bytes, record: &Arc<Record>) -> ReplicaFuture<Durability> {
        let request = Request::Merge { key: key.clone(), record: Arc::clone(record) };
        self.ask(request, |r| match r {
            Response::Stored(durability) => Ok(durability),
            other => Err(other),
        })
    }

    fn get(&self, key: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        self.ask(Request::Get { key: key.clone() }, |r| match r {
            Response::MaybeRecord(r) => Ok(r),
            other => Err(other),
        })
    }

    fn read_range(&self, range: HashRange) -> ReplicaFuture<crate::KeyPage> {
        self.ask(Request::ReadRange { range }, |r| match r {
            Response::Listed(page) => Ok(page),
            other => Err(other),
        })
    }

    fn transfer_status(&self, version: u64) -> ReplicaFuture<crate::ChangePhase> {
        self.ask(Request::TransferStatus { version }, |r| match r {
            Response::Phase(phase) => Ok(phase),
            other => Err(other),
        })
    }

    fn transfer_progress(&self) -> ReplicaFuture<crate::Progress> {
        self.ask(Request::TransferProgress, |r| match r {
            Response::Progress(progress) => Ok(progress),
            other => Err(other),
        })
    }

    fn membership(
        &self,
        request: crate::membership::MembershipRequest,
    ) -> ReplicaFuture<crate::membership::MembershipResponse> {
        self.ask(Request::Membership(Box::new(request)), |r| match r {
            Response::Membership(answer) => Ok(*answer),
            other => Err(other),
        })
    }

    fn list_keys(&self, range: HashRange) -> ReplicaFuture<crate::KeyPage> {
        self.ask(Request::ListKeys { range }, |r| match r {
            Response::Listed(l) => Ok(l),
            other => Err(other),
        })
    }

    fn digests(&self, range: HashRange, bits: u32) -> ReplicaFuture<Vec<u64>> {
        self.ask(Request::Digests { range, bits }, |r| match r {
            Response::Digests(d) => Ok(d),
            other => Err(other),
        })
    }

    fn key_digests(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, u64)>> {
        self.ask(Request::KeyDigests { range }, |r| match r {
            Response::KeyDigests(d) => Ok(d),
            other => Err(other),
        })
    }

    fn get_many(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<Option<Arc<Record>>>> {
        self.ask(Request::GetMany { keys }, |r| match r {
            Response::Records(r) => Ok(r),
            other => Err(other),
        })
    }

    fn merge_many(&self, entries: Vec<(Bytes, Arc<Record>)>) -> ReplicaFuture<()> {
        self.ask(Request::MergeMany { entries }, |r| match r {
            Response::Ack => Ok(()),
            other => Err(other),
        })
    }

    fn hinted(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<bool>> {
        self.ask(Request::Hinted { keys }, |r| match r {
            Response::Flags(f) => Ok(f),
            other => Err(other),
        })
    }

    fn keep_hint(
        &self,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> ReplicaFuture<Durability> {
        let request = Request::KeepHint {
            owner: owner.clone(),
            key: key.clone(),
            record: Arc::clone(record),
        };
        self.ask(request, |r| match r {
            Response::Stored(durability) => Ok(durability),
            other => Err(other),
        })
    }
}
