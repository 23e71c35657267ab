// Errors the engine returns, with the machine-readable details the service turns into
// google.rpc.BadRequest field violations and google.rpc.ErrorInfo reasons.
//
// Every engine error is an absl::Status of the most specific canonical code. Details
// travel as a payload (a serialized gongdai.v1.ErrorDetail) so that the engine stays
// free of gRPC types; the human message is complete on its own.
#ifndef GONGDAI_ENGINE_STATUS_H_
#define GONGDAI_ENGINE_STATUS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace gongdai {

// The payload type URL under which an ErrorDetail is attached.
inline constexpr std::string_view kErrorDetailUrl = "type.googleapis.com/gongdai.v1.ErrorDetail";

struct FieldViolation {
  std::string field;        // "amount", "postings[1].account"
  std::string description;  // the rule, in words
  std::string reason;       // "AMOUNT_TOO_MANY_DECIMALS"
};

// INVALID_ARGUMENT naming one field and the rule it broke.
[[nodiscard]] absl::Status InvalidField(std::string_view field, std::string_view reason,
                                        std::string_view description);

// INVALID_ARGUMENT carrying every violation at once. `violations` must not be empty.
[[nodiscard]] absl::Status InvalidFields(const std::vector<FieldViolation>& violations);

// FAILED_PRECONDITION: a business rule refused the command. `reason` is UPPER_SNAKE.
[[nodiscard]] absl::Status Refused(std::string_view reason, std::string_view message);

// Any code with a reason, for the few refusals that are not FAILED_PRECONDITION
// (ALREADY_EXISTS for a reused request id, RESOURCE_EXHAUSTED for a full queue, ...).
[[nodiscard]] absl::Status WithReason(absl::StatusCode code, std::string_view reason,
                                      std::string_view message);

// The reason attached to `status`, or "" when it has none.
std::string ReasonOf(const absl::Status& status);

// The field violations attached to `status` (empty when it has none).
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

// Collects field violations while a request is validated, so that every bad field is
// reported in one answer.
class ViolationCollector {
 public:
  void Add(std::string_view field, std::string_view reason, std::string_view description);
  // Adds the violations of `status` (an InvalidField status) under `field`, or a generic
  // violation naming `field` when the status has none.
  void AddStatus(std::string_view field, const absl::Status& status);
  bool empty() const { return violations_.empty(); }
  const std::vector<FieldViolation>& violations() const { return violations_; }
  // OK when nothing was collected, otherwise INVALID_ARGUMENT with all of them.
  [[nodiscard]] absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> violations_;
};

// An engine field path as the API names it: "event.repayment_recorded.amount_fen" ->
// "amount", "event.product_defined.terms.limits[0].max_amount_fen" ->
// "terms.limits[0].max_amount", "event.entry_reversed.reversed_sequence" -> "sequence".
std::string ApiFieldPath(std::string_view engine_path);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_STATUS_H_
