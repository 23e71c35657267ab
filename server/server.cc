#include "server/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "engine/check.h"
#include "engine/strings.h"

namespace gongdai::server {
namespace {

constexpr const char* kServiceName = "gongdai.v1.LoanLedger";

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(Cat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

enum class BindOutcome { kBound, kInUse, kPrivileged, kForeign, kOther };

// Binds a socket to `address` and lets go at once. `dual_stack` clears IPV6_V6ONLY, as
// gRPC does for its sockets, so that the answer does not depend on the host's bindv6only.
BindOutcome TryBind(const sockaddr* address, socklen_t length, bool dual_stack) {
  const int fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return BindOutcome::kOther;
  const int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as gRPC does
  if (dual_stack) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  BindOutcome outcome = BindOutcome::kBound;
  if (::bind(fd, address, length) != 0) {
    outcome = errno == EADDRINUSE      ? BindOutcome::kInUse
              : errno == EACCES        ? BindOutcome::kPrivileged
              : errno == EADDRNOTAVAIL ? BindOutcome::kForeign
                                       : BindOutcome::kOther;
  }
  ::close(fd);
  return outcome;
}

// 0.0.0.0, [::] and every other spelling of them ([::0], [::ffff:0.0.0.0]).
bool IsWildcard(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (address->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
    if (IN6_IS_ADDR_UNSPECIFIED(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 0 && a.s6_addr[13] == 0 &&
           a.s6_addr[14] == 0 && a.s6_addr[15] == 0;
  }
  return false;
}

// Binds each address `listen` names, as gRPC will, and lets go at once. gRPC can bind only
// once the ledger is open (the service needs it): without this, a server started on an
// address in use would first create its data directory, ledger and tokens, and only then
// fail. gRPC listens if any of the addresses binds (localhost where another process holds
// [::1] only), and takes any wildcard address (0.0.0.0, [::], [::0]) as [::] for IPv6 and
// IPv4 both, or 0.0.0.0 when that fails: the probe does the same, and refuses only when
// nothing binds (the port in use, a privileged port, no address of this machine) or when
// gRPC would refuse the form itself (no host). Anything else (a name that does not
// resolve, an IPv6 address without brackets, a form such as unix:) is left to gRPC, whose
// own bind still decides.
absl::Status ProbeListenAddress(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || listen.starts_with("unix")) return absl::OkStatus();
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port == "0") return absl::OkStatus();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return absl::OkStatus();  // "::1:50051" is ambiguous; gRPC reads it its own way
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(Cat("cannot listen on ", listen,
                                          ": no host before the port (for every interface: "
                                          "0.0.0.0:",
                                          port, " or [::]:", port, ")"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return absl::OkStatus();
  int bound = 0, in_use = 0, privileged = 0, foreign = 0;
  auto count = [&](BindOutcome outcome) {
    bound += outcome == BindOutcome::kBound;
    in_use += outcome == BindOutcome::kInUse;
    privileged += outcome == BindOutcome::kPrivileged;
    foreign += outcome == BindOutcome::kForeign;
  };
  bool wildcard = false;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) wildcard |= IsWildcard(a->ai_addr);
  if (wildcard) {
    const uint16_t port_number =
        found->ai_family == AF_INET6
            ? reinterpret_cast<const sockaddr_in6*>(found->ai_addr)->sin6_port
            : reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_port;
    sockaddr_in6 any6{};
    any6.sin6_family = AF_INET6;
    any6.sin6_port = port_number;
    any6.sin6_addr = in6addr_any;
    count(TryBind(reinterpret_cast<const sockaddr*>(&any6), sizeof(any6), true));
    if (bound == 0) {
      sockaddr_in any4{};
      any4.sin_family = AF_INET;
      any4.sin_port = port_number;
      any4.sin_addr.s_addr = htonl(INADDR_ANY);
      count(TryBind(reinterpret_cast<const sockaddr*>(&any4), sizeof(any4), false));
    }
  } else {
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
      count(TryBind(a->ai_addr, a->ai_addrlen, a->ai_family == AF_INET6));
    }
  }
  ::freeaddrinfo(found);
  if (bound > 0) return absl::OkStatus();
  if (in_use > 0) {
    return absl::UnavailableError(Cat("cannot listen on ", listen,
                                      ": the address is in use (another process listens there)"));
  }
  if (privileged > 0) {
    return absl::UnavailableError(
        Cat("cannot listen on ", listen, ": port ", port, " needs privileges"));
  }
  if (foreign > 0) {
    return absl::UnavailableError(
        Cat("cannot listen on ", listen, ": ", host, " is not an address of this machine"));
  }
  return absl::OkStatus();
}

// gRPC's reflection library adds its plugin to every ServerBuilder as soon as it is
// loaded; without reflection, this option takes it out of the builder again.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
      return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin*>(plugin.get()) != nullptr;
    });
  }
};

}  // namespace

