//! The log's Merkle tree, in the shape of RFC 9162 §2.1 (Certificate Transparency
//! 2.0): leaf hash `SHA-256(0x00 || leaf)`, interior node `SHA-256(0x01 || left ||
//! right)`, a tree of `n` leaves split at the largest power of two below `n`.
//!
//! What is stored is every *perfect* subtree's hash (a [`NodeId`]: a level and an
//! index at that level), written once, when its last leaf arrives: on average two
//! nodes per leaf. Any subtree the RFC's proofs ask for is either one of those or a
//! right edge made of at most `log2(n)` of them, so a proof reads `O(log² n)` nodes
//! and never the whole log. [`nodes_for_inclusion`] and [`nodes_for_consistency`]
//! say which, so that an adapter can fetch exactly those before building the proof.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 hash in the tree, hex when serialised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<String> for Hash {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&value, &mut out)
            .map_err(|e| format!("not a SHA-256 hex digest: {e}"))?;
        Ok(Self(out))
    }
}

impl From<Hash> for String {
    fn from(value: Hash) -> String {
        value.to_hex()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hash of a leaf's bytes (RFC 9162: `SHA-256(0x00 || d)`).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// The hash of an interior node (RFC 9162: `SHA-256(0x01 || left || right)`).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree (RFC 9162: the hash of the empty string).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest(b"").into())
}

/// A perfect subtree: the `2^level` leaves from `index * 2^level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn leaf(position: u64) -> Self {
        Self {
            level: 0,
            index: position,
        }
    }

    /// How many leaves it covers; `None` for a level no tree of `u64` leaves has
    /// (a head item edited by hand may say anything).
    fn width(self) -> Option<u64> {
        1u64.checked_shl(u32::from(self.level))
    }
}

/// Where perfect subtrees' hashes come from (a map in memory, items an adapter read).
pub trait Nodes {
    fn node(&self, id: NodeId) -> Option<Hash>;
}

impl Nodes for BTreeMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

