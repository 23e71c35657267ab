#include "client/rpc.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "client/table.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace gongdai::client {
namespace {

constexpr int kMaxReceiveBytes = 64 << 20;

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

// Reasons a retry cannot cure (the server says so) and reasons it can.
constexpr std::string_view kLedgerStopped = "LEDGER_STOPPED";
constexpr std::string_view kQueueFull = "QUEUE_FULL";
constexpr std::string_view kLoanChanging = "LOAN_CHANGING";
// An update made from a version of a borrower that another change has since replaced:
// nothing was written, and sending it again would not help (it must be made anew).
constexpr std::string_view kBorrowerChanged = "BORROWER_CHANGED";

}  // namespace

int ExitCodeFor(grpc::StatusCode code, std::string_view reason) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitUsage;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitRefused;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return reason == kQueueFull ? kExitUnavailable : kExitFailure;
    case grpc::StatusCode::ABORTED:
      if (reason == kLoanChanging) return kExitUnavailable;
      return reason == kBorrowerChanged ? kExitRefused : kExitFailure;
    default:
      return kExitFailure;
  }
}

bool Retryable(grpc::StatusCode code, std::string_view reason) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return reason != kLedgerStopped;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return reason == kQueueFull;
    case grpc::StatusCode::ABORTED:
      return reason == kLoanChanging;
    default:
      return false;
  }
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitAuth;
    case absl::StatusCode::kUnavailable:
      return kExitUnavailable;
    default:
      return kExitFailure;
  }
}

std::string NewRequestId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no entropy: no unique ids either
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "cli-";
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 0xf]);
  }
  return id;
}

bool IsValidRequestId(std::string_view id) {
  return !id.empty() && id.size() <= 128 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

ErrorDetails DetailsOf(const grpc::Status& status) {
  ErrorDetails details;
  google::rpc::Status rich;
  if (status.error_details().empty() || !rich.ParseFromString(status.error_details()))
    return details;
  for (const google::protobuf::Any& any : rich.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) {
      details.reason = info.reason();
    } else if (any.Is<google::rpc::BadRequest>() && any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations())
        details.fields.push_back({v.field(), v.description()});
    }
  }
  return details;
}