LedgerOptions LedgerOptionsFor(const ServerConfig& config) {
  LedgerOptions options;
  options.queue_commands_max = config.queue_commands_max;
  options.batch_commands_max = config.batch_commands_max;
  options.batch_read_threads = config.batch_read_threads;
  options.block_cache_bytes = config.block_cache_mib << 20;
  options.recent_projection_bytes = config.recent_projections_mib << 20;
  options.write_buffer_bytes = config.write_buffer_mib << 20;
  if (config.business_date_mode == BusinessDateMode::kFixed) {
    const absl::StatusOr<Date> fixed = ParseDate(config.fixed_business_date, "business_date.fixed");
    GONGDAI_CHECK(fixed.ok());  // LoadConfig and the command line have checked it
    options.business_date_today = [date = *fixed] { return date; };
  }
  return options;
}

absl::StatusOr<std::unique_ptr<GongdaiServer>> GongdaiServer::Start(
    const ServerConfig& config, const std::function<absl::Status(Ledger&)>& prepare) {
  absl::Status address = ProbeListenAddress(config.listen_address);
  if (!address.ok()) return address;
  // Everything the settings name is read before anything is written: a missing
  // certificate leaves no new ledger, tokens or key behind.
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!config.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(config.tls_cert_file);
    if (!cert.ok())
      return absl::FailedPreconditionError(Cat("tls.cert_file: ", cert.status().message()));
    absl::StatusOr<std::string> key = ReadFile(config.tls_key_file);
    if (!key.ok())
      return absl::FailedPreconditionError(Cat("tls.key_file: ", key.status().message()));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  // A RocksDB directory given as the data directory (its "ledger" subdirectory, say)
  // would get a new, empty ledger inside it.
  std::error_code unknown;
  if (std::filesystem::exists(std::filesystem::path(config.data_dir) / "CURRENT", unknown)) {
    return absl::FailedPreconditionError(
        Cat("data_dir ", config.data_dir,
            " is a database directory itself; give the directory that holds it (the ledger "
            "is kept in <data_dir>/ledger)"));
  }
  std::unique_ptr<GongdaiServer> server(new GongdaiServer());
  server->tls_ = !config.tls_cert_file.empty();
  std::vector<TokenEntry> tokens = config.tokens;
  if (tokens.empty()) {
    absl::StatusOr<DevelopmentTokens> dev = EnsureDevelopmentTokens(config.data_dir);
    if (!dev.ok()) return dev.status();
    tokens = dev->entries;
    server->development_tokens_path_ = dev->tokens_path;
    server->development_tokens_created_ = dev->created;
  }
  absl::StatusOr<Authenticator> authenticator = Authenticator::Create(tokens);
  if (!authenticator.ok()) return authenticator.status();
  server->authenticator_ = std::make_unique<Authenticator>(*std::move(authenticator));

  const LedgerOptions options = LedgerOptionsFor(config);
  std::error_code error;
  std::filesystem::create_directories(config.data_dir, error);
  absl::StatusOr<std::unique_ptr<Ledger>> ledger =
      Ledger::Open((std::filesystem::path(config.data_dir) / "ledger").string(), options);
  if (!ledger.ok()) return ledger.status();
  server->ledger_ = *std::move(ledger);
  // Created, when missing, only by the server holding the ledger's lock: two servers
  // started on a new directory must not both write a key.
  const std::string key_file =
      config.checkpoint_key_file.empty()
          ? (std::filesystem::path(config.data_dir) / "checkpoint-key.pem").string()
          : config.checkpoint_key_file;
  absl::StatusOr<CheckpointSigner> signer =
      CheckpointSigner::LoadOrCreate(key_file, config.checkpoint_origin);
  if (!signer.ok()) return signer.status();
  server->signer_ = std::make_unique<CheckpointSigner>(*std::move(signer));

  if (server->ledger_->ProjectionsRebuiltOnOpen()) {
    spdlog::warn(
        "derived state (balances, loans, indexes, report figures) was written by an earlier "
        "version: rebuilt from the journal ({} entries)",
        server->ledger_->Head().sequence);
  }
  if (prepare) {
    absl::Status prepared = prepare(*server->ledger_);
    if (!prepared.ok()) return prepared;
  }

  GongdaiServer* raw = server.get();
  server->service_ =
      std::make_unique<LedgerService>(server->ledger_.get(), server->authenticator_.get(),
                                      server->signer_.get(), [raw] { raw->MarkNotServing(); });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (config.reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  } else {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  int port = 0;
  builder.AddListeningPort(config.listen_address, credentials, &port);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.max_concurrent_streams);
  // gRPC listens with SO_REUSEPORT by default: a second server started on the same address
  // (say, on another data directory) would share its port, and the kernel would hand each
  // new connection to one or the other, splitting the writes between two ledgers.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    // gRPC says why only in its own log line; these are the causes it can have.
    return absl::UnavailableError(
        Cat("cannot listen on ", config.listen_address,
            " (another process listens there, it is not an address of this machine, or the port "
            "needs privileges",
            server->tls_ ? "; or gRPC could not use the TLS certificate and key)" : ")"));
  }
  const std::string host = config.listen_address.substr(0, config.listen_address.rfind(':'));
  server->listening_address_ = Cat(host, ":", port);
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  if (!server->ledger_->WriterStatus().ok()) server->MarkNotServing();
  return server;
}

