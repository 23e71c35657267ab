// SHA-256 through OpenSSL with a reused context: the algorithm is fetched once per
// hasher, not once per digest.
#ifndef GONGDAI_ENGINE_SHA256_H_
#define GONGDAI_ENGINE_SHA256_H_

#include <string>
#include <string_view>

typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace gongdai {

inline constexpr size_t kSha256Bytes = 32;

// Not thread-safe: use one per thread (ThreadSha256 gives each thread its own).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // SHA-256 of the concatenation of `parts`, 32 raw bytes.
  std::string Digest(std::initializer_list<std::string_view> parts);

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

// This thread's hasher.
Sha256& ThreadSha256();

// Lower-case hex of `bytes`.
std::string ToHex(std::string_view bytes);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_SHA256_H_
