#include "server/config.h"

#include <toml++/toml.h>

#include <set>
#include <string>
#include <type_traits>

#include "engine/date.h"
#include "engine/options.h"
#include "engine/rules.h"
#include "engine/strings.h"
#include "server/auth.h"

namespace gongdai::server {
namespace {

absl::Status Bad(std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError(Cat("config: ", key, ": ", why));
}

// Rejects keys the server does not know, so a misspelt setting is not silently ignored.
absl::Status OnlyKnownKeys(const toml::table& table, std::string_view where,
                           const std::set<std::string>& known) {
  for (const auto& [key, value] : table) {
    if (!known.count(std::string(key.str()))) {
      return Bad(Cat(where, key.str()), "unknown setting");
    }
  }
  return absl::OkStatus();
}

// The setting `key` of `table`, when present, of exactly the type of `out`: toml++'s
// value<T>() would also take 1 for true or 100.0 for 100.
template <typename T>
absl::Status Read(const toml::table& table, std::string_view where, const char* key, T& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return absl::OkStatus();
  if constexpr (std::is_same_v<T, bool>) {
    if (!node->is_boolean()) return Bad(Cat(where, key), "must be true or false");
  } else if constexpr (std::is_integral_v<T>) {
    if (!node->is_integer()) return Bad(Cat(where, key), "must be a whole number");
  } else {
    if (!node->is_string()) return Bad(Cat(where, key), "must be a string");
  }
  std::optional<T> value = node->value<T>();
  if (!value.has_value()) return Bad(Cat(where, key), "is out of range");
  out = *value;
  return absl::OkStatus();
}

#define GONGDAI_RETURN_IF_ERROR(expr)  \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

absl::Status ReadTokens(const toml::node* node, ServerConfig& config) {
  if (node == nullptr) return absl::OkStatus();
  const toml::array* tokens = node->as_array();
  if (tokens == nullptr) return Bad("tokens", "must be an array of tables ([[tokens]])");
  std::set<std::string> hashes;
  for (size_t i = 0; i < tokens->size(); ++i) {
    const std::string where = Cat("tokens[", i, "].");
    const toml::table* table = tokens->get(i)->as_table();
    if (table == nullptr) return Bad(where, "must be a table");
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(*table, where, {"sha256", "principal", "roles"}));
    TokenEntry entry;
    GONGDAI_RETURN_IF_ERROR(Read(*table, where, "sha256", entry.sha256_hex));
    GONGDAI_RETURN_IF_ERROR(Read(*table, where, "principal", entry.principal_id));
    if (entry.sha256_hex.size() != 64 ||
        entry.sha256_hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return Bad(Cat(where, "sha256"), "must be 64 hex digits");
    }
    if (!hashes.insert(TokenHashKey(entry.sha256_hex)).second) {
      return Bad(Cat(where, "sha256"), "is the hash of another token too");
    }
    if (entry.principal_id.empty()) return Bad(Cat(where, "principal"), "is required");
    if (entry.principal_id.size() > kPrincipalIdBytesMax) {
      return Bad(Cat(where, "principal"),
                 Cat("must be at most ", kPrincipalIdBytesMax,
                     " bytes (it is recorded with every entry the token writes)"));
    }
    const toml::array* roles = table->get_as<toml::array>("roles");
    if (roles == nullptr || roles->empty())
      return Bad(Cat(where, "roles"), "must list at least one role");
    for (const toml::node& role : *roles) {
      std::optional<std::string> name = role.value<std::string>();
      if (!name.has_value()) return Bad(Cat(where, "roles"), "must be strings");
      if (!ParseRole(*name).has_value()) {
        return Bad(Cat(where, "roles"),
                   Cat("unknown role \"", *name, "\" (", RoleNames(kAllRoles), ")"));
      }
      entry.roles.push_back(*name);
    }
    config.tokens.push_back(std::move(entry));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckListenAddress(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unix-abstract:"))
    return absl::OkStatus();
  const size_t colon = address.rfind(':');
  const std::string_view port = colon == std::string_view::npos ? "" : address.substr(colon + 1);
  // An empty host (":50051") is left to the server's probe, which says what to write.
  if (colon == std::string_view::npos || port.empty() ||
      port.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("\"", address, "\" must be HOST:PORT, such as 127.0.0.1:50051 or [::1]:50051"));
  }
  const std::string_view host = address.substr(0, colon);
  if (host.find(':') != std::string_view::npos && !(host.starts_with('[') && host.ends_with(']'))) {
    return absl::InvalidArgumentError(
        Cat("\"", address, "\": an IPv6 host is written in brackets, such as [::1]:50051"));
  }
  if (port.size() > 5 || std::stoi(std::string(port)) > 65535) {
    return absl::InvalidArgumentError(Cat("port ", port, " is not 0-65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> LoadConfig(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(Cat("config ", path, ": ", std::string(e.description()),
                                          " at line ",
                                          static_cast<int64_t>(e.source().begin.line)));
  }
  ServerConfig config;
  // A section written as a value ("writer = 5") would otherwise be skipped unnoticed.
  for (const char* section : {"tls", "business_date", "writer", "storage", "grpc", "checkpoint"}) {
    if (const toml::node* node = root.get(section); node != nullptr && !node->is_table()) {
      return Bad(section, Cat("must be a table ([", section, "])"));
    }
  }
  GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(root, "",
                                        {"listen", "data_dir", "tls", "tokens", "business_date",
                                         "writer", "storage", "grpc", "checkpoint"}));
  if (const toml::table* checkpoint = root.get_as<toml::table>("checkpoint")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(*checkpoint, "checkpoint.", {"origin", "key_file"}));
    GONGDAI_RETURN_IF_ERROR(Read(*checkpoint, "checkpoint.", "origin", config.checkpoint_origin));
    GONGDAI_RETURN_IF_ERROR(
        Read(*checkpoint, "checkpoint.", "key_file", config.checkpoint_key_file));
  }
  if (config.checkpoint_origin.empty() ||
      config.checkpoint_origin.find_first_of(" +\n\t") != std::string::npos) {
    return Bad("checkpoint.origin", "must be one word without spaces or '+'");
  }
  GONGDAI_RETURN_IF_ERROR(Read(root, "", "listen", config.listen_address));
  if (absl::Status listen = CheckListenAddress(config.listen_address); !listen.ok())
    return Bad("listen", std::string(listen.message()));
  GONGDAI_RETURN_IF_ERROR(Read(root, "", "data_dir", config.data_dir));
  if (config.data_dir.empty()) return Bad("data_dir", "must not be empty");
  if (const toml::table* tls = root.get_as<toml::table>("tls")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(*tls, "tls.", {"cert_file", "key_file"}));
    GONGDAI_RETURN_IF_ERROR(Read(*tls, "tls.", "cert_file", config.tls_cert_file));
    GONGDAI_RETURN_IF_ERROR(Read(*tls, "tls.", "key_file", config.tls_key_file));
    if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
      return Bad("tls", "give both cert_file and key_file, or neither");
    }
  }
  if (const toml::table* date = root.get_as<toml::table>("business_date")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(*date, "business_date.", {"mode", "fixed"}));
    std::string mode = "shanghai";
    GONGDAI_RETURN_IF_ERROR(Read(*date, "business_date.", "mode", mode));
    GONGDAI_RETURN_IF_ERROR(Read(*date, "business_date.", "fixed", config.fixed_business_date));
    if (mode == "fixed") {
      config.business_date_mode = BusinessDateMode::kFixed;
      if (!ParseDate(config.fixed_business_date, "business_date.fixed").ok()) {
        return Bad("business_date.fixed", "must be a date YYYY-MM-DD when mode is \"fixed\"");
      }
    } else if (mode != "shanghai") {
      return Bad("business_date.mode", "must be \"shanghai\" or \"fixed\"");
    } else if (!config.fixed_business_date.empty()) {
      // A date that would be ignored is a mistake, not a setting.
      return Bad("business_date.fixed", "applies only with mode = \"fixed\"");
    }
  }
  if (const toml::table* writer = root.get_as<toml::table>("writer")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(
        *writer, "writer.", {"queue_commands_max", "batch_commands_max", "batch_read_threads"}));
    int64_t queue = static_cast<int64_t>(config.queue_commands_max);
    int64_t batch = static_cast<int64_t>(config.batch_commands_max);
    int64_t read_threads = static_cast<int64_t>(config.batch_read_threads);
    GONGDAI_RETURN_IF_ERROR(Read(*writer, "writer.", "queue_commands_max", queue));
    GONGDAI_RETURN_IF_ERROR(Read(*writer, "writer.", "batch_commands_max", batch));
    GONGDAI_RETURN_IF_ERROR(Read(*writer, "writer.", "batch_read_threads", read_threads));
    if (queue < 1 || queue > 1'000'000)
      return Bad("writer.queue_commands_max", "must be 1-1000000");
    if (batch < 1 || batch > 65'536) return Bad("writer.batch_commands_max", "must be 1-65536");
    if (read_threads < 0 || read_threads > static_cast<int64_t>(kBatchReadThreadsMax)) {
      return Bad("writer.batch_read_threads", Cat("must be 0-", kBatchReadThreadsMax));
    }
    config.queue_commands_max = static_cast<size_t>(queue);
    config.batch_commands_max = static_cast<size_t>(batch);
    config.batch_read_threads = static_cast<size_t>(read_threads);
  }
  if (const toml::table* storage = root.get_as<toml::table>("storage")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(
        *storage, "storage.", {"block_cache_mib", "recent_projections_mib", "write_buffer_mib"}));
    struct Setting {
      const char* key;
      size_t* value;
      int64_t min;
      int64_t max;
    };
    const Setting settings[] = {
        {"block_cache_mib", &config.block_cache_mib, 1, 65'536},
        {"recent_projections_mib", &config.recent_projections_mib, 0, 65'536},
        {"write_buffer_mib", &config.write_buffer_mib, 1, 1'024}};
    for (const Setting& setting : settings) {
      int64_t mib = static_cast<int64_t>(*setting.value);
      GONGDAI_RETURN_IF_ERROR(Read(*storage, "storage.", setting.key, mib));
      if (mib < setting.min || mib > setting.max) {
        return Bad(Cat("storage.", setting.key), Cat("must be ", setting.min, "-", setting.max));
      }
      *setting.value = static_cast<size_t>(mib);
    }
  }
  if (const toml::table* grpc = root.get_as<toml::table>("grpc")) {
    GONGDAI_RETURN_IF_ERROR(OnlyKnownKeys(
        *grpc, "grpc.", {"max_message_bytes", "reflection", "max_concurrent_streams"}));
    int64_t bytes = config.max_message_bytes;
    int64_t streams = config.max_concurrent_streams;
    GONGDAI_RETURN_IF_ERROR(Read(*grpc, "grpc.", "max_message_bytes", bytes));
    GONGDAI_RETURN_IF_ERROR(Read(*grpc, "grpc.", "reflection", config.reflection));
    GONGDAI_RETURN_IF_ERROR(Read(*grpc, "grpc.", "max_concurrent_streams", streams));
    if (bytes < 1024 || bytes > (int64_t{64} << 20))
      return Bad("grpc.max_message_bytes", "must be 1 KiB-64 MiB");
    if (streams < 1 || streams > 100'000)
      return Bad("grpc.max_concurrent_streams", "must be 1-100000");
    config.max_message_bytes = static_cast<int>(bytes);
    config.max_concurrent_streams = static_cast<int>(streams);
  }
  GONGDAI_RETURN_IF_ERROR(ReadTokens(root.get("tokens"), config));
  return config;
}

std::string DefaultConfigToml() {
  return R"(# gongdai-server configuration. Every setting shows its default.

# Address to listen on. Nothing listens beyond loopback unless set here.
listen = "127.0.0.1:50051"
# The embedded RocksDB ledger lives here.
data_dir = "gongdai-data"

[tls]
# PEM certificate chain and private key; TLS is on when both are given.
cert_file = ""
key_file = ""

[business_date]
# "shanghai": today's Asia/Shanghai calendar date. "fixed": the date below (demos, tests).
mode = "shanghai"
fixed = ""

[writer]
# Commands waiting for the writer; beyond this, writes are refused (RESOURCE_EXHAUSTED).
queue_commands_max = 8192
# Commands committed together in one synced write.
batch_commands_max = 512
# Threads that read a batch's loans (and borrowers) from disk, several at once, before
# the writer executes it; 0 leaves each read to the writer, in turn.
batch_read_threads = 8

[storage]
# Memory of the ledger's storage, in MiB. RocksDB's block cache, shared by every space:
# bounds the memory that reads use.
block_cache_mib = 64
# Projections (loans, accounts) the writer keeps of those it read or wrote lately, so
# that a command on a recently touched loan reads none from RocksDB; 0 keeps none.
recent_projections_mib = 64
# RocksDB's memtable for each of the five spaces: bounds the memory that writes use.
# The write-ahead log is kept to at most four times the five memtables (640 MiB here).
write_buffer_mib = 32

[checkpoint]
# The origin line of signed checkpoints (and the name of their Ed25519 key).
origin = "gongdai.ledger"
# PKCS#8 PEM Ed25519 private key; created owner-only when missing.
# Default: <data_dir>/checkpoint-key.pem
key_file = ""

[grpc]
max_message_bytes = 4194304
reflection = true
max_concurrent_streams = 4096

# Bearer tokens, stored as SHA-256 hex of the token. Roles: officer, approver, cashier,
# supervisor, auditor, portal, admin. With no [[tokens]] at all, the server creates a
# development token per role in its data directory (dev-tokens.toml, owner-only).
# [[tokens]]
# sha256 = "<sha256sum of the token>"
# principal = "officer.liu"
# roles = ["officer"]
)";
}

}  // namespace gongdai::server
