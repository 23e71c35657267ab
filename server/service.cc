#include "server/service.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <set>
#include <utility>

#include "engine/checkpoint.h"
#include "engine/date.h"
#include "engine/rules.h"
#include "engine/sha256.h"
#include "engine/status.h"
#include "engine/strings.h"
#include "server/convert.h"
#include "server/errors.h"

namespace gongdai::server {

struct LedgerService::Caller {
  Principal principal;
  Role role = Role::kAuditor;
  bool personal = false;           // shown national ID and phone numbers in full
  bool entries_as_stored = false;  // given journal entries unmasked (MaySeeEntriesAsStored)
};

namespace {

using Clock = std::chrono::steady_clock;

// One structured line per request. Never tokens, never personal data.
void LogRequest(const char* method, const std::string& principal, std::string_view role,
                const grpc::Status& status, Clock::time_point start) {
  const auto latency_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  spdlog::info("rpc method={} principal={} role={} code={} latency_us={}", method,
               principal.empty() ? "-" : principal, role.empty() ? "-" : role,
               static_cast<int>(status.error_code()), latency_us);
}

std::string_view Metadata(const grpc::CallbackServerContext* context, std::string_view key) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

void FillReceipt(const CommandResult& result, v1::EntryReceipt* receipt) {
  receipt->set_sequence(result.entry.sequence());
  receipt->set_hash(ToHex(result.entry.hash()));
  receipt->set_business_date(result.entry.business_date());
  receipt->set_replayed(result.replayed);
}

}  // namespace

LedgerService::LedgerService(Ledger* ledger, const Authenticator* authenticator,
                             const CheckpointSigner* signer,
                             std::function<void()> on_writer_stopped)
    : ledger_(ledger),
      authenticator_(authenticator),
      signer_(signer),
      on_writer_stopped_(std::move(on_writer_stopped)) {}

namespace {

class CountedReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CountedReactor(std::atomic<int>* in_flight) : in_flight_(in_flight) {
    in_flight_->fetch_add(1);
  }
  void OnDone() override {
    in_flight_->fetch_sub(1);
    delete this;
  }

 private:
  std::atomic<int>* const in_flight_;
};

grpc::Status StoppingStatus() {
  return ToGrpcStatus(WithReason(absl::StatusCode::kUnavailable, "SERVER_STOPPING",
                                 "the server is stopping; send the request again when it is back"));
}

}  // namespace

LedgerService::Reactor* LedgerService::NewReactor() {
  return new CountedReactor(&calls_in_flight_);
}

uint64_t StopList::Add(std::function<void()> stop) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopped_) return 0;
  const uint64_t id = next_id_++;
  stops_.emplace(id, std::move(stop));
  return id;
}

void StopList::Remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  stops_.erase(id);
}

void StopList::StopAll() {
  std::map<uint64_t, std::function<void()>> stops;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    stops.swap(stops_);
  }
  for (auto& [id, stop] : stops) stop();
}

void LedgerService::StopTakingCalls() {
  stopping_.store(true);
  streams_.StopAll();
}

bool LedgerService::RefusedAsStopping(Reactor* reactor, const char* method) {
  if (!stopping_.load()) return false;
  grpc::Status status = StoppingStatus();
  LogRequest(method, "", "", status, Clock::now());
  reactor->Finish(status);
  return true;
}

LedgerService::Reactor* LedgerService::Write(Context* context, const char* method,
                                             const std::string& request_id,
                                             const std::string& business_date, BuildEvent build,
                                             Fill fill, uint64_t expected_version) {
  const Clock::time_point start = Clock::now();
  Reactor* reactor = NewReactor();
  if (RefusedAsStopping(reactor, method)) return reactor;
  absl::StatusOr<Principal> principal =
      authenticator_->Authenticate(Metadata(context, "authorization"));
  absl::StatusOr<Role> role = principal.ok() ? Authorize(*principal, method) : principal.status();
  if (!role.ok()) {
    grpc::Status status = ToGrpcStatus(role.status());
    LogRequest(method, principal.ok() ? principal->id : "", "", status, start);
    reactor->Finish(status);
    return reactor;
  }
  const bool personal = MaySeePersonalData(*principal, method);
  const bool as_stored = MaySeeEntriesAsStored(*principal, method);
  auto caller = std::make_shared<Caller>(Caller{*std::move(principal), *role, personal, as_stored});

  // Every bad field in one answer: the request's own checks (amounts, dates as text)
  // first, then the engine's checks of the command, in the request's field names.
  ViolationCollector request_violations;
  Command command;
  command.request_id = request_id;
  command.actor.set_principal_id(caller->principal.id);
  command.actor.set_role(std::string(RoleName(caller->role)));
  command.business_date = business_date;
  command.event = build(request_violations);
  command.expected_version = expected_version;
  std::vector<FieldViolation> violations = request_violations.violations();
  std::set<std::string> reported;
  for (const FieldViolation& v : violations) reported.insert(v.field);
  for (FieldViolation v : FieldViolationsOf(ValidateCommand(command, ledger_->Today()))) {
    v.field = ApiFieldPath(v.field);
    if (reported.insert(v.field).second) violations.push_back(std::move(v));
  }
  if (!violations.empty()) {
    grpc::Status status = ToGrpcStatus(InvalidFields(violations));
    LogRequest(method, caller->principal.id, RoleName(caller->role), status, start);
    reactor->Finish(status);
    return reactor;
  }
  ledger_->Submit(std::move(command), [this, reactor, caller, method, start,
                                       fill = std::move(fill)](CommandResult result) {
    absl::Status outcome = result.status;
    if (outcome.ok()) outcome = fill(result, *caller);
    if (ReasonOf(result.status) == "LEDGER_STOPPED") on_writer_stopped_();
    grpc::Status status = ToGrpcStatus(outcome);
    LogRequest(method, caller->principal.id, RoleName(caller->role), status, start);
    reactor->Finish(status);
  });
  return reactor;
}

