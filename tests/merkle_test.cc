// Known answers: the RFC 6962 test vectors published with the certificate-transparency
// reference implementations (the eight inputs below, the roots of trees of 0-8 leaves,
// and their inclusion and consistency proofs).
#include "engine/merkle.h"

#include <gtest/gtest.h>

#include "engine/sha256.h"
#include "tests/programme_fixture.h"

namespace gongdai {
namespace {

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

const std::vector<std::string>& Inputs() {
  static const std::vector<std::string> kInputs = {
      "",
      std::string("\x00", 1),
      "\x10",
      "\x20\x21",
      "\x30\x31",
      "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57",
      "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
  return kInputs;
}

const char* const kRoots[] = {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                              "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                              "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                              "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                              "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                              "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                              "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                              "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                              "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

// Perfect subtrees of the eight leaves, computed the slow way.
PerfectNodeSource TestNodes() {
  return [](int level, uint64_t index) -> absl::StatusOr<std::string> {
    const uint64_t width = uint64_t{1} << level;
    std::vector<std::string> hashes;
    for (uint64_t i = index * width; i < (index + 1) * width; ++i)
      hashes.push_back(MerkleLeafHash(Inputs()[i]));
    while (hashes.size() > 1) {
      std::vector<std::string> up;
      for (size_t i = 0; i < hashes.size(); i += 2)
        up.push_back(MerkleNodeHash(hashes[i], hashes[i + 1]));
      hashes = up;
    }
    return hashes[0];
  };
}

std::vector<std::string> Hexes(const std::vector<std::string>& hashes) {
  std::vector<std::string> out;
  for (const std::string& h : hashes) out.push_back(ToHex(h));
  return out;
}

TEST(Merkle, RootsMatchTheRfc6962TestVectors) {
  for (uint64_t size = 0; size <= 8; ++size) {
    EXPECT_EQ(ToHex(*MerkleRoot(TestNodes(), size)), kRoots[size]) << size;
  }
}

TEST(Merkle, LeafAndNodeHashesArePrefixed) {
  EXPECT_EQ(ToHex(MerkleLeafHash("")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(MerkleNodeHash("a", "b"), ThreadSha256().Digest({std::string("\x01", 1), "a", "b"}));
}

TEST(Merkle, CompactRangeAppendsGiveTheSameRootsAndNodes) {
  CompactRange range;
  std::map<std::pair<int, uint64_t>, std::string> emitted;
  for (size_t i = 0; i < 8; ++i) {
    range.Append(MerkleLeafHash(Inputs()[i]),
                 [&](int level, uint64_t index, const std::string& hash) {
                   emitted[{level, index}] = hash;
                 });
    EXPECT_EQ(ToHex(range.Root()), kRoots[i + 1]);
    absl::StatusOr<CompactRange> decoded = CompactRange::Decode(range.Encode());
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->Root(), range.Root());
  }
  EXPECT_EQ(emitted.size(), 7u);  // 4 + 2 + 1 perfect subtrees of two or more leaves
  for (const auto& [key, hash] : emitted) EXPECT_EQ(hash, *TestNodes()(key.first, key.second));
}

TEST(Merkle, InclusionProofsMatchTheTestVectors) {
  struct Case {
    uint64_t index, size;
    std::vector<std::string> proof;
  };
  const Case cases[] = {
      {0,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5,
       8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1,
       5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {0, 1, {}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<std::string>> proof =
        MerkleInclusionProof(TestNodes(), c.index, c.size);
    ASSERT_TRUE(proof.ok());
    EXPECT_EQ(Hexes(*proof), c.proof) << c.index << "/" << c.size;
    const std::string leaf = MerkleLeafHash(Inputs()[c.index]);
    EXPECT_TRUE(VerifyMerkleInclusion(leaf, c.index, c.size, *proof, Unhex(kRoots[c.size])).ok());
    EXPECT_FALSE(VerifyMerkleInclusion(leaf, c.index, c.size, *proof,
                                       Unhex(kRoots[c.size - 1 > 0 ? c.size - 1 : 2]))
                     .ok());
    EXPECT_FALSE(
        VerifyMerkleInclusion(MerkleLeafHash("x"), c.index, c.size, *proof, Unhex(kRoots[c.size]))
            .ok());
  }
}

TEST(Merkle, ConsistencyProofsMatchTheTestVectors) {
  struct Case {
    uint64_t old_size, new_size;
    std::vector<std::string> proof;
  };
  const Case cases[] = {
      {1,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6,
       8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {3,
       7,
       {"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<std::string>> proof =
        MerkleConsistencyProof(TestNodes(), c.old_size, c.new_size);
    ASSERT_TRUE(proof.ok());
    EXPECT_EQ(Hexes(*proof), c.proof) << c.old_size << "->" << c.new_size;
    EXPECT_TRUE(VerifyMerkleConsistency(c.old_size, c.new_size, Unhex(kRoots[c.old_size]),
                                        Unhex(kRoots[c.new_size]), *proof)
                    .ok());
    EXPECT_FALSE(VerifyMerkleConsistency(c.old_size, c.new_size, Unhex(kRoots[c.old_size - 1]),
                                         Unhex(kRoots[c.new_size]), *proof)
                     .ok());
  }
  // Every pair of sizes, both ways of checking.
  for (uint64_t m = 1; m <= 8; ++m) {
    for (uint64_t n = m; n <= 8; ++n) {
      absl::StatusOr<std::vector<std::string>> proof = MerkleConsistencyProof(TestNodes(), m, n);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(VerifyMerkleConsistency(m, n, Unhex(kRoots[m]), Unhex(kRoots[n]), *proof).ok())
          << m << "->" << n;
    }
  }
}

// The ledger's own tree: after every append its root matches a recomputation from the
// entries, and its proofs verify.
class LedgerTreeTest : public testing::ProgrammeTest {};

TEST_F(LedgerTreeTest, TreeFollowsTheJournalAndItsProofsVerify) {
  std::vector<std::string> leaves;
  std::vector<std::string> roots = {MerkleEmptyRoot()};
  for (int i = 0; i < 37; ++i) {
    v1::Entry entry = Ok(testing::kCashier, Contribute(100 + i));
    leaves.push_back(entry.hash());
    TreeHead head = *ledger_->GetTreeHead();
    ASSERT_EQ(head.size, leaves.size());
    CompactRange expected;
    for (const std::string& leaf : leaves)
      expected.Append(leaf, [](int, uint64_t, const std::string&) {});
    ASSERT_EQ(head.root, expected.Root());
    roots.push_back(head.root);
  }
  for (uint64_t size = 1; size <= leaves.size(); size += 3) {
    EXPECT_EQ(*ledger_->GetTreeRoot(size), roots[size]);
    for (uint64_t index = 0; index < size; index += 2) {
      absl::StatusOr<std::vector<std::string>> proof = ledger_->GetInclusionProof(index, size);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(VerifyMerkleInclusion(leaves[index], index, size, *proof, roots[size]).ok());
    }
    for (uint64_t old_size = 1; old_size <= size; old_size += 4) {
      absl::StatusOr<std::vector<std::string>> proof = ledger_->GetConsistencyProof(old_size, size);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(
          VerifyMerkleConsistency(old_size, size, roots[old_size], roots[size], *proof).ok());
    }
  }
  EXPECT_EQ(ledger_->GetInclusionProof(0, 38).status().code(), absl::StatusCode::kInvalidArgument);
  Reopen();
  EXPECT_EQ(ledger_->GetTreeHead()->root, roots.back());
  auto mismatch = ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value());
}

}  // namespace
}  // namespace gongdai