/// Why a tree computation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("the log holds no node {0:?}: it was never written, or was deleted")]
    MissingNode(NodeId),
    #[error("position {index} is not in a tree of {size} leaves")]
    OutOfRange { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < old size ({old}) <= new size ({new})")]
    BadSizes { old: u64, new: u64 },
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` from stored perfect subtrees.
fn subtree(nodes: &dyn Nodes, start: u64, end: u64) -> Result<Hash, TreeError> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let id = NodeId {
            level: n.trailing_zeros() as u8,
            index: start / n,
        };
        return nodes.node(id).ok_or(TreeError::MissingNode(id));
    }
    let k = split(n);
    Ok(node_hash(
        &subtree(nodes, start, start + k)?,
        &subtree(nodes, start + k, end)?,
    ))
}

/// The root of the first `size` leaves.
pub fn root(nodes: &dyn Nodes, size: u64) -> Result<Hash, TreeError> {
    subtree(nodes, 0, size)
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[start:end])`, leaf first.
fn path(nodes: &dyn Nodes, m: u64, start: u64, end: u64) -> Result<Vec<Hash>, TreeError> {
    let n = end - start;
    if n <= 1 {
        return Ok(Vec::new());
    }
    let k = split(n);
    if m < k {
        let mut p = path(nodes, m, start, start + k)?;
        p.push(subtree(nodes, start + k, end)?);
        Ok(p)
    } else {
        let mut p = path(nodes, m - k, start + k, end)?;
        p.push(subtree(nodes, start, start + k)?);
        Ok(p)
    }
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(nodes: &dyn Nodes, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::OutOfRange { index, size });
    }
    path(nodes, index, 0, size)
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[start:end], b)`.
fn subproof(
    nodes: &dyn Nodes,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
) -> Result<Vec<Hash>, TreeError> {
    let n = end - start;
    if m == n {
        return Ok(if whole {
            Vec::new()
        } else {
            vec![subtree(nodes, start, end)?]
        });
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(nodes, m, start, start + k, whole)?;
        p.push(subtree(nodes, start + k, end)?);
        Ok(p)
    } else {
        let mut p = subproof(nodes, m - k, start + k, end, false)?;
        p.push(subtree(nodes, start, start + k)?);
        Ok(p)
    }
}

/// The proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
pub fn consistency_proof(nodes: &dyn Nodes, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
    if old == 0 || old > new {
        return Err(TreeError::BadSizes { old, new });
    }
    subproof(nodes, old, 0, new, true)
}

/// A [`Nodes`] that answers anything and remembers what it was asked: the proofs'
/// recursion does not depend on the hashes, so one dry run names every node needed.
struct Plan(RefCell<BTreeSet<NodeId>>);

impl Nodes for Plan {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.0.borrow_mut().insert(id);
        Some(Hash([0; 32]))
    }
}

fn plan(run: impl FnOnce(&dyn Nodes) -> Result<Vec<Hash>, TreeError>) -> BTreeSet<NodeId> {
    let recorder = Plan(RefCell::new(BTreeSet::new()));
    // A dry run fails only on bad positions, which the real run reports.
    let _ = run(&recorder);
    recorder.0.into_inner()
}

/// The nodes [`inclusion_proof`] reads for `index` in a tree of `size` (and the root).
pub fn nodes_for_inclusion(index: u64, size: u64) -> BTreeSet<NodeId> {
    let mut ids = plan(|n| inclusion_proof(n, index, size));
    ids.extend(plan(|n| root(n, size).map(|h| vec![h])));
    ids.insert(NodeId::leaf(index));
    ids
}

/// The nodes [`consistency_proof`] reads from `old` to `new` (and both roots).
pub fn nodes_for_consistency(old: u64, new: u64) -> BTreeSet<NodeId> {
    let mut ids = plan(|n| consistency_proof(n, old, new));
    ids.extend(plan(|n| root(n, old).map(|h| vec![h])));
    ids.extend(plan(|n| root(n, new).map(|h| vec![h])));
    ids
}

/// The right edge of the tree: the perfect subtrees that end at its last leaf,
/// largest first. Appending needs nothing else, so the log's head item keeps it and a
/// writer never reads old nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    pub size: u64,
    pub edge: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// Adds a leaf; returns every perfect subtree it completes (the leaf itself
    /// first), to be stored.
    pub fn append(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut made = vec![(NodeId::leaf(self.size), leaf)];
        let mut current = (NodeId::leaf(self.size), leaf);
        while let Some(&(left_id, left)) = self.edge.last() {
            if left_id.level != current.0.level {
                break;
            }
            self.edge.pop();
            current = (
                NodeId {
                    level: left_id.level + 1,
                    index: left_id.index / 2,
                },
                node_hash(&left, &current.1),
            );
            made.push(current);
        }
        self.edge.push(current);
        self.size += 1;
        made
    }

    /// The root of the tree as it stands.
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev().map(|(_, h)| *h);
        let Some(mut acc) = hashes.next() else {
            return empty_root();
        };
        for left in hashes {
            acc = node_hash(&left, &acc);
        }
        acc
    }

    /// Whether the edge is what a tree of `size` leaves has (a head item edited by
    /// hand or cut short would otherwise go on producing a wrong tree).
    pub fn is_well_formed(&self) -> bool {
        let mut start = 0u64;
        let mut last_level = u8::MAX;
        for (id, _) in &self.edge {
            let Some(width) = id.width().filter(|_| id.level < last_level) else {
                return false;
            };
            if id.index.checked_mul(width) != Some(start) {
                return false;
            }
            last_level = id.level;
            let Some(next) = start.checked_add(width) else {
                return false;
            };
            start = next;
        }
        start == self.size
    }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("position {index} is not in a tree of {size} leaves")]
    OutOfRange { index: u64, size: u64 },
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("the proof leads to another root: the leaf or the tree is not what was signed")]
    RootMismatch,
    #[error("a consistency proof needs 0 < old size ({old}) <= new size ({new})")]
    BadSizes { old: u64, new: u64 },
}

/// RFC 9162 §2.1.3.2: whether `proof` shows the leaf hashing to `leaf` at `index` in
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f % 2 == 1 || f == s {
            r = node_hash(p, &r);
            if f % 2 == 0 {
                while f % 2 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `old` leaves with root
/// `old_root` to be a prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else if proof.is_empty() {
            Err(ProofError::RootMismatch)
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut f, mut s) = (old - 1, new - 1);
    while f % 2 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f % 2 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f % 2 == 0 {
                while f % 2 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's definition of `MTH`, straight from the leaves.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn build(n: u64) -> (Frontier, BTreeMap<NodeId, Hash>, Vec<Hash>) {
        let mut frontier = Frontier::default();
        let mut nodes = BTreeMap::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = leaf_hash(format!("event {i}").as_bytes());
            leaves.push(leaf);
            for (id, h) in frontier.append(leaf) {
                assert!(nodes.insert(id, h).is_none(), "a node is written once");
            }
            assert!(frontier.is_well_formed());
        }
        (frontier, nodes, leaves)
    }

    #[test]
    fn the_frontier_and_the_stored_nodes_give_the_rfc_root() {
        for n in 0..70u64 {
            let (frontier, nodes, leaves) = build(n);
            assert_eq!(frontier.root(), reference_root(&leaves), "size {n}");
            assert_eq!(
                root(&nodes, n).unwrap(),
                reference_root(&leaves),
                "size {n}"
            );
        }
    }

    #[test]
    fn about_two_nodes_are_stored_per_leaf() {
        let (_, nodes, _) = build(1000);
        assert!(nodes.len() < 2000, "{}", nodes.len());
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_changed_leaf_does_not() {
        let (_, nodes, leaves) = build(40);
        for size in 1..=40u64 {
            let r = root(&nodes, size).unwrap();
            for index in 0..size {
                let proof = inclusion_proof(&nodes, index, size).unwrap();
                let leaf = leaves[index as usize];
                verify_inclusion(&leaf, index, size, &proof, &r).unwrap();
                let forged = leaf_hash(b"an event nobody logged");
                assert_eq!(
                    verify_inclusion(&forged, index, size, &proof, &r),
                    Err(ProofError::RootMismatch)
                );
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(verify_inclusion(&leaf, other, size, &proof, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_history_does_not() {
        let (_, nodes, _) = build(40);
        // The same log with event 3 rewritten, as an insider with write access would.
        let mut forged_nodes = BTreeMap::new();
        let mut forged = Frontier::default();
        for i in 0..40u64 {
            let text = if i == 3 {
                "rewritten".to_owned()
            } else {
                format!("event {i}")
            };
            forged_nodes.extend(forged.append(leaf_hash(text.as_bytes())));
        }
        for new in 1..=40u64 {
            let new_root = root(&nodes, new).unwrap();
            for old in 1..=new {
                let old_root = root(&nodes, old).unwrap();
                let proof = consistency_proof(&nodes, old, new).unwrap();
                verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
                if old > 3 {
                    // The old checkpoint saw the honest event 3; the rewritten log
                    // cannot prove itself an extension of it.
                    let proof = consistency_proof(&forged_nodes, old, new).unwrap();
                    let forged_root = root(&forged_nodes, new).unwrap();
                    assert!(
                        verify_consistency(old, new, &old_root, &forged_root, &proof).is_err(),
                        "{old} -> {new}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_plan_names_exactly_the_nodes_a_proof_reads() {
        let (_, nodes, _) = build(77);
        for (index, size) in [(0, 1), (5, 77), (76, 77), (31, 64), (40, 50)] {
            let needed: BTreeMap<NodeId, Hash> = nodes_for_inclusion(index, size)
                .into_iter()
                .map(|id| (id, nodes[&id]))
                .collect();
            let proof = inclusion_proof(&needed, index, size).unwrap();
            let r = root(&needed, size).unwrap();
            verify_inclusion(&needed[&NodeId::leaf(index)], index, size, &proof, &r).unwrap();
            assert!(needed.len() <= 2 * 7 * 7, "{}", needed.len());
        }
        for (old, new) in [(1, 77), (13, 77), (64, 77), (77, 77), (3, 4)] {
            let needed: BTreeMap<NodeId, Hash> = nodes_for_consistency(old, new)
                .into_iter()
                .map(|id| (id, nodes[&id]))
                .collect();
            let proof = consistency_proof(&needed, old, new).unwrap();
            let (a, b) = (root(&needed, old).unwrap(), root(&needed, new).unwrap());
            verify_consistency(old, new, &a, &b, &proof).unwrap();
        }
    }

    #[test]
    fn a_deleted_node_is_named() {
        let (_, mut nodes, _) = build(8);
        nodes.remove(&NodeId { level: 1, index: 2 });
        assert_eq!(
            root(&nodes, 7),
            Err(TreeError::MissingNode(NodeId { level: 1, index: 2 }))
        );
    }

    #[test]
    fn a_frontier_edited_by_hand_is_not_well_formed() {
        let (mut frontier, _, _) = build(6);
        frontier.size = 7;
        assert!(!frontier.is_well_formed());
        let (mut frontier, _, _) = build(6);
        frontier.edge.swap(0, 1);
        assert!(!frontier.is_well_formed());
        let huge = Frontier {
            size: 1,
            edge: vec![(
                NodeId {
                    level: 64,
                    index: 0,
                },
                leaf_hash(b"x"),
            )],
        };
        assert!(!huge.is_well_formed());
    }

    #[test]
    fn proofs_of_the_wrong_length_are_refused() {
        let (_, nodes, leaves) = build(10);
        let r = root(&nodes, 10).unwrap();
        let mut proof = inclusion_proof(&nodes, 4, 10).unwrap();
        proof.push(r);
        assert_eq!(
            verify_inclusion(&leaves[4], 4, 10, &proof, &r),
            Err(ProofError::WrongLength)
        );
        proof.truncate(1);
        assert_eq!(
            verify_inclusion(&leaves[4], 4, 10, &proof, &r),
            Err(ProofError::WrongLength)
        );
        assert!(verify_consistency(11, 10, &r, &r, &[]).is_err());
        assert_eq!(
            verify_consistency(10, 10, &r, &leaves[0], &[]),
            Err(ProofError::RootMismatch)
        );
    }
}
