// Calls to the ledger: one channel, a deadline and the bearer token on every call,
// retries of transient failures with the same request, and errors explained as a person
// needs them, with the exit code that tells a script what happened.
#ifndef GONGDAI_CLIENT_RPC_H_
#define GONGDAI_CLIENT_RPC_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "client/settings.h"
#include "gongdai/v1/ledger_service.grpc.pb.h"

namespace gongdai::client {

// The client's exit codes (README, `gongdai --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // anything else
  kExitUsage = 2,        // bad flags or values, INVALID_ARGUMENT
  kExitRefused = 3,      // a business rule refused: FAILED_PRECONDITION, NOT_FOUND, ...
  kExitAuth = 4,         // no usable token, UNAUTHENTICATED, PERMISSION_DENIED
  kExitUnavailable = 5,  // unreachable or unavailable after retries, DEADLINE_EXCEEDED
};

// The exit code of a failed call. `reason` is the google.rpc.ErrorInfo reason, if any.
int ExitCodeFor(grpc::StatusCode code, std::string_view reason);
// The exit code of a local error (the client's own absl::Status).
int ExitCodeFor(const absl::Status& status);
// Whether the same call may succeed if made again a little later: the ledger unreachable
// or unavailable (not stopped), its writer's queue full, or a loan statement read while
// the loan kept changing.
bool Retryable(grpc::StatusCode code, std::string_view reason);

// "cli-" and 32 random hex digits (128 bits from OpenSSL's RAND_bytes).
std::string NewRequestId();
// What the ledger accepts: 1-128 printable ASCII characters without spaces.
bool IsValidRequestId(std::string_view id);

// What a failed call's google.rpc.Status details say.
struct ErrorDetails {
  std::string reason;  // google.rpc.ErrorInfo
  struct Field {
    std::string field;
    std::string description;
  };
  std::vector<Field> fields;  // google.rpc.BadRequest
};
ErrorDetails DetailsOf(const grpc::Status& status);

// A plain-words explanation of a refusal reason and what to do about it; empty when the
// reason has none.
std::string_view ReasonHint(std::string_view reason);

// How the user names a request field: "details.phone" -> "--phone".
std::string FieldAsUserNamesIt(std::string_view field);

// Writes to `err` what went wrong, for a person, and returns the exit code.
struct FailureContext {
  std::string server;
  // The write's request id, empty for a read.
  std::string request_id;
  // Where the token came from (never the token).
  std::string credentials;
  int attempts = 1;
};
int ReportFailure(const grpc::Status& status, const FailureContext& context, std::ostream& err);

// Backoff before the retries of a call: 200, 400, 800 and 1600 ms.
inline constexpr int kRetriesMax = 4;
inline constexpr std::chrono::milliseconds kFirstBackoff{200};

class Session {
 public:
  using Stub = v1::LoanLedger::Stub;
  template <typename Request, typename Response>
  using Method = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

  // INVALID_ARGUMENT when the CA file cannot be read.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Session>> Open(
      const ConnectionSettings& settings, Credentials credentials, std::chrono::seconds timeout,
      std::ostream& err);

  // One call with the deadline and the token, retried on transient failures (UNAVAILABLE,
  // a full writer queue) with the same request. `attempts` (optional) receives how many
  // calls were made.
  template <typename Request, typename Response>
  grpc::Status Call(Method<Request, Response> method, const Request& request, Response* response,
                    std::string_view request_id = {}, int* attempts = nullptr) {
    grpc::Status status;
    std::chrono::milliseconds backoff = kFirstBackoff;
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext context;
      Prepare(context);
      response->Clear();
      status = ((*stub_).*method)(&context, request, response);
      if (attempts != nullptr) *attempts = attempt + 1;
      if (status.ok() || attempt == kRetriesMax || !Transient(status)) return status;
      AnnounceRetry(status, request_id, backoff, attempt + 2);
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
  }

  const ConnectionSettings& settings() const { return settings_; }
  const Credentials& credentials() const { return credentials_; }

 private:
  Session(ConnectionSettings settings, Credentials credentials, std::chrono::seconds timeout,
          std::ostream& err)
      : settings_(std::move(settings)),
        credentials_(std::move(credentials)),
        timeout_(timeout),
        err_(err) {}

  void Prepare(grpc::ClientContext& context) const;
  static bool Transient(const grpc::Status& status);
  void AnnounceRetry(const grpc::Status& status, std::string_view request_id,
                     std::chrono::milliseconds backoff, int next_attempt) const;

  ConnectionSettings settings_;
  Credentials credentials_;
  std::chrono::seconds timeout_;
  std::ostream& err_;
  std::unique_ptr<Stub> stub_;
};

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_RPC_H_
