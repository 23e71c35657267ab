#include "engine/merkle.h"

#include <bit>

#include "engine/sha256.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

uint64_t LargestPowerOfTwoBelow(uint64_t n) {  // n >= 2
  return uint64_t{1} << (63 - std::countl_zero(n - 1));
}

bool IsPerfect(uint64_t begin, uint64_t end) {
  const uint64_t width = end - begin;
  return std::has_single_bit(width) && begin % width == 0;
}

absl::Status Path(const PerfectNodeSource& nodes, uint64_t index, uint64_t begin, uint64_t end,
                  std::vector<std::string>& proof) {
  if (end - begin <= 1) return absl::OkStatus();
  const uint64_t k = LargestPowerOfTwoBelow(end - begin);
  absl::StatusOr<std::string> sibling;
  if (index < begin + k) {
    absl::Status inner = Path(nodes, index, begin, begin + k, proof);
    if (!inner.ok()) return inner;
    sibling = MerkleSubtreeHash(nodes, begin + k, end);
  } else {
    absl::Status inner = Path(nodes, index, begin + k, end, proof);
    if (!inner.ok()) return inner;
    sibling = MerkleSubtreeHash(nodes, begin, begin + k);
  }
  if (!sibling.ok()) return sibling.status();
  proof.push_back(*std::move(sibling));
  return absl::OkStatus();
}

absl::Status SubProof(const PerfectNodeSource& nodes, uint64_t m, uint64_t begin, uint64_t end,
                      bool whole, std::vector<std::string>& proof) {
  const uint64_t n = end - begin;
  if (m == n) {
    if (whole) return absl::OkStatus();
    absl::StatusOr<std::string> hash = MerkleSubtreeHash(nodes, begin, end);
    if (!hash.ok()) return hash.status();
    proof.push_back(*std::move(hash));
    return absl::OkStatus();
  }
  const uint64_t k = LargestPowerOfTwoBelow(n);
  absl::StatusOr<std::string> other;
  if (m <= k) {
    absl::Status inner = SubProof(nodes, m, begin, begin + k, whole, proof);
    if (!inner.ok()) return inner;
    other = MerkleSubtreeHash(nodes, begin + k, end);
  } else {
    absl::Status inner = SubProof(nodes, m - k, begin + k, end, false, proof);
    if (!inner.ok()) return inner;
    other = MerkleSubtreeHash(nodes, begin, begin + k);
  }
  if (!other.ok()) return other.status();
  proof.push_back(*std::move(other));
  return absl::OkStatus();
}

}  // namespace

std::string MerkleLeafHash(std::string_view leaf_bytes) {
  return ThreadSha256().Digest({std::string_view("\x00", 1), leaf_bytes});
}

std::string MerkleNodeHash(std::string_view left, std::string_view right) {
  return ThreadSha256().Digest({std::string_view("\x01", 1), left, right});
}

std::string MerkleEmptyRoot() { return ThreadSha256().Digest({}); }

absl::StatusOr<std::string> MerkleSubtreeHash(const PerfectNodeSource& nodes, uint64_t begin,
                                              uint64_t end) {
  if (end <= begin) return absl::InvalidArgumentError("empty subtree");
  if (IsPerfect(begin, end)) {
    const int level = std::countr_zero(end - begin);
    return nodes(level, begin >> level);
  }
  const uint64_t k = LargestPowerOfTwoBelow(end - begin);
  absl::StatusOr<std::string> left = MerkleSubtreeHash(nodes, begin, begin + k);
  if (!left.ok()) return left;
  absl::StatusOr<std::string> right = MerkleSubtreeHash(nodes, begin + k, end);
  if (!right.ok()) return right;
  return MerkleNodeHash(*left, *right);
}

absl::StatusOr<std::string> MerkleRoot(const PerfectNodeSource& nodes, uint64_t size) {
  if (size == 0) return MerkleEmptyRoot();
  return MerkleSubtreeHash(nodes, 0, size);
}

absl::StatusOr<std::vector<std::string>> MerkleInclusionProof(const PerfectNodeSource& nodes,
                                                              uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        Cat("leaf ", index, " is not in a tree of ", size, " leaves"));
  }
  std::vector<std::string> proof;
  absl::Status built = Path(nodes, index, 0, size, proof);
  if (!built.ok()) return built;
  return proof;
}

absl::StatusOr<std::vector<std::string>> MerkleConsistencyProof(const PerfectNodeSource& nodes,
                                                                uint64_t old_size,
                                                                uint64_t new_size) {
  if (old_size == 0 || old_size > new_size) {
    return absl::InvalidArgumentError(
        Cat("no consistency proof from size ", old_size, " to ", new_size));
  }
  std::vector<std::string> proof;
  if (old_size == new_size) return proof;
  absl::Status built = SubProof(nodes, old_size, 0, new_size, true, proof);
  if (!built.ok()) return built;
  return proof;
}

