// gongdai-server's configuration file: the printed defaults load back as the defaults
// and are the engine's own, every storage setting reaches the ledger's options, and a bad
// setting is refused with its key and its rule.
#include "server/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "engine/options.h"
#include "server/server.h"
#include "tests/test_util.h"

namespace gongdai::server {
namespace {

using testing::TempDir;

absl::StatusOr<ServerConfig> LoadText(const TempDir& dir, const std::string& text) {
  const std::string path = dir.Sub("server.toml");
  std::ofstream(path) << text;
  return LoadConfig(path);
}

TEST(ServerConfig, ThePrintedDefaultsLoadBackAsTheEnginesDefaults) {
  TempDir dir;
  absl::StatusOr<ServerConfig> loaded = LoadText(dir, DefaultConfigToml());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const ServerConfig defaults;
  EXPECT_EQ(loaded->listen_address, defaults.listen_address);
  EXPECT_EQ(loaded->data_dir, defaults.data_dir);
  EXPECT_EQ(loaded->business_date_mode, defaults.business_date_mode);
  EXPECT_TRUE(loaded->tokens.empty());
  EXPECT_EQ(loaded->max_message_bytes, defaults.max_message_bytes);
  EXPECT_EQ(loaded->max_concurrent_streams, defaults.max_concurrent_streams);
  EXPECT_EQ(loaded->checkpoint_origin, defaults.checkpoint_origin);

  // The file's defaults, and a server started with no file at all, give the ledger the
  // engine's own defaults.
  const LedgerOptions engine;
  for (const ServerConfig& config : {*loaded, ServerConfig()}) {
    const LedgerOptions options = LedgerOptionsFor(config);
    EXPECT_EQ(options.queue_commands_max, engine.queue_commands_max);
    EXPECT_EQ(options.batch_commands_max, engine.batch_commands_max);
    EXPECT_EQ(options.batch_read_threads, engine.batch_read_threads);
    EXPECT_EQ(options.block_cache_bytes, engine.block_cache_bytes);
    EXPECT_EQ(options.recent_projection_bytes, engine.recent_projection_bytes);
    EXPECT_EQ(options.write_buffer_bytes, engine.write_buffer_bytes);
    EXPECT_FALSE(options.business_date_today);
  }
}

TEST(ServerConfig, WriterAndStorageSettingsReachTheLedgersOptions) {
  TempDir dir;
  absl::StatusOr<ServerConfig> loaded = LoadText(dir,
                                                 "[writer]\n"
                                                 "queue_commands_max = 100\n"
                                                 "batch_commands_max = 64\n"
                                                 "batch_read_threads = 3\n"
                                                 "[storage]\n"
                                                 "block_cache_mib = 256\n"
                                                 "recent_projections_mib = 0\n"
                                                 "write_buffer_mib = 8\n"
                                                 "[business_date]\n"
                                                 "mode = \"fixed\"\n"
                                                 "fixed = \"2020-06-30\"\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LedgerOptions options = LedgerOptionsFor(*loaded);
  EXPECT_EQ(options.queue_commands_max, 100u);
  EXPECT_EQ(options.batch_commands_max, 64u);
  EXPECT_EQ(options.batch_read_threads, 3u);
  EXPECT_EQ(options.block_cache_bytes, size_t{256} << 20);
  EXPECT_EQ(options.recent_projection_bytes, 0u);
  EXPECT_EQ(options.write_buffer_bytes, size_t{8} << 20);
  ASSERT_TRUE(options.business_date_today);
  EXPECT_EQ(options.business_date_today().ToString(), "2020-06-30");
}

TEST(ServerConfig, ABadSettingIsRefusedWithItsKeyAndRule) {
  const std::pair<std::string, std::string> cases[] = {
      {"[storage]\nblock_cache_mib = 0\n", "config: storage.block_cache_mib: must be 1-65536"},
      {"[storage]\nwrite_buffer_mib = 2048\n", "config: storage.write_buffer_mib: must be 1-1024"},
      {"[storage]\nrecent_projections_mib = -1\n",
       "config: storage.recent_projections_mib: must be 0-65536"},
      {"[storage]\nblock_cache_mib = \"64\"\n",
       "config: storage.block_cache_mib: must be a whole number"},
      // Types are exact: toml++ would convert these.
      {"[grpc]\nreflection = 1\n", "config: grpc.reflection: must be true or false"},
      {"[writer]\nbatch_read_threads = true\n",
       "config: writer.batch_read_threads: must be a whole number"},
      {"[writer]\nqueue_commands_max = 100.0\n",
       "config: writer.queue_commands_max: must be a whole number"},
      {"listen = 50051\n", "config: listen: must be a string"},
      // gRPC would listen on 443 without a port, and on 34463 for 99999.
      {"listen = \"127.0.0.1\"\n",
       "config: listen: \"127.0.0.1\" must be HOST:PORT, such as 127.0.0.1:50051 or [::1]:50051"},
      {"listen = \"127.0.0.1:99999\"\n", "config: listen: port 99999 is not 0-65535"},
      {"data_dir = \"\"\n", "config: data_dir: must not be empty"},
      {"[checkpoint]\norigin = \"\"\n",
       "config: checkpoint.origin: must be one word without spaces or '+'"},
      {"[business_date]\nfixed = \"2020-06-30\"\n",
       "config: business_date.fixed: applies only with mode = \"fixed\""},
      {"[storage]\nblock_cache = 64\n", "config: storage.block_cache: unknown setting"},
      {"[writer]\nbatch_commands_max = 0\n", "config: writer.batch_commands_max: must be 1-65536"},
      {"[writer]\nbatch_read_threads = 65\n", "config: writer.batch_read_threads: must be 0-64"},
      {"[grpc]\nmax_message_bytes = 10\n", "config: grpc.max_message_bytes: must be 1 KiB-64 MiB"},
      {"[business_date]\nmode = \"fixed\"\n",
       "config: business_date.fixed: must be a date YYYY-MM-DD when mode is \"fixed\""},
      {"[tls]\ncert_file = \"cert.pem\"\n",
       "config: tls: give both cert_file and key_file, or neither"},
      {"[[tokens]]\nsha256 = \"" + std::string(64, 'g') +
           "\"\nprincipal = \"officer.liu\"\nroles = [\"officer\"]\n",
       "config: tokens[0].sha256: must be 64 hex digits"},
      {"[[tokens]]\nsha256 = \"" + std::string(64, 'a') +
           "\"\nprincipal = \"officer.liu\"\nroles = [\"officer\", \"teller\"]\n",
       "config: tokens[0].roles: unknown role \"teller\" (officer, approver, cashier, "
       "supervisor, auditor, portal, admin)"},
      {"[[tokens]]\nsha256 = \"" + std::string(64, 'a') +
           "\"\nprincipal = \"officer.liu\"\nroles = [\"officer\"]\n"
           "[[tokens]]\nsha256 = \"" +
           std::string(64, 'A') + "\"\nprincipal = \"officer.chen\"\nroles = [\"officer\"]\n",
       "config: tokens[1].sha256: is the hash of another token too"},
      {"[[tokens]]\nsha256 = \"" + std::string(64, 'a') + "\"\nprincipal = \"" +
           std::string(129, 'o') + "\"\nroles = [\"officer\"]\n",
       "config: tokens[0].principal: must be at most 128 bytes (it is recorded with every entry "
       "the token writes)"},
      {"storage = 64\n", "config: storage: must be a table ([storage])"},
      {"business_date = 2020-06-30\n", "config: business_date: must be a table ([business_date])"},
      {"colour = \"red\"\n", "config: colour: unknown setting"},
  };
  TempDir dir;
  for (const auto& [text, expected] : cases) {
    absl::StatusOr<ServerConfig> loaded = LoadText(dir, text);
    ASSERT_FALSE(loaded.ok()) << text;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(loaded.status().message(), expected) << text;
  }
}

TEST(ServerConfig, GoodListenAddressesAreTaken) {
  for (const char* address : {"127.0.0.1:50051", "0.0.0.0:0", "[::1]:50051", "localhost:65535",
                              "unix:/tmp/g.sock", "unix-abstract:gongdai"}) {
    EXPECT_TRUE(CheckListenAddress(address).ok()) << address;
  }
  // Host "::1" and port 50051, or host ":" and port 1?
  EXPECT_EQ(CheckListenAddress("::1:50051").message(),
            "\"::1:50051\": an IPv6 host is written in brackets, such as [::1]:50051");
}

}  // namespace
}  // namespace gongdai::server
