#include "server/errors.h"

#include "engine/status.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace gongdai::server {

absl::Status RenameField(const absl::Status& status, std::string_view from, std::string_view to) {
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (violations.empty()) return status;
  for (FieldViolation& v : violations) {
    if (v.field == from) v.field = std::string(to);
  }
  return InvalidFields(violations);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(static_cast<int>(status.code()));
  std::string message(status.message().data(), status.message().size());
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  const std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    google::rpc::BadRequest bad_request;
    message = "invalid request: ";
    for (size_t i = 0; i < violations.size(); ++i) {
      const std::string field = ApiFieldPath(violations[i].field);
      google::rpc::BadRequest::FieldViolation* v = bad_request.add_field_violations();
      v->set_field(field);
      v->set_description(violations[i].description);
      // The rule's machine-readable reason, as field 3 of FieldViolation: `reason` in
      // today's google/rpc/error_details.proto, which the older copy this is built
      // against lacks. A client built against either reads the violation; a current
      // one also reads its reason.
      if (!violations[i].reason.empty()) {
        v->GetReflection()->MutableUnknownFields(v)->AddLengthDelimited(kFieldViolationReasonNumber,
                                                                        violations[i].reason);
      }
      message += (i > 0 ? "; " : "") + field + ": " + violations[i].description;
    }
    rich.add_details()->PackFrom(bad_request);
  }
  const std::string reason = ReasonOf(status);
  if (!reason.empty()) {
    google::rpc::ErrorInfo info;
    info.set_reason(reason);
    info.set_domain(std::string(kErrorDomain));
    rich.add_details()->PackFrom(info);
  }
  rich.set_message(message);
  return grpc::Status(code, message, rich.SerializeAsString());
}

}  // namespace gongdai::server
