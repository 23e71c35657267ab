#include "engine/status.h"

#include "absl/strings/cord.h"
#include "engine/strings.h"
#include "gongdai/v1/journal.pb.h"

namespace gongdai {
namespace {

void Attach(absl::Status& status, const v1::ErrorDetail& detail) {
  status.SetPayload(AbslView(kErrorDetailUrl), absl::Cord(detail.SerializeAsString()));
}

v1::ErrorDetail DetailOf(const absl::Status& status) {
  v1::ErrorDetail detail;
  auto payload = status.GetPayload(AbslView(kErrorDetailUrl));
  if (payload.has_value()) {
    // A payload that does not parse is treated as absent: details are an aid, the
    // message and code stand on their own.
    if (!detail.ParseFromString(std::string(*payload))) detail.Clear();
  }
  return detail;
}

}  // namespace

absl::Status InvalidField(std::string_view field, std::string_view reason,
                          std::string_view description) {
  return InvalidFields(
      {FieldViolation{std::string(field), std::string(description), std::string(reason)}});
}

absl::Status InvalidFields(const std::vector<FieldViolation>& violations) {
  std::string message = "invalid request: ";
  v1::ErrorDetail detail;
  for (size_t i = 0; i < violations.size(); ++i) {
    const FieldViolation& v = violations[i];
    if (i > 0) message += "; ";
    message += Cat(v.field, ": ", v.description);
    v1::ErrorDetail::FieldViolation* out = detail.add_field_violations();
    out->set_field(v.field);
    out->set_description(v.description);
    out->set_reason(v.reason);
  }
  absl::Status status(absl::StatusCode::kInvalidArgument, message);
  Attach(status, detail);
  return status;
}

absl::Status Refused(std::string_view reason, std::string_view message) {
  return WithReason(absl::StatusCode::kFailedPrecondition, reason, message);
}

absl::Status WithReason(absl::StatusCode code, std::string_view reason, std::string_view message) {
  absl::Status status(code, AbslView(message));
  v1::ErrorDetail detail;
  detail.set_reason(std::string(reason));
  Attach(status, detail);
  return status;
}

std::string ReasonOf(const absl::Status& status) { return DetailOf(status).reason(); }

std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> out;
  const v1::ErrorDetail detail = DetailOf(status);
  for (const auto& v : detail.field_violations()) {
    out.push_back(FieldViolation{v.field(), v.description(), v.reason()});
  }
  return out;
}

void ViolationCollector::Add(std::string_view field, std::string_view reason,
                             std::string_view description) {
  violations_.push_back(
      FieldViolation{std::string(field), std::string(description), std::string(reason)});
}

void ViolationCollector::AddStatus(std::string_view field, const absl::Status& status) {
  std::vector<FieldViolation> found = FieldViolationsOf(status);
  if (found.empty()) {
    Add(field, "INVALID", std::string_view(status.message().data(), status.message().size()));
    return;
  }
  for (FieldViolation& v : found) {
    v.field = std::string(field);
    violations_.push_back(std::move(v));
  }
}

absl::Status ViolationCollector::ToStatus() const {
  if (violations_.empty()) return absl::OkStatus();
  return InvalidFields(violations_);
}

std::string ApiFieldPath(std::string_view path) {
  std::string out(path);
  if (out.starts_with("event.")) {
    const size_t kind_end = out.find('.', 6);
    out = kind_end == std::string::npos ? out.substr(6) : out.substr(kind_end + 1);
  }
  // A reversal names the entry it reverses: `sequence` in ReverseEntryRequest.
  if (out == "reversed_sequence") return "sequence";
  // Amounts are fen in the journal and decimal yuan strings in the API.
  for (size_t at = out.find("_fen"); at != std::string::npos; at = out.find("_fen", at)) {
    const size_t end = at + 4;
    if (end == out.size() || out[end] == '.' || out[end] == '[') {
      out.erase(at, 4);
    } else {
      at = end;
    }
  }
  return out;
}

}  // namespace gongdai