absl::Status VerifyMerkleInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                                   const std::vector<std::string>& proof, std::string_view root) {
  if (index >= size) return absl::DataLossError(Cat("leaf ", index, " is beyond tree size ", size));
  uint64_t fn = index;
  uint64_t sn = size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return absl::DataLossError("inclusion proof is longer than the tree is deep");
    if ((fn & 1) == 1 || fn == sn) {
      r = MerkleNodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = MerkleNodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::DataLossError("inclusion proof is shorter than the tree is deep");
  if (r != root) {
    return absl::DataLossError(
        Cat("inclusion proof gives root ", ToHex(r), ", expected ", ToHex(root)));
  }
  return absl::OkStatus();
}

absl::Status VerifyMerkleConsistency(uint64_t old_size, uint64_t new_size,
                                     std::string_view old_root, std::string_view new_root,
                                     const std::vector<std::string>& proof) {
  if (old_size == 0 || old_size > new_size)
    return absl::DataLossError("sizes cannot be consistent");
  if (old_size == new_size) {
    if (!proof.empty()) return absl::DataLossError("a proof between equal sizes must be empty");
    if (old_root != new_root) return absl::DataLossError("equal sizes with different roots");
    return absl::OkStatus();
  }
  std::vector<std::string> path = proof;
  if (std::has_single_bit(old_size)) path.insert(path.begin(), std::string(old_root));
  if (path.empty()) return absl::DataLossError("empty consistency proof");
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr = path[0];
  std::string sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string& c = path[i];
    if (sn == 0) return absl::DataLossError("consistency proof is too long");
    if ((fn & 1) == 1 || fn == sn) {
      fr = MerkleNodeHash(c, fr);
      sr = MerkleNodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = MerkleNodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::DataLossError("consistency proof is too short");
  if (fr != old_root)
    return absl::DataLossError(
        Cat("consistency proof gives old root ", ToHex(fr), ", expected ", ToHex(old_root)));
  if (sr != new_root)
    return absl::DataLossError(
        Cat("consistency proof gives new root ", ToHex(sr), ", expected ", ToHex(new_root)));
  return absl::OkStatus();
}

absl::StatusOr<CompactRange> CompactRange::Load(const PerfectNodeSource& nodes, uint64_t size) {
  CompactRange range;
  range.size_ = size;
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    if (((size >> level) & 1) == 0) continue;
    absl::StatusOr<std::string> hash = nodes(level, begin >> level);
    if (!hash.ok()) return hash.status();
    if (hash->size() != kHashBytes)
      return absl::DataLossError(Cat("tree node at level ", level, " is not 32 bytes"));
    range.hashes_ += *hash;
    begin += uint64_t{1} << level;
  }
  return range;
}

absl::StatusOr<CompactRange> CompactRange::Decode(std::string_view bytes) {
  if (bytes.size() < 8) return absl::DataLossError("compact range too short");
  CompactRange range;
  for (int i = 0; i < 8; ++i)
    range.size_ = (range.size_ << 8) | static_cast<unsigned char>(bytes[i]);
  bytes.remove_prefix(8);
  if (bytes.size() != kHashBytes * static_cast<size_t>(std::popcount(range.size_))) {
    return absl::DataLossError("compact range does not match its size");
  }
  range.hashes_.assign(bytes.data(), bytes.size());
  return range;
}

std::string CompactRange::Encode() const {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((size_ >> (56 - 8 * i)) & 0xff);
  out += hashes_;
  return out;
}

void CompactRange::Append(
    std::string_view leaf_hash,
    const std::function<void(int level, uint64_t index, const std::string& hash)>& emit) {
  std::string hash(leaf_hash);
  uint64_t index = size_;  // the new leaf's index at level 0
  int level = 0;
  // Each set low bit of the old size is a subtree of that level waiting for a sibling.
  while (((size_ >> level) & 1) == 1) {
    const size_t last = hashes_.size() - kHashBytes;
    hash = MerkleNodeHash(std::string_view(hashes_).substr(last), hash);
    hashes_.resize(last);
    ++level;
    index >>= 1;
    emit(level, index, hash);
  }
  hashes_ += hash;
  ++size_;
}

std::string CompactRange::Root() const {
  if (hashes_.empty()) return MerkleEmptyRoot();
  const std::string_view all(hashes_);
  size_t at = all.size() - kHashBytes;
  std::string root(all.substr(at));
  while (at > 0) {
    at -= kHashBytes;
    root = MerkleNodeHash(all.substr(at, kHashBytes), root);
  }
  return root;
}

}  // namespace gongdai
