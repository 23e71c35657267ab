// The one mapping from engine errors to gRPC: canonical code, the readable message, and
// google.rpc.Status details (BadRequest with field violations in API paths, ErrorInfo
// with the reason).
#ifndef GONGDAI_SERVER_ERRORS_H_
#define GONGDAI_SERVER_ERRORS_H_

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace gongdai::server {

inline constexpr std::string_view kErrorDomain = "gongdai.ledger";

grpc::Status ToGrpcStatus(const absl::Status& status);

// An engine field path as the API names it: "event.repayment_recorded.amount_fen" ->
// "amount", "event.product_defined.terms.limits[0].max_amount_fen" ->
// "terms.limits[0].max_amount".
std::string ApiFieldPath(std::string_view engine_path);

// `status` with its field violations of `from` named `to` (a field the engine names by
// its own parameter); any other status as it is.
absl::Status RenameField(const absl::Status& status, std::string_view from, std::string_view to);

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_ERRORS_H_