LedgerService::Reactor* LedgerService::Read(Context* context, const char* method, Run run) {
  const Clock::time_point start = Clock::now();
  Reactor* reactor = NewReactor();
  if (RefusedAsStopping(reactor, method)) return reactor;
  absl::StatusOr<Principal> principal =
      authenticator_->Authenticate(Metadata(context, "authorization"));
  absl::StatusOr<Role> role = principal.ok() ? Authorize(*principal, method) : principal.status();
  absl::Status outcome = role.status();
  if (role.ok()) {
    outcome = run(Caller{*principal, *role, MaySeePersonalData(*principal, method),
                         MaySeeEntriesAsStored(*principal, method)});
  }
  grpc::Status status = ToGrpcStatus(outcome);
  LogRequest(method, principal.ok() ? principal->id : "", role.ok() ? RoleName(*role) : "", status,
             start);
  reactor->Finish(status);
  return reactor;
}

template <typename Request>
LedgerService::Reactor* LedgerService::LoanWrite(
    Context* context, const char* method, const Request* r, v1::LoanResponse* response,
    BuildEvent build, std::function<std::string(const v1::Event&)> loan_id) {
  return Write(
      context, method, r->request_id(), r->business_date(),
      [r, build = std::move(build)](ViolationCollector& v) {
        v1::Event e = build(v);
        CheckLoanView(r->view(), "view", v);  // the requests' last field
        return e;
      },
      LoanFill(response, r->view(), std::move(loan_id)));
}

LedgerService::Fill LedgerService::LoanFill(v1::LoanResponse* response, v1::LoanView view,
                                            std::function<std::string(const v1::Event&)> loan_id) {
  return [this, response, view, loan_id = std::move(loan_id)](const CommandResult& result,
                                                              const Caller& caller) {
    FillReceipt(result, response->mutable_entry());
    const std::string id = loan_id(result.entry.event());
    // The loan as the entry left it, as the writer handed it over; a retry answers with
    // the loan as it is now.
    if (result.loan.has_value() && result.loan->loan_id() == id) {
      LoanToApi(*result.loan, caller.personal, view, response->mutable_loan());
      return absl::OkStatus();
    }
    absl::StatusOr<v1::LoanState> loan = ledger_->GetLoan(id);
    if (!loan.ok()) return loan.status();
    LoanToApi(*loan, caller.personal, view, response->mutable_loan());
    return absl::OkStatus();
  };
}

LedgerService::Fill LedgerService::ProductFill(v1::ProductResponse* response,
                                               std::string product_id) {
  return [this, response, product_id = std::move(product_id)](const CommandResult& result,
                                                              const Caller&) {
    FillReceipt(result, response->mutable_entry());
    // The product as the entry left it, as the writer handed it over; a retry answers
    // with the product as it is now.
    if (result.product.has_value()) {
      *response->mutable_product() = ProductToApi(*result.product);
      return absl::OkStatus();
    }
    absl::StatusOr<v1::ProductState> product = ledger_->GetProduct(product_id);
    if (!product.ok()) return product.status();
    *response->mutable_product() = ProductToApi(*product);
    return absl::OkStatus();
  };
}

LedgerService::Fill LedgerService::ReceiptFill(v1::EntryResponse* response) {
  return [response](const CommandResult& result, const Caller&) {
    FillReceipt(result, response->mutable_entry());
    return absl::OkStatus();
  };
}

// ---- Products --------------------------------------------------------------------------

LedgerService::Reactor* LedgerService::DefineProduct(Context* c, const v1::DefineProductRequest* r,
                                                     v1::ProductResponse* response) {
  return Write(
      c, "DefineProduct", r->request_id(), r->business_date(),
      [r](ViolationCollector& v) {
        v1::Event e;
        e.mutable_product_defined()->set_product_id(r->product_id());
        *e.mutable_product_defined()->mutable_terms() = TermsFromInput(r->terms(), v);
        return e;
      },
      ProductFill(response, r->product_id()));
}

LedgerService::Reactor* LedgerService::AmendProduct(Context* c, const v1::AmendProductRequest* r,
                                                    v1::ProductResponse* response) {
  return Write(
      c, "AmendProduct", r->request_id(), r->business_date(),
      [r](ViolationCollector& v) {
        v1::Event e;
        e.mutable_product_amended()->set_product_id(r->product_id());
        *e.mutable_product_amended()->mutable_terms() = TermsFromInput(r->terms(), v);
        return e;
      },
      ProductFill(response, r->product_id()));
}

