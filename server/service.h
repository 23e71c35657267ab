// The LoanLedger gRPC service over a Ledger (callback API). Every method authenticates
// the caller, checks the method table, validates every field, and for writes hands the
// command to the engine's writer and finishes when the writer answers: no handler waits
// on the disk.
#ifndef GONGDAI_SERVER_SERVICE_H_
#define GONGDAI_SERVER_SERVICE_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>

#include "engine/checkpoint.h"
#include "engine/ledger.h"
#include "engine/status.h"
#include "gongdai/v1/ledger_service.grpc.pb.h"
#include "server/auth.h"

namespace gongdai::server {

// The calls that go on until told to stop (entry streams following the journal): a stop
// ends them at once, answered UNAVAILABLE (SERVER_STOPPING), instead of leaving them to
// the end of the grace period.
class StopList {
 public:
  // Returns the id to Remove with, or 0 (nothing added) once StopAll has run.
  uint64_t Add(std::function<void()> stop);
  void Remove(uint64_t id);
  // Calls each stop once, outside the lock (a stop may end its call).
  void StopAll();

 private:
  std::mutex mutex_;
  std::map<uint64_t, std::function<void()>> stops_;
  uint64_t next_id_ = 1;
  bool stopped_ = false;
};

class LedgerService final : public v1::LoanLedger::CallbackService {
 public:
  // `ledger` and `authenticator` must outlive the service. `on_writer_stopped` is called
  // (possibly more than once, from the writer thread) when a write finds the ledger
  // stopped, so health can turn NOT_SERVING.
  LedgerService(Ledger* ledger, const Authenticator* authenticator, const CheckpointSigner* signer,
                std::function<void()> on_writer_stopped);

  using Reactor = grpc::ServerUnaryReactor;
  using Context = grpc::CallbackServerContext;

  Reactor* DefineProduct(Context*, const v1::DefineProductRequest*, v1::ProductResponse*) override;
  Reactor* AmendProduct(Context*, const v1::AmendProductRequest*, v1::ProductResponse*) override;
  Reactor* GetProduct(Context*, const v1::GetProductRequest*, v1::Product*) override;
  Reactor* ListProducts(Context*, const v1::ListProductsRequest*,
                        v1::ListProductsResponse*) override;
  Reactor* RegisterBorrower(Context*, const v1::RegisterBorrowerRequest*,
                            v1::BorrowerResponse*) override;
  Reactor* UpdateBorrower(Context*, const v1::UpdateBorrowerRequest*,
                          v1::BorrowerResponse*) override;
  Reactor* ChangeTalentPoolStatus(Context*, const v1::ChangeTalentPoolStatusRequest*,
                                  v1::BorrowerResponse*) override;
  Reactor* GetBorrower(Context*, const v1::GetBorrowerRequest*, v1::Borrower*) override;
  Reactor* ListBorrowers(Context*, const v1::ListBorrowersRequest*,
                         v1::ListBorrowersResponse*) override;
  Reactor* SubmitApplication(Context*, const v1::SubmitApplicationRequest*,
                             v1::LoanResponse*) override;
  Reactor* ApproveApplication(Context*, const v1::ApproveApplicationRequest*,
                              v1::LoanResponse*) override;
  Reactor* RejectApplication(Context*, const v1::RejectApplicationRequest*,
                             v1::LoanResponse*) override;
  Reactor* WithdrawApplication(Context*, const v1::WithdrawApplicationRequest*,
                               v1::LoanResponse*) override;
  Reactor* RevokeApproval(Context*, const v1::RevokeApprovalRequest*, v1::LoanResponse*) override;
  Reactor* DisburseLoan(Context*, const v1::DisburseLoanRequest*, v1::LoanResponse*) override;
  Reactor* RecordRepayment(Context*, const v1::RecordRepaymentRequest*, v1::LoanResponse*) override;
  Reactor* AccrueSubsidy(Context*, const v1::AccrueSubsidyRequest*, v1::LoanResponse*) override;
  Reactor* ReportJobs(Context*, const v1::ReportJobsRequest*, v1::LoanResponse*) override;
  Reactor* WriteOffLoan(Context*, const v1::WriteOffLoanRequest*, v1::LoanResponse*) override;
  Reactor* RecordRecovery(Context*, const v1::RecordRecoveryRequest*, v1::LoanResponse*) override;
  Reactor* GetLoan(Context*, const v1::GetLoanRequest*, v1::Loan*) override;
  Reactor* ListLoans(Context*, const v1::ListLoansRequest*, v1::ListLoansResponse*) override;
  Reactor* GetLoanStatement(Context*, const v1::GetLoanStatementRequest*,
                            v1::LoanStatement*) override;
  Reactor* RecordFundContribution(Context*, const v1::RecordFundContributionRequest*,
                                  v1::EntryResponse*) override;
  Reactor* SettleSubsidy(Context*, const v1::SettleSubsidyRequest*, v1::EntryResponse*) override;
  Reactor* ReverseEntry(Context*, const v1::ReverseEntryRequest*, v1::EntryResponse*) override;
  Reactor* GetEntry(Context*, const v1::GetEntryRequest*, v1::Entry*) override;
  Reactor* ListEntries(Context*, const v1::ListEntriesRequest*, v1::ListEntriesResponse*) override;
  Reactor* GetAccountBalance(Context*, const v1::GetAccountBalanceRequest*,
                             v1::AccountBalance*) override;
  Reactor* GetPortfolio(Context*, const v1::GetPortfolioRequest*, v1::Portfolio*) override;
  Reactor* GetProgrammeReport(Context*, const v1::GetProgrammeReportRequest*,
                              v1::ProgrammeReport*) override;
  Reactor* ListOverdueLoans(Context*, const v1::ListOverdueLoansRequest*,
                            v1::ListOverdueLoansResponse*) override;
  Reactor* GetCheckpoint(Context*, const v1::GetCheckpointRequest*, v1::SignedCheckpoint*) override;
  Reactor* GetInclusionProof(Context*, const v1::GetInclusionProofRequest*,
                             v1::InclusionProof*) override;
  Reactor* GetConsistencyProof(Context*, const v1::GetConsistencyProofRequest*,
                               v1::ConsistencyProof*) override;
  grpc::ServerWriteReactor<v1::Entry>* StreamEntries(Context*,
                                                     const v1::StreamEntriesRequest*) override;

