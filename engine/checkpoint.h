// Signed checkpoints of the journal's Merkle tree, in the C2SP tlog-checkpoint form
// inside a C2SP signed note, signed with Ed25519:
//
//   <origin>\n<tree size>\n<base64 root hash>\ntime <unix seconds>\n
//   \n
//   — <key name> <base64(4-byte key id || 64-byte signature)>\n
//
// The key id is the first 4 bytes of SHA-256(<key name> || "\n" || 0x01 || public key),
// and the verifier key is written "<key name>+<key id hex>+<base64(0x01 || public key)>".
#ifndef GONGDAI_ENGINE_CHECKPOINT_H_
#define GONGDAI_ENGINE_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace gongdai {

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  std::string root;  // 32 bytes
  int64_t time_unix = 0;
};

// The signed part of the note (its text, ending in a newline).
std::string CheckpointText(const Checkpoint& checkpoint);

class CheckpointSigner {
 public:
  // Reads the Ed25519 private key (PKCS#8 PEM) at `pem_path`, creating one (owner-only)
  // when the file does not exist. The key name is the checkpoint origin.
  [[nodiscard]] static absl::StatusOr<CheckpointSigner> LoadOrCreate(const std::string& pem_path,
                                                                     std::string origin);
  CheckpointSigner(CheckpointSigner&&) noexcept;
  ~CheckpointSigner();

  // The signed note for `checkpoint` (whose origin must be this signer's).
  std::string Sign(const Checkpoint& checkpoint) const;
  // "<name>+<key id hex>+<base64(0x01 || public key)>", to hand to auditors.
  std::string VerifierKey() const;
  const std::string& origin() const { return origin_; }

 private:
  CheckpointSigner() = default;
  EVP_PKEY* key_ = nullptr;
  std::string origin_;
  std::string public_key_;  // 32 bytes
};

// Checks the note's signature with `verifier_key` and parses the checkpoint. DATA_LOSS
// when the signature does not verify or the note is malformed, INVALID_ARGUMENT for a
// malformed verifier key.
[[nodiscard]] absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note,
                                                          std::string_view verifier_key);

std::string Base64Encode(std::string_view bytes);
[[nodiscard]] absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_CHECKPOINT_H_