LedgerService::Reactor* LedgerService::GetProduct(Context* c, const v1::GetProductRequest* r,
                                                  v1::Product* response) {
  return Read(c, "GetProduct", [this, r, response](const Caller&) {
    if (r->product_id().empty()) return InvalidField("product_id", "REQUIRED", "is required");
    absl::StatusOr<v1::ProductState> p = ledger_->GetProduct(r->product_id());
    if (!p.ok()) return p.status();
    *response = ProductToApi(*p);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::ListProducts(Context* c, const v1::ListProductsRequest*,
                                                    v1::ListProductsResponse* response) {
  return Read(c, "ListProducts", [this, response](const Caller&) {
    absl::StatusOr<std::vector<v1::ProductState>> products = ledger_->ListProducts();
    if (!products.ok()) return products.status();
    for (const v1::ProductState& p : *products) *response->add_products() = ProductToApi(p);
    return absl::OkStatus();
  });
}

// ---- Borrowers -------------------------------------------------------------------------

namespace {
LedgerService::Fill BorrowerFill(Ledger* ledger, v1::BorrowerResponse* response,
                                 std::function<std::string(const v1::Event&)> id);
}  // namespace

LedgerService::Reactor* LedgerService::RegisterBorrower(Context* c,
                                                        const v1::RegisterBorrowerRequest* r,
                                                        v1::BorrowerResponse* response) {
  return Write(
      c, "RegisterBorrower", r->request_id(), r->business_date(),
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_borrower_registered()->set_national_id(r->national_id());
        *e.mutable_borrower_registered()->mutable_details() = DetailsFromInput(r->details());
        return e;
      },
      BorrowerFill(ledger_, response,
                   [](const v1::Event& e) { return e.borrower_registered().borrower_id(); }));
}

LedgerService::Reactor* LedgerService::UpdateBorrower(Context* c,
                                                      const v1::UpdateBorrowerRequest* r,
                                                      v1::BorrowerResponse* response) {
  return Write(
      c, "UpdateBorrower", r->request_id(), r->business_date(),
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_borrower_updated()->set_borrower_id(r->borrower_id());
        *e.mutable_borrower_updated()->mutable_details() = DetailsFromInput(r->details());
        return e;
      },
      BorrowerFill(ledger_, response,
                   [](const v1::Event& e) { return e.borrower_updated().borrower_id(); }),
      r->expected_version());
}

LedgerService::Reactor* LedgerService::ChangeTalentPoolStatus(
    Context* c, const v1::ChangeTalentPoolStatusRequest* r, v1::BorrowerResponse* response) {
  return Write(
      c, "ChangeTalentPoolStatus", r->request_id(), r->business_date(),
      [r](ViolationCollector&) {
        v1::Event e;
        auto* change = e.mutable_talent_pool_status_changed();
        change->set_borrower_id(r->borrower_id());
        change->set_status(r->status());
        change->set_reason(r->reason());
        return e;
      },
      BorrowerFill(ledger_, response, [](const v1::Event& e) {
        return e.talent_pool_status_changed().borrower_id();
      }));
}

namespace {
LedgerService::Fill BorrowerFill(Ledger* ledger, v1::BorrowerResponse* response,
                                 std::function<std::string(const v1::Event&)> id) {
  return [ledger, response, id = std::move(id)](const CommandResult& result,
                                                const LedgerService::Caller& caller) {
    FillReceipt(result, response->mutable_entry());
    // As for a loan (LoanFill): the borrower as the entry left it, or, on a retry, now.
    if (result.borrower.has_value()) {
      *response->mutable_borrower() = BorrowerToApi(*result.borrower, caller.personal);
      return absl::OkStatus();
    }
    absl::StatusOr<v1::BorrowerState> b = ledger->GetBorrower(id(result.entry.event()));
    if (!b.ok()) return b.status();
    *response->mutable_borrower() = BorrowerToApi(*b, caller.personal);
    return absl::OkStatus();
  };
}
}  // namespace

LedgerService::Reactor* LedgerService::GetBorrower(Context* c, const v1::GetBorrowerRequest* r,
                                                   v1::Borrower* response) {
  return Read(c, "GetBorrower", [this, r, response](const Caller& caller) {
    if (r->borrower_id().empty()) return InvalidField("borrower_id", "REQUIRED", "is required");
    absl::StatusOr<v1::BorrowerState> b = ledger_->GetBorrower(r->borrower_id());
    if (!b.ok()) return b.status();
    *response = BorrowerToApi(*b, caller.personal);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::ListBorrowers(Context* c, const v1::ListBorrowersRequest* r,
                                                     v1::ListBorrowersResponse* response) {
  return Read(c, "ListBorrowers", [this, r, response](const Caller& caller) {
    ViolationCollector v;
    if (r->page_size() < 0) v.Add("page_size", "OUT_OF_RANGE", "must not be negative");
    if (!v1::TalentPoolStatus_IsValid(r->status()))
      v.Add("status", "UNKNOWN_ENUM_VALUE", "is not a status");
    if (!v.empty()) return v.ToStatus();
    BorrowerQuery query;
    query.status = r->status();
    query.county = r->county();
    query.page_size = static_cast<size_t>(r->page_size());
    query.page_token = r->page_token();
    absl::StatusOr<BorrowerPage> page = ledger_->ListBorrowers(query);
    if (!page.ok()) return page.status();
    for (const v1::BorrowerState& b : page->borrowers)
      *response->add_borrowers() = BorrowerToApi(b, caller.personal);
    response->set_next_page_token(page->next_page_token);
    return absl::OkStatus();
  });
}

// ---- Applications and loans ------------------------------------------------------------

LedgerService::Reactor* LedgerService::SubmitApplication(Context* c,
                                                         const v1::SubmitApplicationRequest* r,
                                                         v1::LoanResponse* response) {
  return LoanWrite(
      c, "SubmitApplication", r, response,
      [r](ViolationCollector& v) {
        v1::Event e;
        v1::ApplicationSubmitted* a = e.mutable_application_submitted();
        a->set_borrower_id(r->borrower_id());
        a->set_product_id(r->product_id());
        a->set_amount_fen(AmountFen(r->amount(), "amount", v));
        if (a->amount_fen() == 0) a->set_amount_fen(1);  // already reported
        a->set_term_months(r->term_months());
        a->set_method(r->method());
        a->set_purpose(r->purpose());
        a->set_jobs_expected(r->jobs_expected());
        *a->mutable_guarantors() = r->guarantors();
        return e;
      },
      [](const v1::Event& e) { return e.application_submitted().loan_id(); });
}

LedgerService::Reactor* LedgerService::ApproveApplication(Context* c,
                                                          const v1::ApproveApplicationRequest* r,
                                                          v1::LoanResponse* response) {
  return LoanWrite(
      c, "ApproveApplication", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_approval_granted()->set_loan_id(r->loan_id());
        e.mutable_approval_granted()->set_note(r->note());
        return e;
      },
      [](const v1::Event& e) { return e.approval_granted().loan_id(); });
}

LedgerService::Reactor* LedgerService::RejectApplication(Context* c,
                                                         const v1::RejectApplicationRequest* r,
                                                         v1::LoanResponse* response) {
  return LoanWrite(
      c, "RejectApplication", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_application_rejected()->set_loan_id(r->loan_id());
        e.mutable_application_rejected()->set_reason(r->reason());
        return e;
      },
      [](const v1::Event& e) { return e.application_rejected().loan_id(); });
}

LedgerService::Reactor* LedgerService::WithdrawApplication(Context* c,
                                                           const v1::WithdrawApplicationRequest* r,
                                                           v1::LoanResponse* response) {
  return LoanWrite(
      c, "WithdrawApplication", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_application_withdrawn()->set_loan_id(r->loan_id());
        e.mutable_application_withdrawn()->set_reason(r->reason());
        return e;
      },
      [](const v1::Event& e) { return e.application_withdrawn().loan_id(); });
}

LedgerService::Reactor* LedgerService::RevokeApproval(Context* c,
                                                      const v1::RevokeApprovalRequest* r,
                                                      v1::LoanResponse* response) {
  return LoanWrite(
      c, "RevokeApproval", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_approval_revoked()->set_loan_id(r->loan_id());
        e.mutable_approval_revoked()->set_reason(r->reason());
        return e;
      },
      [](const v1::Event& e) { return e.approval_revoked().loan_id(); });
}

