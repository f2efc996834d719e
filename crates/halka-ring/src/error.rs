use thiserror::Error;

/// Why a placement could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlacementError {
    #[error("a placement needs at least one member")]
    NoMembers,
    #[error("member id {0:?} appears more than once; member ids must be unique")]
    DuplicateMember(String),
    #[error("member {0:?} has weight 0; weights must be at least 1")]
    ZeroWeight(String),
    #[error("member id must not be empty")]
    EmptyMemberId,
    #[error("{count} members exceed the maximum of {max}")]
    TooManyMembers { count: usize, max: usize },
    #[error("replication factor {replicas} is outside the allowed range 1..={max}")]
    BadReplication { replicas: usize, max: usize },
    #[error("partition count {0} must be a power of two between 1 and 2^20")]
    BadPartitionCount(u32),
    #[error("virtual node count {0} must be between 1 and 100000")]
    BadVnodeCount(u32),
    #[error(
        "a layout of {from} partitions cannot become one of {to}: the partition count is fixed \
         for a cluster's life"
    )]
    PartitionCountChanged { from: u32, to: u32 },
}
