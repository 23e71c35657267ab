// gongdai-server: the ledger, the gRPC service, health and reflection, started from a
// ServerConfig and shut down gracefully.
#ifndef GONGDAI_SERVER_SERVER_H_
#define GONGDAI_SERVER_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ledger.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/service.h"

namespace gongdai::server {

// The ledger's options for `config` (its writer limits, storage memory, business date),
// as LoadConfig and the command line leave it (a fixed business date already checked).
LedgerOptions LedgerOptionsFor(const ServerConfig& config);

class GongdaiServer {
 public:
  // Opens the ledger under config.data_dir, creates development tokens when the config
  // has none, and starts listening.
  // `prepare`, when given, runs on the opened ledger before the server listens (the demo
  // book is loaded this way, so no call can interleave with it).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GongdaiServer>> Start(
      const ServerConfig& config, const std::function<absl::Status(Ledger&)>& prepare = nullptr);

  // Stops accepting calls, finishes those in flight (every acknowledged write is already
  // durable) and closes the ledger. Safe to call once, from any thread but a handler.
  void Shutdown();

  ~GongdaiServer();

  // The address actually listened on (the port filled in when the config asked for 0).
  const std::string& listening_address() const { return listening_address_; }
  bool tls() const { return tls_; }
  // Where the development tokens are, when the server made them; empty otherwise.
  const std::string& development_tokens_path() const { return development_tokens_path_; }
  bool development_tokens_created() const { return development_tokens_created_; }
  Ledger& ledger() { return *ledger_; }
  const CheckpointSigner& signer() const { return *signer_; }

 private:
  GongdaiServer() = default;
  void MarkNotServing();

  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<CheckpointSigner> signer_;
  std::unique_ptr<LedgerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string listening_address_;
  std::string development_tokens_path_;
  bool development_tokens_created_ = false;
  bool tls_ = false;
  bool shut_down_ = false;
};

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_SERVER_H_