LedgerService::Reactor* LedgerService::DisburseLoan(Context* c, const v1::DisburseLoanRequest* r,
                                                    v1::LoanResponse* response) {
  return LoanWrite(
      c, "DisburseLoan", r, response,
      [r](ViolationCollector& v) {
        v1::Event e;
        e.mutable_loan_disbursed()->set_loan_id(r->loan_id());
        e.mutable_loan_disbursed()->set_amount_fen(
            AmountFen(r->amount(), "amount", v, /*optional=*/true));
        return e;
      },
      [](const v1::Event& e) { return e.loan_disbursed().loan_id(); });
}

LedgerService::Reactor* LedgerService::RecordRepayment(Context* c,
                                                       const v1::RecordRepaymentRequest* r,
                                                       v1::LoanResponse* response) {
  return LoanWrite(
      c, "RecordRepayment", r, response,
      [r](ViolationCollector& v) {
        v1::Event e;
        v1::RepaymentRecorded* p = e.mutable_repayment_recorded();
        p->set_loan_id(r->loan_id());
        p->set_amount_fen(AmountFen(r->amount(), "amount", v));
        if (p->amount_fen() == 0) p->set_amount_fen(1);  // already reported
        p->set_channel(r->channel());
        p->set_reference(r->reference());
        return e;
      },
      [](const v1::Event& e) { return e.repayment_recorded().loan_id(); });
}

LedgerService::Reactor* LedgerService::AccrueSubsidy(Context* c, const v1::AccrueSubsidyRequest* r,
                                                     v1::LoanResponse* response) {
  return LoanWrite(
      c, "AccrueSubsidy", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_subsidy_accrued()->set_loan_id(r->loan_id());
        return e;
      },
      [](const v1::Event& e) { return e.subsidy_accrued().loan_id(); });
}