std::string_view ReasonHint(std::string_view reason) {
  static const auto* const kHints = new std::map<std::string_view, std::string_view>{
      {"EXCEEDS_OUTSTANDING",
       "The amount is more than the principal the borrower still owes; see the balance with "
       "`gongdai loan "
       "show`."},
      {"EXCEEDS_PRODUCT_LIMIT",
       "The amount is above what the product lends to this category of borrower."},
      {"EXCEEDS_SUBSIDY_OWED", "The settlement is more than the subsidy the union owes this bank."},
      {"EXCEEDS_WRITTEN_OFF", "The recovery is more than what remains written off on this loan."},
      {"SELF_APPROVAL_FORBIDDEN",
       "Four eyes: the person who submitted an application may not approve it; ask another "
       "approver."},
      {"DUPLICATE_APPROVAL",
       "You have already approved this loan; the second approval must come from someone else."},
      {"FUND_INSUFFICIENT",
       "The union's fund does not hold enough cash; record a contribution first (`gongdai fund "
       "contribute`)."},
      {"INSUFFICIENT_FUNDS", "An account would go below zero."},
      {"BORROWER_NOT_ACTIVE",
       "The borrower is suspended or removed from the talent pool; reinstate them first (`gongdai "
       "borrower "
       "reinstate`)."},
      {"BEFORE_REGISTRATION",
       "An application cannot be dated before its borrower's registration; check --business-date."},
      {"BEFORE_PRODUCT",
       "An application cannot be dated before its product was defined; check --business-date and "
       "--product."},
      {"BEFORE_DISBURSEMENT",
       "A statement covers a loan from its disbursement on; give a later --as-of."},
      {"BEFORE_PRODUCT_TERMS",
       "A product's terms change in date order: an amendment cannot be dated before the terms "
       "in force; check --business-date."},
      {"BORROWER_ALREADY_REGISTERED",
       "A borrower with this national ID number is already registered."},
      {"BORROWER_NOT_FOUND", "No borrower has this id; find it with `gongdai borrower list`."},
      {"BORROWER_CHANGED",
       "Someone else changed this borrower between this command's read and its write, and "
       "nothing was written. Run the command again: it reads the borrower's current details "
       "and changes only what you give."},
      {"LOAN_NOT_FOUND", "No loan has this id; find it with `gongdai loan list`."},
      {"PRODUCT_NOT_FOUND", "No product has this id; see `gongdai product list`."},
      {"ENTRY_NOT_FOUND", "The journal has no entry with this number; see `gongdai entry list`."},
      {"PRODUCT_EXISTS",
       "A product with this id is already defined; change it with `gongdai product amend`."},
      {"FUNDING_IS_FIXED", "A product's funding cannot change; define a new product instead."},
      {"INVALID_LOAN_STATE",
       "The loan's status does not allow this; see it with `gongdai loan show`."},
      {"CATEGORY_NOT_ELIGIBLE", "The product does not lend to this category of borrower."},
      {"TERM_OUTSIDE_PRODUCT_LIMITS", "The term is outside the product's range of months."},
      {"METHOD_NOT_ALLOWED", "The product does not offer this repayment method."},
      {"AMOUNT_MISMATCH",
       "The amount must equal the loan's amount; leave it out or give the exact figure."},
      {"NOTHING_TO_REVOKE", "The loan has no approval to revoke."},
      {"NOTHING_TO_ACCRUE", "The loan has no complete month of subsidy to post yet."},
      {"NOT_BANK_FUNDED", "Only partner-bank loans earn an interest subsidy."},
      {"NOT_REVERSIBLE", "Only financial entries can be reversed."},
      {"ALREADY_REVERSED", "The entry was already reversed."},
      {"NOT_LATEST_LOAN_ENTRY",
       "Only a loan's latest financial entry can be reversed; reverse the later ones first."},
      {"STATUS_UNCHANGED", "The borrower already has this status."},
      {"BUSINESS_DATE_IN_FUTURE", "The business date may not be after today's business date."},
      {"BEFORE_PRODUCT_APPLICATION",
       "Applications already recorded on or after that date took the product's terms before "
       "the amendment; date the amendment after the latest of them (--business-date)."},
      {"BUSINESS_DATE_BEFORE_BORROWER_HISTORY",
       "The business date may not be before the borrower's latest change (nor, for a change, "
       "before their latest application); give a later --business-date."},
      {"JOBS_REPORTED",
       "The loan has jobs reported; report 0 jobs created (`gongdai loan jobs`) before reversing "
       "its disbursement."},
      {"SUBSIDY_ALREADY_SETTLED",
       "The subsidy this entry accrued was settled with the bank; reverse the settlement "
       "(`gongdai entry reverse`) first."},
      {"BEFORE_REVERSED_ENTRY",
       "A reversal cannot be dated before the entry it reverses; give a later --business-date."},
      {"BUSINESS_DATE_BEFORE_LOAN_HISTORY",
       "The business date may not be before the loan's latest entry; give a later "
       "--business-date."},
      {"REQUEST_ID_REUSED",
       "This request id was already used for a different request; leave out --request-id or give a "
       "new one."},
      {"APPROVER_ROLE_REQUIRED",
       "Only an approver or a supervisor may do this; use their token (--as)."},
      {"SUPERVISOR_REQUIRED", "Only a supervisor may do this; use a supervisor's token (--as)."},
      {"QUEUE_FULL", "The ledger is busy; run the command again later with the same --request-id."},
      {"LOAN_CHANGING",
       "Entries on the loan kept arriving while its statement was read; run the command again."},
      {"LEDGER_STOPPED",
       "The ledger stopped writing after a storage failure; reads still work. Tell the "
       "administrator."},
  };
  auto it = kHints->find(reason);
  return it == kHints->end() ? std::string_view() : it->second;
}

std::string FieldAsUserNamesIt(std::string_view field) {
  static const auto* const kNames = new std::map<std::string_view, std::string_view>{
      {"request_id", "--request-id"},
      {"business_date", "--business-date"},
      {"amount", "--amount"},
      {"reason", "--reason"},
      {"note", "--note"},
      {"reference", "--reference"},
      {"channel", "--channel"},
      {"source", "--source"},
      {"bank_id", "--bank"},
      {"national_id", "--national-id"},
      {"details.name", "--name"},
      {"details.phone", "--phone"},
      {"details.union_member_number", "--member-no"},
      {"details.category", "--category"},
      {"details.county", "--county"},
      {"details.enterprise_name", "--enterprise"},
      {"details.sector", "--sector"},
      {"borrower_id", "borrower id"},
      {"loan_id", "loan id"},
      {"product_id", "product id"},
      {"term_months", "--term"},
      {"method", "--method"},
      {"purpose", "--purpose"},
      {"jobs_expected", "--jobs"},
      {"jobs_created", "--created"},
      {"guarantors", "--guarantor"},
      {"status", "--status"},
      {"county", "--county"},
      {"disbursed_from", "--disbursed-from"},
      {"disbursed_to", "--disbursed-to"},
      {"page_size", "--page-size"},
      {"page_token", "--page-token"},
      {"as_of", "--as-of"},
      {"start_sequence", "--from"},
      {"year", "--year"},
      {"quarter", "--quarter"},
      {"month", "--month"},
      {"from", "--from"},
      {"to", "--to"},
      {"group_by", "--by"},
      {"sequence", "entry number"},
      {"account", "account"},
  };
  auto it = kNames->find(field);
  if (it != kNames->end()) return std::string(it->second);
  // "guarantors[1].national_id" -> "--guarantor #2 national_id".
  if (field.starts_with("guarantors[")) {
    const size_t close = field.find(']');
    if (close != std::string_view::npos) {
      const int index = std::atoi(std::string(field.substr(11, close - 11)).c_str());
      std::string rest(field.substr(close + 1));
      if (rest.starts_with(".")) rest.erase(0, 1);
      return "--guarantor #" + std::to_string(index + 1) + (rest.empty() ? "" : " " + rest);
    }
  }
  // Product terms come from the product file, under the same names.
  if (field.starts_with("terms.")) return std::string(field.substr(6)) + " (product file)";
  return std::string(field);
}

