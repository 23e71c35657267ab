// gongdai-server's configuration: one TOML file, every setting with a default, so that
// the server runs with no file at all (docs/configuration.md lists them).
#ifndef GONGDAI_SERVER_CONFIG_H_
#define GONGDAI_SERVER_CONFIG_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace gongdai::server {

// One bearer token, stored as the SHA-256 of the token (lower-case hex), never the
// token itself.
struct TokenEntry {
  std::string sha256_hex;
  std::string principal_id;
  std::vector<std::string> roles;
};

enum class BusinessDateMode {
  kShanghai,  // today's Asia/Shanghai calendar date
  kFixed,     // a fixed date, for demos and tests
};

struct ServerConfig {
  // Default: "127.0.0.1:50051". Nothing listens beyond loopback unless configured.
  std::string listen_address = "127.0.0.1:50051";
  // Default: "gongdai-data" under the working directory.
  std::string data_dir = "gongdai-data";
  // TLS is on when both are given (PEM files). Default: off.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Default: empty, and then development tokens are created in the data directory.
  std::vector<TokenEntry> tokens;
  // Default: kShanghai.
  BusinessDateMode business_date_mode = BusinessDateMode::kShanghai;
  // "YYYY-MM-DD", required with kFixed.
  std::string fixed_business_date;
  // Writer limits. Defaults: 8192 queued commands, 512 per batch.
  size_t queue_commands_max = 8192;
  size_t batch_commands_max = 512;
  // Threads that read a batch's state before the writer executes it (0: the writer reads
  // each key itself, in turn). Default: 8.
  size_t batch_read_threads = 8;
  // Memory of the ledger's storage, in MiB: RocksDB's block cache, shared by every
  // space (bounds read-side memory); the projections the writer keeps of those it read
  // or wrote lately, so that a command on a recently touched loan reads none from
  // RocksDB (0 keeps none); RocksDB's memtable per space (bounds write-side memory).
  // Defaults: 64, 64 and 32.
  size_t block_cache_mib = 64;
  size_t recent_projections_mib = 64;
  size_t write_buffer_mib = 32;
  // Largest request or response message. Default: 4 MiB.
  int max_message_bytes = 4 << 20;
  // The gRPC reflection service, so standard tools can discover the API. Default: on.
  bool reflection = true;
  // Checkpoints: the log's origin line (also the signing key's name) and the Ed25519
  // private key (PKCS#8 PEM). Defaults: "gongdai.ledger" and <data_dir>/checkpoint-key.pem,
  // created owner-only on first start.
  std::string checkpoint_origin = "gongdai.ledger";
  std::string checkpoint_key_file;
  // Calls handled at once on one connection (gRPC's per-connection stream limit);
  // the writer's queue bounds writes further. Default: 4096.
  int max_concurrent_streams = 4096;
};

// OK for HOST:PORT with a port of 0-65535 (0: any free port; an IPv6 host in brackets)
// or a "unix:" path or "unix-abstract:" name;
// otherwise INVALID_ARGUMENT saying what is wrong. gRPC would take a missing port as 443
// and a larger one modulo 65536.
[[nodiscard]] absl::Status CheckListenAddress(std::string_view address);

// Reads `path` (TOML). Unknown keys and wrong types are INVALID_ARGUMENT naming the key.
[[nodiscard]] absl::StatusOr<ServerConfig> LoadConfig(const std::string& path);

// The defaults, as the TOML a federation's IT team would start from.
std::string DefaultConfigToml();

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_CONFIG_H_