LedgerService::Reactor* LedgerService::ReportJobs(Context* c, const v1::ReportJobsRequest* r,
                                                  v1::LoanResponse* response) {
  return LoanWrite(
      c, "ReportJobs", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_jobs_reported()->set_loan_id(r->loan_id());
        e.mutable_jobs_reported()->set_jobs_created(r->jobs_created());
        e.mutable_jobs_reported()->set_note(r->note());
        return e;
      },
      [](const v1::Event& e) { return e.jobs_reported().loan_id(); });
}

LedgerService::Reactor* LedgerService::WriteOffLoan(Context* c, const v1::WriteOffLoanRequest* r,
                                                    v1::LoanResponse* response) {
  return LoanWrite(
      c, "WriteOffLoan", r, response,
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_loan_written_off()->set_loan_id(r->loan_id());
        e.mutable_loan_written_off()->set_reason(r->reason());
        return e;
      },
      [](const v1::Event& e) { return e.loan_written_off().loan_id(); });
}

LedgerService::Reactor* LedgerService::RecordRecovery(Context* c,
                                                      const v1::RecordRecoveryRequest* r,
                                                      v1::LoanResponse* response) {
  return LoanWrite(
      c, "RecordRecovery", r, response,
      [r](ViolationCollector& v) {
        v1::Event e;
        v1::RecoveryRecorded* p = e.mutable_recovery_recorded();
        p->set_loan_id(r->loan_id());
        p->set_amount_fen(AmountFen(r->amount(), "amount", v));
        if (p->amount_fen() == 0) p->set_amount_fen(1);  // already reported
        p->set_channel(r->channel());
        p->set_reference(r->reference());
        return e;
      },
      [](const v1::Event& e) { return e.recovery_recorded().loan_id(); });
}

