#include "engine/sha256.h"

#include <openssl/evp.h>

#include "engine/check.h"

namespace gongdai {

Sha256::Sha256() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
  GONGDAI_CHECK(md_ != nullptr);
  GONGDAI_CHECK(ctx_ != nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);
  EVP_MD_free(md_);
}

std::string Sha256::Digest(std::initializer_list<std::string_view> parts) {
  std::string out(kSha256Bytes, '\0');
  unsigned int length = 0;
  // These calls fail only on allocation failure or a broken OpenSSL: invariants.
  GONGDAI_CHECK(EVP_DigestInit_ex(ctx_, md_, nullptr) == 1);
  for (std::string_view part : parts) {
    GONGDAI_CHECK(EVP_DigestUpdate(ctx_, part.data(), part.size()) == 1);
  }
  GONGDAI_CHECK(EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &length) ==
                1);
  GONGDAI_CHECK(length == kSha256Bytes);
  return out;
}

Sha256& ThreadSha256() {
  thread_local Sha256 hasher;
  return hasher;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

}  // namespace gongdai
