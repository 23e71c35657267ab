// The one mapping from engine errors to gRPC: canonical code, the readable message, and
// google.rpc.Status details (BadRequest with field violations in API paths, ErrorInfo
// with the reason).
#ifndef GONGDAI_SERVER_ERRORS_H_
#define GONGDAI_SERVER_ERRORS_H_

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/status.h"

namespace gongdai::server {

inline constexpr std::string_view kErrorDomain = "gongdai.ledger";
// The field number of `reason` in google.rpc.BadRequest.FieldViolation.
inline constexpr int kFieldViolationReasonNumber = 3;

grpc::Status ToGrpcStatus(const absl::Status& status);

// ApiFieldPath (engine/status.h) names the engine's field paths as the API does.

// `status` with its field violations of `from` named `to` (a field the engine names by
// its own parameter); any other status as it is.
absl::Status RenameField(const absl::Status& status, std::string_view from, std::string_view to);

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_ERRORS_H_