LedgerService::Reactor* LedgerService::GetLoan(Context* c, const v1::GetLoanRequest* r,
                                               v1::Loan* response) {
  return Read(c, "GetLoan", [this, r, response](const Caller& caller) {
    ViolationCollector v;
    if (r->loan_id().empty()) v.Add("loan_id", "REQUIRED", "is required");
    CheckLoanView(r->view(), "view", v);
    if (!v.empty()) return v.ToStatus();
    absl::StatusOr<v1::LoanState> loan = ledger_->GetLoan(r->loan_id());
    if (!loan.ok()) return loan.status();
    LoanToApi(*loan, caller.personal, r->view(), response);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::ListLoans(Context* c, const v1::ListLoansRequest* r,
                                                 v1::ListLoansResponse* response) {
  return Read(c, "ListLoans", [this, r, response](const Caller& caller) {
    ViolationCollector v;
    if (r->page_size() < 0) v.Add("page_size", "OUT_OF_RANGE", "must not be negative");
    if (!v1::ApiLoanStatus::Value_IsValid(r->status()))
      v.Add("status", "UNKNOWN_ENUM_VALUE", "is not a loan status");
    CheckLoanView(r->view(), "view", v);
    if (!v.empty()) return v.ToStatus();
    LoanQuery query;
    query.status = ToEngineStatus(r->status());
    query.borrower_id = r->borrower_id();
    query.product_id = r->product_id();
    query.county = r->county();
    query.disbursed_from = r->disbursed_from();
    query.disbursed_to = r->disbursed_to();
    query.page_size = static_cast<size_t>(r->page_size());
    query.page_token = r->page_token();
    absl::StatusOr<LoanPage> page = ledger_->ListLoans(query);
    if (!page.ok()) return page.status();
    for (const v1::LoanState& loan : page->loans)
      LoanToApi(loan, caller.personal, r->view(), response->add_loans());
    response->set_next_page_token(page->next_page_token);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetLoanStatement(Context* c,
                                                        const v1::GetLoanStatementRequest* r,
                                                        v1::LoanStatement* response) {
  return Read(c, "GetLoanStatement", [this, r, response](const Caller& caller) {
    if (r->loan_id().empty()) return InvalidField("loan_id", "REQUIRED", "is required");
    const std::string as_of = r->as_of().empty() ? ledger_->Today().ToString() : r->as_of();
    absl::StatusOr<LoanStatement> statement = ledger_->GetLoanStatement(r->loan_id(), as_of);
    if (!statement.ok()) return statement.status();
    StatementToApi(*statement, caller.personal, response);
    return absl::OkStatus();
  });
}

// ---- Fund, subsidy, corrections --------------------------------------------------------

LedgerService::Reactor* LedgerService::RecordFundContribution(
    Context* c, const v1::RecordFundContributionRequest* r, v1::EntryResponse* response) {
  return Write(
      c, "RecordFundContribution", r->request_id(), r->business_date(),
      [r](ViolationCollector& v) {
        v1::Event e;
        v1::FundContributed* f = e.mutable_fund_contributed();
        f->set_amount_fen(AmountFen(r->amount(), "amount", v));
        if (f->amount_fen() == 0) f->set_amount_fen(1);  // already reported
        f->set_source(r->source());
        f->set_reference(r->reference());
        return e;
      },
      ReceiptFill(response));
}

LedgerService::Reactor* LedgerService::SettleSubsidy(Context* c, const v1::SettleSubsidyRequest* r,
                                                     v1::EntryResponse* response) {
  return Write(
      c, "SettleSubsidy", r->request_id(), r->business_date(),
      [r](ViolationCollector& v) {
        v1::Event e;
        v1::SubsidySettled* s = e.mutable_subsidy_settled();
        s->set_bank_id(r->bank_id());
        s->set_amount_fen(AmountFen(r->amount(), "amount", v));
        if (s->amount_fen() == 0) s->set_amount_fen(1);  // already reported
        s->set_reference(r->reference());
        return e;
      },
      ReceiptFill(response));
}

LedgerService::Reactor* LedgerService::ReverseEntry(Context* c, const v1::ReverseEntryRequest* r,
                                                    v1::EntryResponse* response) {
  return Write(
      c, "ReverseEntry", r->request_id(), r->business_date(),
      [r](ViolationCollector&) {
        v1::Event e;
        e.mutable_entry_reversed()->set_reversed_sequence(r->sequence());
        e.mutable_entry_reversed()->set_reason(r->reason());
        return e;
      },
      ReceiptFill(response));
}

// ---- Journal, accounts, figures --------------------------------------------------------

LedgerService::Reactor* LedgerService::GetEntry(Context* c, const v1::GetEntryRequest* r,
                                                v1::Entry* response) {
  return Read(c, "GetEntry", [this, r, response](const Caller& caller) {
    if (r->sequence() == 0)
      return InvalidField("sequence", "REQUIRED", "must name an entry (1 or more)");
    absl::StatusOr<v1::Entry> entry = ledger_->GetEntry(r->sequence());
    if (!entry.ok()) return entry.status();
    *response = *std::move(entry);
    if (!caller.entries_as_stored) MaskPersonalData(*response);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::ListEntries(Context* c, const v1::ListEntriesRequest* r,
                                                   v1::ListEntriesResponse* response) {
  return Read(c, "ListEntries", [this, r, response](const Caller& caller) {
    if (r->page_size() < 0)
      return InvalidField("page_size", "OUT_OF_RANGE", "must not be negative");
    const size_t limit = r->page_size() == 0
                             ? kPageSizeDefault
                             : std::min<size_t>(static_cast<size_t>(r->page_size()), kPageSizeMax);
    const uint64_t first = std::max<uint64_t>(r->start_sequence(), 1);
    absl::StatusOr<std::vector<v1::Entry>> entries = ledger_->ListEntries(first, limit);
    if (!entries.ok()) return entries.status();
    for (v1::Entry& entry : *entries) {
      if (!caller.entries_as_stored) MaskPersonalData(entry);
      *response->add_entries() = std::move(entry);
    }
    const uint64_t next =
        response->entries().empty() ? first : response->entries().rbegin()->sequence() + 1;
    response->set_next_sequence(next <= ledger_->Head().sequence ? next : 0);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetAccountBalance(Context* c,
                                                         const v1::GetAccountBalanceRequest* r,
                                                         v1::AccountBalance* response) {
  return Read(c, "GetAccountBalance", [this, r, response](const Caller&) {
    absl::StatusOr<Money> balance = ledger_->GetBalance(r->account());
    if (!balance.ok()) return balance.status();
    response->set_account(r->account());
    response->set_balance(balance->ToString());
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetPortfolio(Context* c, const v1::GetPortfolioRequest* r,
                                                    v1::Portfolio* response) {
  return Read(c, "GetPortfolio", [this, r, response](const Caller&) {
    const std::string as_of = r->as_of().empty() ? ledger_->Today().ToString() : r->as_of();
    absl::StatusOr<PortfolioFigures> figures = ledger_->GetPortfolio(as_of);
    if (!figures.ok()) return figures.status();
    *response = PortfolioToApi(*figures);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetProgrammeReport(Context* c,
                                                          const v1::GetProgrammeReportRequest* r,
                                                          v1::ProgrammeReport* response) {
  return Read(c, "GetProgrammeReport", [this, r, response](const Caller&) {
    absl::StatusOr<ReportQuery> query = ReportQueryFromRequest(*r);
    if (!query.ok()) return query.status();
    absl::StatusOr<ProgrammeReport> report = ledger_->GetProgrammeReport(*query);
    // The engine names the period's start `from`; a year, quarter or month request is
    // told of the field it gave.
    if (!report.ok() && r->from().empty()) {
      return RenameField(report.status(), "from",
                         r->month() != 0     ? "month"
                         : r->quarter() != 0 ? "quarter"
                                             : "year");
    }
    if (!report.ok()) return report.status();
    *response = ReportToApi(*report, *r);
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::ListOverdueLoans(Context* c,
                                                        const v1::ListOverdueLoansRequest* r,
                                                        v1::ListOverdueLoansResponse* response) {
  return Read(c, "ListOverdueLoans", [this, r, response](const Caller&) {
    if (r->page_size() < 0)
      return InvalidField("page_size", "OUT_OF_RANGE", "must not be negative");
    OverdueQuery query;
    query.as_of = r->as_of().empty() ? ledger_->Today().ToString() : r->as_of();
    query.page_size = static_cast<size_t>(r->page_size());
    query.page_token = r->page_token();
    absl::StatusOr<OverduePage> page = ledger_->ListOverdueLoans(query);
    if (!page.ok()) return page.status();
    response->set_as_of(query.as_of);
    response->set_next_page_token(page->next_page_token);
    for (const OverdueLoan& o : page->loans) {
      v1::OverdueLoan* out = response->add_loans();
      out->set_loan_id(o.loan_id);
      out->set_borrower_id(o.borrower_id);
      out->set_county(o.county);
      out->set_days_past_due(o.days_past_due);
      out->set_aging_bucket(o.bucket);
      out->set_overdue_principal(Yuan(o.overdue_principal_fen));
      out->set_outstanding(Yuan(o.outstanding_fen));
      out->set_oldest_unpaid_due_date(o.oldest_unpaid_due_date);
    }
    return absl::OkStatus();
  });
}

// ---- Audit ------------------------------------------------------------------------------

LedgerService::Reactor* LedgerService::GetCheckpoint(Context* c, const v1::GetCheckpointRequest*,
                                                     v1::SignedCheckpoint* response) {
  return Read(c, "GetCheckpoint", [this, response](const Caller&) {
    absl::StatusOr<TreeHead> head = ledger_->GetTreeHead();
    if (!head.ok()) return head.status();
    Checkpoint checkpoint{signer_->origin(), head->size, head->root, NowUnixMicros() / 1'000'000};
    response->set_note(signer_->Sign(checkpoint));
    response->set_tree_size(head->size);
    response->set_root_hash(ToHex(head->root));
    response->set_time_unix(checkpoint.time_unix);
    response->set_verifier_key(signer_->VerifierKey());
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetInclusionProof(Context* c,
                                                         const v1::GetInclusionProofRequest* r,
                                                         v1::InclusionProof* response) {
  return Read(c, "GetInclusionProof", [this, r, response](const Caller& caller) {
    if (r->sequence() == 0)
      return InvalidField("sequence", "REQUIRED", "must name an entry (1 or more)");
    // Checked here, in the request's terms: the engine speaks of the leaf's index.
    if (r->sequence() > r->tree_size()) {
      return InvalidField("sequence", "BEYOND_TREE",
                          Cat("must be at most tree_size (", r->tree_size(), ")"));
    }
    absl::StatusOr<std::vector<std::string>> proof =
        ledger_->GetInclusionProof(r->sequence() - 1, r->tree_size());
    if (!proof.ok()) return proof.status();
    absl::StatusOr<v1::Entry> entry = ledger_->GetEntry(r->sequence());
    if (!entry.ok()) return entry.status();
    response->set_sequence(r->sequence());
    response->set_tree_size(r->tree_size());
    for (const std::string& h : *proof) response->add_hashes(ToHex(h));
    *response->mutable_entry() = *std::move(entry);
    if (!caller.entries_as_stored) MaskPersonalData(*response->mutable_entry());
    return absl::OkStatus();
  });
}

LedgerService::Reactor* LedgerService::GetConsistencyProof(Context* c,
                                                           const v1::GetConsistencyProofRequest* r,
                                                           v1::ConsistencyProof* response) {
  return Read(c, "GetConsistencyProof", [this, r, response](const Caller&) {
    absl::StatusOr<std::vector<std::string>> proof =
        ledger_->GetConsistencyProof(r->old_size(), r->new_size());
    // The engine names the size it checks against the tree tree_size: here it is new_size.
    if (!proof.ok()) return RenameField(proof.status(), "tree_size", "new_size");
    response->set_old_size(r->old_size());
    response->set_new_size(r->new_size());
    for (const std::string& h : *proof) response->add_hashes(ToHex(h));
    return absl::OkStatus();
  });
}

namespace {

// Sends entries one at a time: the next is read only when the client has taken the last,
// so a slow reader costs one entry of memory. Following, it waits for the writer to make
// more entries durable.
class EntryStream final : public grpc::ServerWriteReactor<v1::Entry> {
 public:
  // Takes over a count in `in_flight` (LedgerService::CallsInFlight), given back when
  // gRPC is done with the stream.
  // `as_stored`: MaySeeEntriesAsStored; the entries are masked otherwise.
  EntryStream(Ledger* ledger, uint64_t start, bool follow, std::string principal, bool as_stored,
              std::atomic<int>* in_flight, StopList* stops)
      : ledger_(ledger),
        next_(std::max<uint64_t>(start, 1)),
        follow_(follow),
        principal_(std::move(principal)),
        as_stored_(as_stored),
        in_flight_(in_flight),
        stops_(stops),
        shared_(std::make_shared<Shared>()) {}

  void Begin() {
    // A stop ends the stream: at once when it waits for entries, else after the entry
    // being sent. Until the stream has finished it is alive (OnDone comes after Finish),
    // and `finished` is read under the mutex that Finish is called under.
    std::shared_ptr<Shared> shared = shared_;
    stop_id_ = stops_->Add([this, shared] {
      std::lock_guard<std::mutex> lock(shared->mutex);
      if (shared->finished) return;
      stop_requested_ = true;
      if (waiting_) End(StoppingStatus());
    });
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (stop_id_ == 0) stop_requested_ = true;  // the stop came first
    Next();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    Next();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (waiting_) End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    spdlog::info("rpc method=StreamEntries principal={} sent={} next={}", principal_, sent_, next_);
    if (stop_id_ != 0) stops_->Remove(stop_id_);
    in_flight_->fetch_sub(1);
    delete this;
  }

 private:
  struct Shared {
    std::mutex mutex;
    bool finished = false;
  };
  static constexpr size_t kReadAhead = 64;

  // Called with the mutex held.
  void Next() {
    if (shared_->finished) return;
    if (stop_requested_) {
      End(StoppingStatus());
      return;
    }
    waiting_ = false;
    if (buffer_.empty()) {
      absl::StatusOr<std::vector<v1::Entry>> entries = ledger_->ListEntries(next_, kReadAhead);
      if (!entries.ok()) {
        End(ToGrpcStatus(entries.status()));
        return;
      }
      buffer_.assign(std::make_move_iterator(entries->begin()),
                     std::make_move_iterator(entries->end()));
      std::reverse(buffer_.begin(), buffer_.end());
    }
    if (!buffer_.empty()) {
      current_ = std::move(buffer_.back());
      buffer_.pop_back();
      if (!as_stored_) MaskPersonalData(current_);
      next_ = current_.sequence() + 1;
      ++sent_;
      StartWrite(&current_);
      return;
    }
    if (!follow_) {
      End(grpc::Status::OK);
      return;
    }
    waiting_ = true;
    std::shared_ptr<Shared> shared = shared_;
    std::optional<absl::Status> now =
        ledger_->NotifyWhenBeyond(next_ - 1, [this, shared](absl::Status beyond) {
          // On the committing thread after a commit, or on the thread closing the ledger.
          std::lock_guard<std::mutex> lock(shared->mutex);
          if (!shared->finished && waiting_) GoOn(beyond);
        });
    // More entries were durable already (the list above just missed them), or the ledger
    // is closing.
    if (now.has_value()) GoOn(*now);
  }

  // After a wait for more entries: lists them, or ends the stream when the ledger closes
  // (UNAVAILABLE). Called with the mutex held.
  void GoOn(const absl::Status& beyond) {
    // Entry next_ is durable now: the listing finds it (ListEntries answers DATA_LOSS
    // when a durable entry is missing), so this does not come back here at once.
    if (beyond.ok()) {
      Next();
    } else {
      End(ToGrpcStatus(beyond));
    }
  }

  void End(const grpc::Status& status) {
    if (shared_->finished) return;
    shared_->finished = true;
    Finish(status);
  }

  Ledger* const ledger_;
  uint64_t next_;
  const bool follow_;
  const std::string principal_;
  const bool as_stored_;
  std::atomic<int>* const in_flight_;
  StopList* const stops_;
  uint64_t stop_id_ = 0;
  bool stop_requested_ = false;  // under the mutex
  std::shared_ptr<Shared> shared_;
  std::vector<v1::Entry> buffer_;  // read ahead, last entry first
  v1::Entry current_;
  uint64_t sent_ = 0;
  bool waiting_ = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::Entry>* LedgerService::StreamEntries(
    Context* c, const v1::StreamEntriesRequest* r) {
  class Refusal final : public grpc::ServerWriteReactor<v1::Entry> {
   public:
    // Takes over the count StreamEntries took.
    Refusal(const grpc::Status& status, std::atomic<int>* in_flight) : in_flight_(in_flight) {
      Finish(status);
    }
    void OnDone() override {
      in_flight_->fetch_sub(1);
      delete this;
    }

   private:
    std::atomic<int>* const in_flight_;
  };
  // Counted before the flag is read, as every call is, so that a stop that finds no call
  // under way has refused (or will end) every stream that starts; the count passes to the
  // reactor made below.
  calls_in_flight_.fetch_add(1);
  if (stopping_.load()) {
    grpc::Status status = StoppingStatus();
    LogRequest("StreamEntries", "", "", status, Clock::now());
    return new Refusal(status, &calls_in_flight_);
  }
  absl::StatusOr<Principal> principal = authenticator_->Authenticate(Metadata(c, "authorization"));
  absl::StatusOr<Role> role =
      principal.ok() ? Authorize(*principal, "StreamEntries") : principal.status();
  if (!role.ok()) {
    grpc::Status status = ToGrpcStatus(role.status());
    LogRequest("StreamEntries", principal.ok() ? principal->id : "", "", status, Clock::now());
    return new Refusal(status, &calls_in_flight_);
  }
  const bool as_stored = MaySeeEntriesAsStored(*principal, "StreamEntries");
  auto* stream = new EntryStream(ledger_, r->start_sequence(), r->follow(), principal->id,
                                 as_stored, &calls_in_flight_, &streams_);
  stream->Begin();
  return stream;
}

}  // namespace gongdai::server