int ReportFailure(const grpc::Status& status, const FailureContext& context, std::ostream& err) {
  const ErrorDetails details = DetailsOf(status);
  const int code = ExitCodeFor(status.error_code(), details.reason);
  // The server's words, made safe for a terminal.
  const std::string message = Printable(status.error_message());
  const std::string_view hint = ReasonHint(details.reason);
  switch (code) {
    case kExitUsage:
      if (details.fields.empty()) {
        err << "gongdai: the ledger refused the request as invalid: " << message << "\n";
      } else {
        err << "gongdai: the ledger refused the request as invalid:\n";
        for (const ErrorDetails::Field& f : details.fields) {
          err << "  " << FieldAsUserNamesIt(f.field) << ": " << Printable(f.description) << "\n";
        }
      }
      break;
    case kExitRefused:
      err << "gongdai: refused ("
          << (details.reason.empty() ? CodeName(status.error_code()) : details.reason)
          << "): " << message << "\n";
      if (!hint.empty()) err << "  " << hint << "\n";
      break;
    case kExitAuth:
      if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
        err << "gongdai: not authenticated: " << message << "\n"
            << "  The ledger did not accept " << context.credentials
            << "; check --token-file and --as (or GONGDAI_TOKEN_FILE, GONGDAI_AS, the profile).\n";
      } else {
        err << "gongdai: not allowed: " << message << "\n"
            << "  The call was made with " << context.credentials << ".";
        err << " " << (hint.empty() ? "Use the token of a role that may do this (--as)." : hint)
            << "\n";
      }
      break;
    case kExitUnavailable:
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        err << "gongdai: the ledger at " << context.server
            << " did not answer in time (--timeout): " << message;
      } else if (details.reason.empty()) {
        err << "gongdai: cannot reach the ledger at " << context.server << ": " << message;
      } else {
        err << "gongdai: the ledger is "
            << (status.error_code() == grpc::StatusCode::UNAVAILABLE ? "unavailable" : "busy")
            << " (" << details.reason << "): " << message;
      }
      if (context.attempts > 1) err << " (" << context.attempts << " attempts)";
      err << "\n";
      if (!hint.empty()) err << "  " << hint << "\n";
      break;
    default:
      err << "gongdai: the call failed (" << CodeName(status.error_code()) << "): " << message
          << "\n";
      break;
  }
  if (!context.request_id.empty() && (code == kExitUnavailable || code == kExitFailure)) {
    err << "  The request id was " << context.request_id
        << ". The write may or may not have been recorded: to retry safely, run the same command "
           "again with "
           "--request-id "
        << context.request_id << " (the ledger records one request id once).\n";
  }
  return code;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Open(const ConnectionSettings& settings,
                                                       Credentials credentials,
                                                       std::chrono::seconds timeout,
                                                       std::ostream& err) {
  std::unique_ptr<Session> session(new Session(settings, std::move(credentials), timeout, err));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  args.SetUserAgentPrefix("gongdai-cli");
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  if (settings.ca_file.empty()) {
    channel_credentials = grpc::InsecureChannelCredentials();
  } else {
    std::ifstream in(settings.ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return absl::InvalidArgumentError("cannot read the CA certificate file " + settings.ca_file +
                                        " (--ca-file, GONGDAI_CA_FILE)");
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    channel_credentials = grpc::SslCredentials(ssl);
    if (!settings.tls_server_name.empty()) args.SetSslTargetNameOverride(settings.tls_server_name);
  }
  session->stub_ = v1::LoanLedger::NewStub(
      grpc::CreateCustomChannel(settings.server, channel_credentials, args));
  return session;
}

void Session::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  context.AddMetadata("authorization", "Bearer " + credentials_.token);
}

bool Session::Transient(const grpc::Status& status) {
  return Retryable(status.error_code(), DetailsOf(status).reason);
}

void Session::AnnounceRetry(const grpc::Status& status, std::string_view request_id,
                            std::chrono::milliseconds backoff, int next_attempt) const {
  if (next_attempt == 2) {
    err_ << "gongdai: the ledger at " << settings_.server
         << (status.error_code() == grpc::StatusCode::UNAVAILABLE ? " is unavailable ("
                                                                  : " is busy (")
         << Printable(status.error_message()) << "); retrying";
    if (!request_id.empty()) err_ << " with the same request id " << request_id;
    err_ << "\n";
  }
  err_ << "gongdai: attempt " << next_attempt << " of " << kRetriesMax + 1 << " in "
       << backoff.count() << " ms\n";
}

}  // namespace gongdai::client
