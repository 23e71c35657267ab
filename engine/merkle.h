// The Merkle tree of RFC 6962 / RFC 9162 over the journal: leaf i is entry i+1, whose
// hash is already SHA-256(0x00 || entry bytes); node = SHA-256(0x01 || left || right);
// the tree of n leaves splits at the largest power of two below n.
//
// The engine keeps, as projections, every perfect subtree of two or more leaves and the
// tree's right edge (its "compact range"), so an append costs O(log n), a root costs
// O(log n), and proofs read O(log n) nodes. The verification functions here need nothing
// but their arguments: they are what an auditor's tool uses.
#ifndef GONGDAI_ENGINE_MERKLE_H_
#define GONGDAI_ENGINE_MERKLE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gongdai {

std::string MerkleLeafHash(std::string_view leaf_bytes);
std::string MerkleNodeHash(std::string_view left, std::string_view right);
// The root of the empty tree: SHA-256 of nothing.
std::string MerkleEmptyRoot();

// The hash of the perfect subtree at `level` (2^level leaves) and `index` (its position
// among subtrees of that level). Level 0 is a leaf hash.
using PerfectNodeSource = std::function<absl::StatusOr<std::string>(int level, uint64_t index)>;

// MTH(D[begin:end]), from the perfect subtrees that tile the range.
[[nodiscard]] absl::StatusOr<std::string> MerkleSubtreeHash(const PerfectNodeSource& nodes,
                                                            uint64_t begin, uint64_t end);
[[nodiscard]] absl::StatusOr<std::string> MerkleRoot(const PerfectNodeSource& nodes, uint64_t size);
// RFC 6962 PATH(index, D[0:size]); index < size.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> MerkleInclusionProof(
    const PerfectNodeSource& nodes, uint64_t index, uint64_t size);
// RFC 6962 PROOF(old_size, D[0:new_size]); 0 < old_size <= new_size.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> MerkleConsistencyProof(
    const PerfectNodeSource& nodes, uint64_t old_size, uint64_t new_size);

// RFC 9162 section 2.1.3.2. OK when `proof` shows `leaf_hash` at `index` in the tree of
// `size` leaves with root `root`; DATA_LOSS saying what does not match otherwise.
[[nodiscard]] absl::Status VerifyMerkleInclusion(std::string_view leaf_hash, uint64_t index,
                                                 uint64_t size,
                                                 const std::vector<std::string>& proof,
                                                 std::string_view root);
// RFC 9162 section 2.1.4.2.
[[nodiscard]] absl::Status VerifyMerkleConsistency(uint64_t old_size, uint64_t new_size,
                                                   std::string_view old_root,
                                                   std::string_view new_root,
                                                   const std::vector<std::string>& proof);

// The right edge of a tree: the roots of the perfect subtrees that tile [0, size), largest
// first. Appending a leaf merges equal-sized subtrees and reports each new perfect node.
class CompactRange {
 public:
  CompactRange() = default;
  // Rebuilds the edge of a tree of `size` leaves from stored perfect nodes.
  [[nodiscard]] static absl::StatusOr<CompactRange> Load(const PerfectNodeSource& nodes,
                                                         uint64_t size);
  // Serialized form: 8-byte big-endian size, then the 32-byte hashes, largest first.
  [[nodiscard]] static absl::StatusOr<CompactRange> Decode(std::string_view bytes);
  std::string Encode() const;

  // Appends a leaf; `emit(level, index, hash)` is called for every perfect subtree of two
  // or more leaves completed by it.
  void Append(std::string_view leaf_hash,
              const std::function<void(int level, uint64_t index, const std::string& hash)>& emit);
  uint64_t size() const { return size_; }
  std::string Root() const;

 private:
  static constexpr size_t kHashBytes = 32;
  uint64_t size_ = 0;
  std::string hashes_;  // the subtrees' 32-byte roots, largest subtree first
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_MERKLE_H_