  struct Caller;
  using Fill = std::function<absl::Status(const CommandResult&, const Caller&)>;

  // For a graceful stop. After StopTakingCalls, a call that starts is refused with
  // UNAVAILABLE, reason SERVER_STOPPING, before it looks at anything (a client sends it
  // again to the server that comes back), and entry streams end with that status.
  // CallsInFlight counts the calls begun and not yet done, answer sent (a refusal too,
  // so that it reaches the client before the connections close): when it reaches 0 after
  // StopTakingCalls, no write handed to the ledger is waiting for its answer. (The flag
  // is set before the count is read, and a call counts itself before it reads the flag,
  // so none slips between.)
  void StopTakingCalls();
  int CallsInFlight() const { return calls_in_flight_.load(); }

 private:
  using BuildEvent = std::function<v1::Event(ViolationCollector&)>;
  using Run = std::function<absl::Status(const Caller&)>;

  // `expected_version`: the command's (Command::expected_version), for the updates that
  // name the version they were made from; 0 for the others.
  Reactor* Write(Context* context, const char* method, const std::string& request_id,
                 const std::string& business_date, BuildEvent build, Fill fill,
                 uint64_t expected_version = 0);
  Reactor* Read(Context* context, const char* method, Run run);
  // A write that answers with a loan: the request's `view` is checked with its other
  // fields, and the answer's loan is in that view.
  template <typename Request>
  Reactor* LoanWrite(Context* context, const char* method, const Request* r,
                     v1::LoanResponse* response, BuildEvent build,
                     std::function<std::string(const v1::Event&)> loan_id);
  Fill ProductFill(v1::ProductResponse* response, std::string product_id);
  static Fill ReceiptFill(v1::EntryResponse* response);
  Fill LoanFill(v1::LoanResponse* response, v1::LoanView view,
                std::function<std::string(const v1::Event&)> loan_id);

  // A unary call's reactor, counted in CallsInFlight until gRPC is done with it.
  Reactor* NewReactor();
  // True, and the call refused, when the server is stopping.
  bool RefusedAsStopping(Reactor* reactor, const char* method);

  Ledger* const ledger_;
  const Authenticator* const authenticator_;
  const CheckpointSigner* const signer_;
  const std::function<void()> on_writer_stopped_;
  std::atomic<int> calls_in_flight_{0};
  std::atomic<bool> stopping_{false};
  StopList streams_;
};

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_SERVICE_H_