void GongdaiServer::MarkNotServing() {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  health->SetServingStatus(kServiceName, false);
}

void GongdaiServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // A start that failed before gRPC served anything (a data directory another server
  // holds, an address in use, an unreadable key) has only the ledger, if that, to close.
  if (server_ == nullptr) {
    ledger_.reset();
    return;
  }
  // Calls under way get up to 5 seconds to be answered: writes already handed to the
  // writer are answered when it commits them. Calls that start meanwhile are refused
  // (UNAVAILABLE, SERVER_STOPPING) before they hand anything over.
  server_->GetHealthCheckService()->Shutdown();
  service_->StopTakingCalls();
  const auto grace_end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (service_->CallsInFlight() > 0 && std::chrono::steady_clock::now() < grace_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int cut_short = service_->CallsInFlight();
  if (cut_short > 0) spdlog::warn("grace period over: cancelling {} calls under way", cut_short);
  // Then gRPC stops at once: it cancels what is left and closes every connection. Given
  // time, it would wait for each client to acknowledge its GOAWAY, and a client that
  // keeps an idle channel open reads nothing until its next call: the stop would take
  // the whole grace period for nothing. It still waits for every unary call to be
  // finished, and a write handed to the writer is finished only once it is durable (or
  // the ledger fails): a disk that hangs holds the stop past the grace period, as closing
  // the ledger would.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  ledger_.reset();
  spdlog::info("gongdai-server stopped; the ledger is closed");
}

GongdaiServer::~GongdaiServer() { Shutdown(); }

}  // namespace gongdai::server
