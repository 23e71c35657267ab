#include "engine/checkpoint.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>
#include <vector>

#include "engine/sha256.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

constexpr std::string_view kSignaturePrefix = "\xe2\x80\x94 ";  // em dash and a space
constexpr char kEd25519Type = 0x01;

std::string KeyId(std::string_view name, std::string_view public_key) {
  return ThreadSha256()
      .Digest({name, "\n", std::string_view(&kEd25519Type, 1), public_key})
      .substr(0, 4);
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(bytes.data()),
                                     static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return absl::InvalidArgumentError("base64 length is not a multiple of 4");
  std::string out(text.size() / 4 * 3 + 1, '\0');
  const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(text.data()),
                                     static_cast<int>(text.size()));
  if (length < 0) return absl::InvalidArgumentError("not base64");
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(length) - padding);
  return out;
}

std::string CheckpointText(const Checkpoint& c) {
  return Cat(c.origin, "\n", c.size, "\n", Base64Encode(c.root), "\ntime ", c.time_unix, "\n");
}

CheckpointSigner::CheckpointSigner(CheckpointSigner&& other) noexcept
    : key_(other.key_),
      origin_(std::move(other.origin_)),
      public_key_(std::move(other.public_key_)) {
  other.key_ = nullptr;
}

CheckpointSigner::~CheckpointSigner() { EVP_PKEY_free(key_); }

absl::StatusOr<CheckpointSigner> CheckpointSigner::LoadOrCreate(const std::string& pem_path,
                                                                std::string origin) {
  if (origin.empty() || origin.find('\n') != std::string::npos ||
      origin.find(' ') != std::string::npos || origin.find('+') != std::string::npos) {
    return absl::InvalidArgumentError("checkpoint origin must be one word without spaces or '+'");
  }
  CheckpointSigner signer;
  signer.origin_ = std::move(origin);
  if (FILE* in = std::fopen(pem_path.c_str(), "r")) {
    signer.key_ = PEM_read_PrivateKey(in, nullptr, nullptr, nullptr);
    std::fclose(in);
    if (signer.key_ == nullptr || EVP_PKEY_get_id(signer.key_) != EVP_PKEY_ED25519) {
      return absl::InvalidArgumentError(
          Cat(pem_path, " is not an Ed25519 private key (PKCS#8 PEM)"));
    }
  } else {
    signer.key_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (signer.key_ == nullptr) return absl::InternalError("cannot generate an Ed25519 key");
    const mode_t old_mask = ::umask(077);  // the key file is owner-only from its first byte
    FILE* out = std::fopen(pem_path.c_str(), "w");
    ::umask(old_mask);
    if (out == nullptr) return absl::UnavailableError(Cat("cannot write ", pem_path));
    const bool written =
        PEM_write_PrivateKey(out, signer.key_, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    const bool closed = std::fclose(out) == 0;
    if (!written || !closed) return absl::UnavailableError(Cat("cannot write ", pem_path));
  }
  size_t length = 32;
  signer.public_key_.resize(32);
  if (EVP_PKEY_get_raw_public_key(
          signer.key_, reinterpret_cast<unsigned char*>(signer.public_key_.data()), &length) != 1 ||
      length != 32) {
    return absl::InternalError("cannot read the Ed25519 public key");
  }
  return signer;
}

std::string CheckpointSigner::Sign(const Checkpoint& checkpoint) const {
  const std::string text = CheckpointText(checkpoint);
  std::string signature(64, '\0');
  size_t length = signature.size();
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const bool ok =
      context != nullptr && EVP_DigestSignInit(context, nullptr, nullptr, nullptr, key_) == 1 &&
      EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(text.data()), text.size()) == 1;
  EVP_MD_CTX_free(context);
  if (!ok || length != 64)
    std::abort();  // signing with a loaded key cannot fail but for a broken OpenSSL
  return Cat(text, "\n", kSignaturePrefix, origin_, " ",
             Base64Encode(KeyId(origin_, public_key_) + signature), "\n");
}

std::string CheckpointSigner::VerifierKey() const {
  return Cat(origin_, "+", ToHex(KeyId(origin_, public_key_)), "+",
             Base64Encode(std::string(1, kEd25519Type) + public_key_));
}

absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note, std::string_view verifier_key) {
  // The verifier key: name+keyid+base64(type || key).
  const size_t first_plus = verifier_key.find('+');
  const size_t second_plus = verifier_key.find('+', first_plus + 1);
  if (first_plus == std::string_view::npos || second_plus == std::string_view::npos) {
    return absl::InvalidArgumentError("verifier key must look like name+keyid+base64key");
  }
  const std::string_view name = verifier_key.substr(0, first_plus);
  absl::StatusOr<std::string> typed_key = Base64Decode(verifier_key.substr(second_plus + 1));
  if (!typed_key.ok() || typed_key->size() != 33 || (*typed_key)[0] != kEd25519Type) {
    return absl::InvalidArgumentError("verifier key does not hold an Ed25519 public key");
  }
  const std::string public_key = typed_key->substr(1);
  const std::string key_id = KeyId(name, public_key);
  if (ToHex(key_id) != verifier_key.substr(first_plus + 1, second_plus - first_plus - 1)) {
    return absl::InvalidArgumentError("verifier key's id does not match its name and key");
  }
  // The note: text, a blank line, signature lines.
  const size_t split = note.find("\n\n");
  if (split == std::string_view::npos)
    return absl::DataLossError("checkpoint has no signature section");
  const std::string_view text = note.substr(0, split + 1);
  std::string_view signatures = note.substr(split + 2);
  bool verified = false;
  while (!signatures.empty()) {
    const size_t end = signatures.find('\n');
    std::string_view line = signatures.substr(0, end);
    signatures.remove_prefix(end == std::string_view::npos ? signatures.size() : end + 1);
    if (!line.starts_with(kSignaturePrefix)) return absl::DataLossError("malformed signature line");
    line.remove_prefix(kSignaturePrefix.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != name) continue;
    absl::StatusOr<std::string> blob = Base64Decode(line.substr(space + 1));
    if (!blob.ok() || blob->size() != 68 || blob->substr(0, 4) != key_id) continue;
    EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()), 32);
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    verified =
        key != nullptr && context != nullptr &&
        EVP_DigestVerifyInit(context, nullptr, nullptr, nullptr, key) == 1 &&
        EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(blob->data() + 4), 64,
                         reinterpret_cast<const unsigned char*>(text.data()), text.size()) == 1;
    EVP_MD_CTX_free(context);
    EVP_PKEY_free(key);
    if (verified) break;
  }
  if (!verified)
    return absl::DataLossError(Cat("checkpoint is not signed by ", name, " with this key"));
  // The checkpoint body.
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    lines.push_back(rest.substr(0, end));
    rest.remove_prefix(end + 1);
  }
  if (lines.size() < 3) return absl::DataLossError("checkpoint body has fewer than 3 lines");
  Checkpoint checkpoint;
  checkpoint.origin = std::string(lines[0]);
  try {
    checkpoint.size = std::stoull(std::string(lines[1]));
  } catch (const std::exception&) {
    return absl::DataLossError("checkpoint size is not a number");
  }
  absl::StatusOr<std::string> root = Base64Decode(lines[2]);
  if (!root.ok() || root->size() != 32)
    return absl::DataLossError("checkpoint root is not a base64 SHA-256 hash");
  checkpoint.root = *root;
  for (size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].starts_with("time "))
      checkpoint.time_unix = std::atoll(std::string(lines[i].substr(5)).c_str());
  }
  return checkpoint;
}

}  // namespace gongdai
