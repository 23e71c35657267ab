// End-to-end: the real gongdai-server binary on a free loopback port with a temporary
// data directory, called through a gRPC client as the CLI and the portal will.
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "engine/national_id.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/auth.h"
#include "tests/raw_db.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::ServerProcess;
using testing::TempDir;
using Stub = v1::LoanLedger::Stub;

// The field violations of an INVALID_ARGUMENT's google.rpc.BadRequest, in order.
std::vector<google::rpc::BadRequest::FieldViolation> Violations(const grpc::Status& status) {
  std::vector<google::rpc::BadRequest::FieldViolation> out;
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return out;
  for (const google::protobuf::Any& any : rich.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad))
      out.insert(out.end(), bad.field_violations().begin(), bad.field_violations().end());
  }
  return out;
}

std::vector<std::string> BadFields(const grpc::Status& status) {
  std::vector<std::string> fields;
  for (const auto& v : Violations(status)) fields.push_back(v.field());
  return fields;
}

// Each bad field with the reason it carries as field 3 of its FieldViolation (`reason` in
// today's google.rpc.BadRequest; unknown to the copy this is built against), "field=REASON".
std::vector<std::string> BadFieldReasons(const grpc::Status& status) {
  std::vector<std::string> out;
  for (const auto& v : Violations(status)) {
    const google::protobuf::UnknownFieldSet& unknown = v.GetReflection()->GetUnknownFields(v);
    std::string reason;
    for (int i = 0; i < unknown.field_count(); ++i) {
      if (unknown.field(i).number() == 3 &&
          unknown.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
        reason = unknown.field(i).length_delimited();
    }
    out.push_back(v.field() + "=" + reason);
  }
  return out;
}

std::string Reason(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return "";
  for (const google::protobuf::Any& any : rich.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer(std::vector<std::string> args = {"--business-date", "2020-06-30"},
                   std::vector<std::string> env = {}) {
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(dir_.Sub("data"), args, env)) << server_->startup();
    stub_ = server_->Stub();
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const std::string& who, const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!who.empty()) context.AddMetadata("authorization", "Bearer " + server_->Token(who));
    return ((*stub_).*method)(&context, request, response);
  }

  // Request builders for the programme's common path.
  v1::DefineProductRequest FundProduct(const std::string& id = "fund-2020") {
    v1::DefineProductRequest r;
    r.set_request_id("define-" + id);
    r.set_product_id(id);
    v1::ProductTermsInput* t = r.mutable_terms();
    t->set_name("庐陵工贷·互助金");
    t->set_funding(v1::FUNDING_UNION_FUND);
    v1::CategoryLimitSpec* limit = t->add_limits();
    limit->set_category(v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
    limit->set_max_amount("100000");
    t->set_term_months_min(3);
    t->set_term_months_max(36);
    t->add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
    t->set_grace_days(5);
    t->set_dual_approval_above("200000");
    return r;
  }
  v1::RegisterBorrowerRequest Borrower(const std::string& request_id, int serial) {
    v1::RegisterBorrowerRequest r;
    r.set_request_id(request_id);
    std::string first17 = "36080219850612" + std::to_string(100 + serial);
    r.set_national_id(first17 + NationalIdCheckCharacter(first17));
    v1::BorrowerDetailsInput* d = r.mutable_details();
    d->set_name("刘秀英");
    d->set_phone("13907961234");
    d->set_union_member_number("JA-0001");
    d->set_category(v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
    d->set_county("吉州区");
    d->set_enterprise_name("秀英农家乐");
    d->set_sector("乡村旅游");
    return r;
  }
  v1::RecordRepaymentRequest Repayment(const std::string& request_id, const std::string& loan,
                                       const std::string& amount) {
    v1::RecordRepaymentRequest r;
    r.set_request_id(request_id);
    r.set_loan_id(loan);
    r.set_amount(amount);
    r.set_channel(v1::PAYMENT_CHANNEL_BANK_TRANSFER);
    return r;
  }

  // An application to the union fund's product over 12 months.
  v1::SubmitApplicationRequest Application(const std::string& request_id,
                                           const std::string& borrower_id,
                                           const std::string& amount) {
    v1::SubmitApplicationRequest r;
    r.set_request_id(request_id);
    r.set_borrower_id(borrower_id);
    r.set_product_id("fund-2020");
    r.set_amount(amount);
    r.set_term_months(12);
    r.set_method(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
    r.set_purpose("购置冷库设备");
    r.set_jobs_expected(3);
    return r;
  }

  // Fund, product, borrower, and an active loan of 12,000.00 over 12 months.
  std::string ActiveLoan() {
    v1::ProductResponse product;
    EXPECT_TRUE(Call(&Stub::DefineProduct, "supervisor", FundProduct(), &product).ok());
    v1::RecordFundContributionRequest fund;
    fund.set_request_id("fund-1");
    fund.set_amount("1000000");
    fund.set_source("吉安市总工会");
    v1::EntryResponse receipt;
    EXPECT_TRUE(Call(&Stub::RecordFundContribution, "cashier", fund, &receipt).ok());
    v1::BorrowerResponse borrower;
    EXPECT_TRUE(Call(&Stub::RegisterBorrower, "officer", Borrower("reg-1", 1), &borrower).ok());
    v1::SubmitApplicationRequest submit =
        Application("submit-1", borrower.borrower().borrower_id(), "12000");
    v1::LoanResponse loan;
    grpc::Status submitted = Call(&Stub::SubmitApplication, "officer", submit, &loan);
    EXPECT_TRUE(submitted.ok()) << submitted.error_message();
    v1::ApproveApplicationRequest approve;
    approve.set_request_id("approve-1");
    approve.set_loan_id(loan.loan().loan_id());
    EXPECT_TRUE(Call(&Stub::ApproveApplication, "approver", approve, &loan).ok());
    v1::DisburseLoanRequest disburse;
    disburse.set_request_id("disburse-1");
    disburse.set_loan_id(loan.loan().loan_id());
    disburse.set_amount("12000.00");
    grpc::Status disbursed = Call(&Stub::DisburseLoan, "cashier", disburse, &loan);
    EXPECT_TRUE(disbursed.ok()) << disbursed.error_message();
    return loan.loan().loan_id();
  }

  grpc::Status RawCall(const std::string& method, const std::string& who, const std::string& bytes,
                       std::string* response_bytes = nullptr) {
    auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer> generic(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!who.empty()) context.AddMetadata("authorization", "Bearer " + server_->Token(who));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::CompletionQueue queue;
    auto call = generic.PrepareUnaryCall(&context, method, request, &queue);
    call->StartCall();
    grpc::Status status;
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    queue.Next(&tag, &ok);
    if (response_bytes != nullptr && status.ok()) {
      std::vector<grpc::Slice> slices;
      (void)response.Dump(&slices);
      response_bytes->clear();
      for (const grpc::Slice& s : slices)
        response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return status;
  }

  // grpc.health.v1.Health/Check with an empty service name; the response's field 1.
  int HealthStatus() {
    std::string response;
    grpc::Status status = RawCall("/grpc.health.v1.Health/Check", "", "", &response);
    if (!status.ok()) return -1;
    return response.size() == 2 && response[0] == '\x08' ? response[1] : 0;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(ServerTest, WholeLoanLifecycleOverTheWire) {
  const std::string loan_id = ActiveLoan();
  ASSERT_EQ(loan_id, "L000001");
  v1::LoanResponse loan;
  grpc::Status paid =
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-1", loan_id, "1500"), &loan);
  ASSERT_TRUE(paid.ok()) << paid.error_message();
  EXPECT_EQ(loan.loan().principal_outstanding(), "10500.00");
  EXPECT_EQ(loan.loan().schedule(0).paid(), "1000.00");
  EXPECT_EQ(loan.loan().schedule(1).paid(), "500.00");
  v1::GetLoanStatementRequest statement_request;
  statement_request.set_loan_id(loan_id);
  statement_request.set_as_of("2020-09-06");
  v1::LoanStatement statement;
  ASSERT_TRUE(Call(&Stub::GetLoanStatement, "officer", statement_request, &statement).ok());
  EXPECT_EQ(statement.installments(0).state(), "paid");
  EXPECT_EQ(statement.installments(1).state(), "overdue");  // due 08-30, plus 5 days grace
  EXPECT_EQ(statement.days_past_due(), 7);
  EXPECT_EQ(statement.entries_size(), 4);
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-2", loan_id, "10500"), &loan).ok());
  EXPECT_EQ(loan.loan().status(), v1::ApiLoanStatus::CLOSED);
  v1::GetAccountBalanceRequest balance_request;
  balance_request.set_account("union:fund:cash");
  v1::AccountBalance balance;
  ASSERT_TRUE(Call(&Stub::GetAccountBalance, "auditor", balance_request, &balance).ok());
  EXPECT_EQ(balance.balance(), "1000000.00");
  v1::Portfolio portfolio;
  ASSERT_TRUE(Call(&Stub::GetPortfolio, "portal", v1::GetPortfolioRequest(), &portfolio).ok());
  EXPECT_EQ(portfolio.outstanding(), "0.00");
  v1::ListEntriesRequest list;
  list.set_page_size(3);
  v1::ListEntriesResponse entries;
  ASSERT_TRUE(Call(&Stub::ListEntries, "auditor", list, &entries).ok());
  ASSERT_EQ(entries.entries_size(), 3);
  EXPECT_EQ(entries.next_sequence(), 4u);
  // The journal records the authenticated principal, never a request field.
  v1::GetEntryRequest get;
  get.set_sequence(4);
  v1::Entry entry;
  ASSERT_TRUE(Call(&Stub::GetEntry, "auditor", get, &entry).ok());
  EXPECT_EQ(entry.actor().principal_id(), "dev-officer");
  EXPECT_EQ(entry.actor().role(), "officer");
  // An entry past the journal's end is not found, with its reason as every other
  // NOT_FOUND has.
  get.set_sequence(99'999);
  grpc::Status missing = Call(&Stub::GetEntry, "auditor", get, &entry);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(missing), "ENTRY_NOT_FOUND") << missing.error_message();
}

TEST_F(ServerTest, TheBasicViewOfALoanLeavesOutItsScheduleAndAnUnknownViewIsRefused) {
  const std::string loan_id = ActiveLoan();
  v1::RecordRepaymentRequest pay = Repayment("pay-basic", loan_id, "1500");
  pay.set_view(v1::LOAN_VIEW_BASIC);
  v1::LoanResponse basic;
  ASSERT_TRUE(Call(&Stub::RecordRepayment, "cashier", pay, &basic).ok());
  EXPECT_EQ(basic.loan().schedule_size(), 0);

  // The basic view is the whole loan but its schedule; the default is the whole loan.
  v1::GetLoanRequest get;
  get.set_loan_id(loan_id);
  v1::Loan whole;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &whole).ok());
  ASSERT_EQ(whole.schedule_size(), 12);
  EXPECT_EQ(whole.schedule(1).paid(), "500.00");
  v1::Loan expected = whole;
  expected.clear_schedule();
  EXPECT_EQ(basic.loan().SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(basic.loan().principal_outstanding(), "10500.00");
  get.set_view(v1::LOAN_VIEW_FULL);
  v1::Loan full;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &full).ok());
  EXPECT_EQ(full.SerializeAsString(), whole.SerializeAsString());
  get.set_view(v1::LOAN_VIEW_BASIC);
  v1::Loan got;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &got).ok());
  EXPECT_EQ(got.SerializeAsString(), expected.SerializeAsString());
  v1::ListLoansRequest list;
  list.set_view(v1::LOAN_VIEW_BASIC);
  v1::ListLoansResponse listed;
  ASSERT_TRUE(Call(&Stub::ListLoans, "officer", list, &listed).ok());
  ASSERT_EQ(listed.loans_size(), 1);
  EXPECT_EQ(listed.loans(0).SerializeAsString(), expected.SerializeAsString());

  // A view that is none of LoanView's values is refused by name, and the write refused with
  // it is not recorded: its request id is still free.
  v1::RecordRepaymentRequest bad = Repayment("pay-bad-view", loan_id, "100");
  bad.set_view(static_cast<v1::LoanView>(7));
  v1::LoanResponse refused;
  grpc::Status status = Call(&Stub::RecordRepayment, "cashier", bad, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"view"});
  get.set_view(static_cast<v1::LoanView>(7));
  status = Call(&Stub::GetLoan, "officer", get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"view"});
  list.set_view(static_cast<v1::LoanView>(7));
  status = Call(&Stub::ListLoans, "officer", list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"view"});
  // A page token the ledger did not give is refused, not answered with an empty page.
  list.set_view(v1::LOAN_VIEW_BASIC);
  list.set_page_token("zzz");
  status = Call(&Stub::ListLoans, "officer", list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"page_token"});
  list.clear_page_token();
  v1::AccrueSubsidyRequest accrue;
  accrue.set_request_id("accrue-bad-view");
  accrue.set_loan_id(loan_id);
  accrue.set_view(static_cast<v1::LoanView>(-1));
  status = Call(&Stub::AccrueSubsidy, "cashier", accrue, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"view"});
  bad.set_view(v1::LOAN_VIEW_UNSPECIFIED);
  ASSERT_TRUE(Call(&Stub::RecordRepayment, "cashier", bad, &refused).ok());
  EXPECT_FALSE(refused.entry().replayed());
  EXPECT_EQ(refused.loan().principal_outstanding(), "10400.00");
  EXPECT_EQ(refused.loan().schedule_size(), 12);

  // A retry is answered with the loan as it is now, read back, in the view the retry asks.
  pay.set_view(v1::LOAN_VIEW_FULL);
  v1::LoanResponse retried;
  ASSERT_TRUE(Call(&Stub::RecordRepayment, "cashier", pay, &retried).ok());
  EXPECT_TRUE(retried.entry().replayed());
  EXPECT_EQ(retried.loan().schedule_size(), 12);
  pay.set_view(v1::LOAN_VIEW_BASIC);
  ASSERT_TRUE(Call(&Stub::RecordRepayment, "cashier", pay, &retried).ok());
  EXPECT_TRUE(retried.entry().replayed());
  EXPECT_EQ(retried.loan().schedule_size(), 0);
  EXPECT_EQ(retried.loan().principal_outstanding(), "10400.00");
}

TEST_F(ServerTest, DerivedStateOfAnEarlierVersionIsRebuiltOnStartAndLogged) {
  const std::string loan_id = ActiveLoan();
  v1::LoanResponse paid;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-1", loan_id, "1500"), &paid).ok());
  const std::string kWarning = "written by an earlier version: rebuilt from the journal";
  ASSERT_EQ(server_->Stop(), 0);
  EXPECT_EQ(server_->StderrText().find(kWarning), std::string::npos)
      << "a database of this version is not rebuilt";

  // What an engine whose apply differed left behind: no record of the derived state's version.
  {
    testing::RawDb raw(dir_.Sub("data") + "/ledger");
    ASSERT_TRUE(raw.Get("meta", "projections").has_value());
    raw.Delete("meta", "projections");
  }
  StartServer();
  EXPECT_NE(server_->StderrText().find(kWarning), std::string::npos) << server_->StderrText();
  v1::GetLoanRequest get;
  get.set_loan_id(loan_id);
  v1::Loan loan;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &loan).ok());
  EXPECT_EQ(loan.principal_outstanding(), paid.loan().principal_outstanding());
}

// The operator's way back from a damaged projection: --rebuild-projections compares the
// derived state with a replay of the journal and, where they differ, rebuilds it.
TEST_F(ServerTest, RebuildProjectionsPutsADamagedLoanRightFromTheJournal) {
  const std::string loan_id = ActiveLoan();
  v1::LoanResponse paid;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-1", loan_id, "1500"), &paid).ok());
  v1::GetLoanRequest get;
  get.set_loan_id(loan_id);
  v1::Loan before;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &before).ok());
  ASSERT_EQ(server_->Stop(), 0);
  {
    testing::RawDb raw(dir_.Sub("data") + "/ledger");
    ASSERT_TRUE(raw.Get("projections", "l/" + loan_id).has_value());
    raw.Put("projections", "l/" + loan_id, "garbage");
  }

  // Without the flag the damage is reported, and a write on the loan is refused whole.
  StartServer();
  v1::Loan loan;
  grpc::Status status = Call(&Stub::GetLoan, "officer", get, &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  v1::LoanResponse refused;
  status = Call(&Stub::RecordRepayment, "cashier", Repayment("pay-2", loan_id, "100"), &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  ASSERT_EQ(server_->Stop(), 0);

  StartServer({"--business-date", "2020-06-30", "--rebuild-projections"});
  EXPECT_NE(server_->startup().find("first difference: projections key l/" + loan_id +
                                    ": stored 7 bytes, the replay gives "),
            std::string::npos)
      << server_->startup();
  EXPECT_NE(server_->StderrText().find("derived state rebuilt from the journal"), std::string::npos)
      << server_->StderrText();
  EXPECT_EQ(server_->startup().find("garbage"), std::string::npos) << "no stored value shown";
  EXPECT_EQ(server_->StderrText().find("garbage"), std::string::npos);
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &loan).ok());
  EXPECT_EQ(loan.SerializeAsString(), before.SerializeAsString());
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-2", loan_id, "100"), &paid).ok());
  EXPECT_FALSE(paid.entry().replayed());
  EXPECT_EQ(paid.loan().principal_outstanding(), "10400.00");
  ASSERT_EQ(server_->Stop(), 0);

  // With nothing to put right, nothing is rewritten.
  StartServer({"--business-date", "2020-06-30", "--rebuild-projections"});
  EXPECT_NE(server_->startup().find("the derived state matches the journal: nothing rebuilt"),
            std::string::npos)
      << server_->startup();
  ASSERT_EQ(server_->Stop(), 0);

  // A lost entry of the identity index is named with the ID number masked, as for a role
  // that may not see it, in the output and in the log.
  const std::string first17 = "36080219850612101";
  const std::string national_id = first17 + NationalIdCheckCharacter(first17);
  {
    testing::RawDb raw(dir_.Sub("data") + "/ledger");
    ASSERT_TRUE(raw.Get("indexes", "nid/" + national_id).has_value());
    raw.Delete("indexes", "nid/" + national_id);
  }
  StartServer({"--business-date", "2020-06-30", "--rebuild-projections"});
  EXPECT_NE(
      server_->startup().find("first difference: indexes key nid/" + MaskNationalId(national_id)),
      std::string::npos)
      << server_->startup();
  EXPECT_EQ(server_->startup().find(national_id), std::string::npos) << server_->startup();
  EXPECT_EQ(server_->StderrText().find(national_id), std::string::npos) << server_->StderrText();
  ASSERT_EQ(server_->Stop(), 0);

  // A print flag prints and exits without starting the server, so it cannot be combined
  // with a flag that only a start would honour: that is a usage error, not a silent no-op.
  for (const char* starts : {"--rebuild-projections", "--demo"}) {
    const testing::ServerExit run =
        testing::RunServerToExit(dir_.Sub("data"), {"--print-public-key", starts});
    const std::string said = run.out + run.err;
    ASSERT_NE(run.code, -1) << said;
    EXPECT_NE(run.code, 0) << said;
    EXPECT_NE(said.find("excludes"), std::string::npos) << said;
    EXPECT_EQ(said.find("gongdai-server listening"), std::string::npos) << said;
  }
}

TEST_F(ServerTest, EveryRoleAgainstEveryMethodFollowsTheTable) {
  const std::vector<std::string> people = {"officer", "approver", "cashier", "supervisor",
                                           "auditor", "portal",   "admin"};
  const std::vector<std::string> methods = server::MethodsInTable();
  ASSERT_EQ(methods.size(), 36u);
  for (const std::string& method : methods) {
    for (const std::string& who : people) {
      const server::Role role = *server::ParseRole(who);
      const std::vector<server::Role>& allowed = server::RolesFor(method);
      const bool may = std::find(allowed.begin(), allowed.end(), role) != allowed.end();
      // An empty request: allowed roles get past authorization (and then a validation
      // error or an answer), others are refused before anything else is looked at.
      grpc::Status status = RawCall("/gongdai.v1.LoanLedger/" + method, who, "");
      if (may) {
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << who;
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << method << " as " << who;
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << who;
      }
    }
    EXPECT_EQ(RawCall("/gongdai.v1.LoanLedger/" + method, "", "").error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << method;
  }
  // An auditor reads everything and writes nothing.
  for (const std::string& method : methods) {
    const bool read =
        method.starts_with("Get") || method.starts_with("List") || method.starts_with("Stream");
    const auto& allowed = server::RolesFor(method);
    EXPECT_EQ(std::find(allowed.begin(), allowed.end(), server::Role::kAuditor) != allowed.end(),
              read)
        << method;
  }
}

TEST_F(ServerTest, InvalidFieldsComeBackTogetherWithTheirPaths) {
  ActiveLoan();
  v1::RecordRepaymentRequest bad = Repayment("bad-1", "L000001", "1.234");
  bad.set_channel(static_cast<v1::PaymentChannel>(99));
  bad.set_business_date("2020-02-30");
  v1::LoanResponse loan;
  grpc::Status status = Call(&Stub::RecordRepayment, "cashier", bad, &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), (std::vector<std::string>{"amount", "business_date", "channel"}));
  EXPECT_NE(status.error_message().find("more than 2 decimals"), std::string::npos)
      << status.error_message();
  // Each violation also says which rule it broke, for a program to act on.
  EXPECT_EQ(BadFieldReasons(status),
            (std::vector<std::string>{"amount=AMOUNT_TOO_MANY_DECIMALS",
                                      "business_date=DATE_INVALID", "channel=UNKNOWN_ENUM_VALUE"}));

  v1::DefineProductRequest product = FundProduct("x");
  product.mutable_terms()->mutable_limits(0)->set_max_amount("1,000");
  product.mutable_terms()->set_term_months_min(0);
  v1::ProductResponse response;
  status = Call(&Stub::DefineProduct, "supervisor", product, &response);
  EXPECT_EQ(BadFields(status),
            (std::vector<std::string>{"terms.limits[0].max_amount", "terms.term_months_min"}));

  v1::RegisterBorrowerRequest borrower = Borrower("reg-bad", 2);
  borrower.set_national_id("36080219850612100X");
  borrower.mutable_details()->set_phone("123");
  borrower.mutable_details()->set_county("吉州区 ");
  v1::BorrowerResponse registered;
  status = Call(&Stub::RegisterBorrower, "officer", borrower, &registered);
  EXPECT_EQ(BadFields(status),
            (std::vector<std::string>{"national_id", "details.phone", "details.county"}));
  EXPECT_EQ(
      BadFieldReasons(status),
      (std::vector<std::string>{"national_id=NATIONAL_ID_INVALID", "details.phone=PHONE_INVALID",
                                "details.county=SURROUNDING_SPACE"}));
  EXPECT_EQ(
      Call(&Stub::RecordRepayment, "cashier", v1::RecordRepaymentRequest(), &loan).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
}

// An oversized input is quoted in part: the error still names the field and its rule,
// where quoting it whole overflowed the trailer gRPC carries the error in.
TEST_F(ServerTest, OversizedInputIsQuotedInPartAndTheErrorStillArrives) {
  ActiveLoan();
  const std::string huge_amount = "1" + std::string(20'000, '0') + ".001";
  v1::LoanResponse loan;
  grpc::Status status = Call(&Stub::RecordRepayment, "cashier",
                             Repayment("huge-amount", "L000001", huge_amount), &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"amount"});
  EXPECT_NE(status.error_message().find("(20005 bytes)"), std::string::npos)
      << status.error_message().substr(0, 300);
  EXPECT_LT(status.error_message().size(), 400u);

  v1::RecordRepaymentRequest late = Repayment("huge-date", "L000001", "100");
  late.set_business_date(std::string(20'000, '9'));
  status = Call(&Stub::RecordRepayment, "cashier", late, &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"business_date"});

  // A read of an id far longer than any the ledger gives: not found, said briefly.
  v1::GetProductRequest product;
  product.set_product_id(std::string(20'000, 'p'));
  v1::Product got;
  status = Call(&Stub::GetProduct, "officer", product, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_EQ(Reason(status), "PRODUCT_NOT_FOUND");
  EXPECT_LT(status.error_message().size(), 200u);
}

// Every violation names a field of the request the caller sent, whatever the engine calls
// it, and a read without the id it needs says so instead of answering NOT_FOUND.
TEST_F(ServerTest, ViolationsNameTheRequestsOwnFields) {
  ActiveLoan();
  auto fields = [&](auto method, const auto& request, auto* response, const char* who) {
    grpc::Status status = Call(method, who, request, response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    return BadFields(status);
  };
  using Fields = std::vector<std::string>;

  v1::ReverseEntryRequest reverse;
  reverse.set_request_id("reverse-nothing");
  reverse.set_reason("录入错误");
  v1::EntryResponse entry_response;
  EXPECT_EQ(fields(&Stub::ReverseEntry, reverse, &entry_response, "supervisor"),
            Fields{"sequence"});

  v1::GetInclusionProofRequest prove;
  prove.set_sequence(3);
  prove.set_tree_size(2);
  v1::InclusionProof proof;
  EXPECT_EQ(fields(&Stub::GetInclusionProof, prove, &proof, "auditor"), Fields{"sequence"});
  prove.set_tree_size(0);
  EXPECT_EQ(fields(&Stub::GetInclusionProof, prove, &proof, "auditor"), Fields{"sequence"});
  prove.set_tree_size(1'000'000);
  EXPECT_EQ(fields(&Stub::GetInclusionProof, prove, &proof, "auditor"), Fields{"tree_size"});

  v1::GetConsistencyProofRequest consistency;
  consistency.set_old_size(1);
  consistency.set_new_size(1'000'000);
  v1::ConsistencyProof consistent;
  EXPECT_EQ(fields(&Stub::GetConsistencyProof, consistency, &consistent, "auditor"),
            Fields{"new_size"});

  v1::GetProgrammeReportRequest report;
  report.set_from("2020-01-01");
  report.set_to("2020-06-30");
  report.set_quarter(1);
  v1::ProgrammeReport programme;
  EXPECT_EQ(fields(&Stub::GetProgrammeReport, report, &programme, "auditor"), Fields{"quarter"});

  v1::ListLoansRequest list;
  list.set_disbursed_from("2020-06-30");
  list.set_disbursed_to("2020-01-01");
  v1::ListLoansResponse loans;
  grpc::Status reversed = Call(&Stub::ListLoans, "officer", list, &loans);
  EXPECT_EQ(BadFields(reversed), Fields{"disbursed_to"}) << reversed.error_message();
  EXPECT_NE(reversed.error_message().find("before disbursed_from"), std::string::npos);

  v1::Product product;
  EXPECT_EQ(fields(&Stub::GetProduct, v1::GetProductRequest(), &product, "officer"),
            Fields{"product_id"});
  v1::Borrower borrower;
  EXPECT_EQ(fields(&Stub::GetBorrower, v1::GetBorrowerRequest(), &borrower, "officer"),
            Fields{"borrower_id"});
  v1::Loan loan;
  EXPECT_EQ(fields(&Stub::GetLoan, v1::GetLoanRequest(), &loan, "officer"), Fields{"loan_id"});
  v1::LoanStatement statement;
  EXPECT_EQ(fields(&Stub::GetLoanStatement, v1::GetLoanStatementRequest(), &statement, "officer"),
            Fields{"loan_id"});
  v1::Entry entry;
  EXPECT_EQ(fields(&Stub::GetEntry, v1::GetEntryRequest(), &entry, "auditor"), Fields{"sequence"});
}

TEST_F(ServerTest, RefusedRulesComeBackWithTheirReasons) {
  const std::string loan_id = ActiveLoan();
  v1::LoanResponse loan;
  grpc::Status status =
      Call(&Stub::RecordRepayment, "cashier", Repayment("over", loan_id, "12000.01"), &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "EXCEEDS_OUTSTANDING");
  EXPECT_NE(status.error_message().find("12000.00"), std::string::npos);

  v1::SubmitApplicationRequest submit;
  submit.set_request_id("submit-2");
  submit.set_borrower_id("B000001");
  submit.set_product_id("fund-2020");
  submit.set_amount("5000");
  submit.set_term_months(6);
  submit.set_method(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  submit.set_purpose("周转");
  ASSERT_TRUE(Call(&Stub::SubmitApplication, "supervisor", submit, &loan).ok());
  v1::ApproveApplicationRequest approve;
  approve.set_request_id("self-approve");
  approve.set_loan_id(loan.loan().loan_id());
  status = Call(&Stub::ApproveApplication, "supervisor", approve, &loan);
  EXPECT_EQ(Reason(status), "SELF_APPROVAL_FORBIDDEN");

  v1::ChangeTalentPoolStatusRequest suspend;
  suspend.set_request_id("suspend");
  suspend.set_borrower_id("B000001");
  suspend.set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  suspend.set_reason("复核");
  v1::BorrowerResponse borrower;
  ASSERT_TRUE(Call(&Stub::ChangeTalentPoolStatus, "officer", suspend, &borrower).ok());
  submit.set_request_id("submit-3");
  status = Call(&Stub::SubmitApplication, "officer", submit, &loan);
  EXPECT_EQ(Reason(status), "BORROWER_NOT_ACTIVE");

  // Dated before the borrower's registration, or before the product's definition (both
  // on 2020-06-30 but for the borrower registered on 2020-03-02).
  v1::RegisterBorrowerRequest earlier = Borrower("reg-early", 5);
  earlier.set_business_date("2020-03-02");
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", earlier, &borrower).ok());
  v1::SubmitApplicationRequest dated =
      Application("submit-early", borrower.borrower().borrower_id(), "5000");
  dated.set_business_date("2020-03-01");
  status = Call(&Stub::SubmitApplication, "officer", dated, &loan);
  EXPECT_EQ(Reason(status), "BEFORE_REGISTRATION") << status.error_message();
  dated.set_business_date("2020-06-29");
  status = Call(&Stub::SubmitApplication, "officer", dated, &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "BEFORE_PRODUCT") << status.error_message();
  EXPECT_NE(status.error_message().find("definition on 2020-06-30"), std::string::npos)
      << status.error_message();

  v1::GetLoanRequest missing;
  missing.set_loan_id("L999999");
  v1::Loan none;
  status = Call(&Stub::GetLoan, "officer", missing, &none);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(status), "LOAN_NOT_FOUND");
}

// A borrower's history is kept in date order over the wire: an application dated before
// the borrower's latest change is refused, and so is a change dated before an application
// already accepted. Nothing is written by either.
TEST_F(ServerTest, ABorrowersApplicationsAndChangesAreRefusedOutOfDateOrder) {
  v1::DefineProductRequest product = FundProduct();
  product.set_business_date("2020-06-01");
  v1::ProductResponse defined;
  ASSERT_TRUE(Call(&Stub::DefineProduct, "supervisor", product, &defined).ok());
  v1::RegisterBorrowerRequest register_request = Borrower("reg-1", 1);
  register_request.set_business_date("2020-06-01");
  v1::BorrowerResponse borrower;
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", register_request, &borrower).ok());
  const std::string borrower_id = borrower.borrower().borrower_id();
  v1::ChangeTalentPoolStatusRequest change;
  change.set_request_id("suspend");
  change.set_borrower_id(borrower_id);
  change.set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  change.set_reason("复核");
  change.set_business_date("2020-06-10");
  ASSERT_TRUE(Call(&Stub::ChangeTalentPoolStatus, "officer", change, &borrower).ok());
  change.set_request_id("reinstate");
  change.set_status(v1::TALENT_POOL_STATUS_ACTIVE);
  change.set_business_date("2020-06-15");
  ASSERT_TRUE(Call(&Stub::ChangeTalentPoolStatus, "officer", change, &borrower).ok());

  // Into the suspension, since lifted.
  v1::SubmitApplicationRequest submit = Application("submit-early", borrower_id, "5000");
  submit.set_business_date("2020-06-12");
  v1::LoanResponse loan;
  grpc::Status status = Call(&Stub::SubmitApplication, "officer", submit, &loan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "BUSINESS_DATE_BEFORE_BORROWER_HISTORY") << status.error_message();
  EXPECT_NE(status.error_message().find("latest change (2020-06-15)"), std::string::npos)
      << status.error_message();

  submit.set_request_id("submit");
  submit.set_business_date("2020-06-20");
  ASSERT_TRUE(Call(&Stub::SubmitApplication, "officer", submit, &loan).ok());
  change.set_request_id("suspend-late");
  change.set_status(v1::TALENT_POOL_STATUS_SUSPENDED);
  change.set_business_date("2020-06-19");
  status = Call(&Stub::ChangeTalentPoolStatus, "officer", change, &borrower);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "BUSINESS_DATE_BEFORE_BORROWER_HISTORY") << status.error_message();
  EXPECT_NE(status.error_message().find("latest application (2020-06-20)"), std::string::npos)
      << status.error_message();

  v1::GetBorrowerRequest get;
  get.set_borrower_id(borrower_id);
  v1::Borrower stored;
  ASSERT_TRUE(Call(&Stub::GetBorrower, "officer", get, &stored).ok());
  EXPECT_EQ(stored.status(), v1::TALENT_POOL_STATUS_ACTIVE);
  v1::ListLoansRequest list;
  list.set_borrower_id(borrower_id);
  v1::ListLoansResponse loans;
  ASSERT_TRUE(Call(&Stub::ListLoans, "officer", list, &loans).ok());
  ASSERT_EQ(loans.loans_size(), 1);
  EXPECT_EQ(loans.loans(0).submitted().date(), "2020-06-20");
}

// From its write-off on, a statement shows what the loan left unpaid as written off, not
// overdue; as of an earlier day it shows the loan as it was then.
TEST_F(ServerTest, AStatementShowsAWrittenOffLoansUnpaidInstallmentsAsWrittenOff) {
  const std::string loan_id = ActiveLoan();
  v1::WriteOffLoanRequest write_off;
  write_off.set_request_id("write-off");
  write_off.set_loan_id(loan_id);
  write_off.set_reason("借款人失联, 担保追偿无果");
  v1::LoanResponse loan;
  grpc::Status status = Call(&Stub::WriteOffLoan, "supervisor", write_off, &loan);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::GetLoanStatementRequest request;
  request.set_loan_id(loan_id);
  request.set_as_of("2021-12-31");
  v1::LoanStatement statement;
  ASSERT_TRUE(Call(&Stub::GetLoanStatement, "auditor", request, &statement).ok());
  ASSERT_EQ(statement.installments_size(), 12);
  for (const v1::StatementLine& line : statement.installments()) {
    EXPECT_EQ(line.state(), "written off") << line.number();
    EXPECT_EQ(line.paid(), "0.00") << line.number();
  }
  EXPECT_EQ(statement.overdue_principal(), "0.00");
}

// Subsidy settled with the bank cannot be taken back by reversing the accrual behind it.
TEST_F(ServerTest, AnAccrualAlreadySettledIsReversedOnlyAfterItsSettlement) {
  v1::DefineProductRequest product = FundProduct("bank-2020");
  product.set_business_date("2020-01-01");
  v1::ProductTermsInput* terms = product.mutable_terms();
  terms->set_funding(v1::FUNDING_PARTNER_BANK);
  terms->set_bank_id("psbc");
  terms->set_annual_rate("0.0435");
  terms->set_day_count(v1::DAY_COUNT_CONVENTION_ACT_360);
  v1::ProductResponse defined;
  grpc::Status status = Call(&Stub::DefineProduct, "supervisor", product, &defined);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::RegisterBorrowerRequest register_request = Borrower("reg-1", 1);
  register_request.set_business_date("2020-01-02");
  v1::BorrowerResponse borrower;
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", register_request, &borrower).ok());
  v1::SubmitApplicationRequest submit =
      Application("submit", borrower.borrower().borrower_id(), "100000");
  submit.set_product_id("bank-2020");
  submit.set_business_date("2020-01-03");
  v1::LoanResponse loan;
  status = Call(&Stub::SubmitApplication, "officer", submit, &loan);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string loan_id = loan.loan().loan_id();
  v1::ApproveApplicationRequest approve;
  approve.set_request_id("approve");
  approve.set_loan_id(loan_id);
  approve.set_business_date("2020-01-04");
  ASSERT_TRUE(Call(&Stub::ApproveApplication, "approver", approve, &loan).ok());
  v1::DisburseLoanRequest disburse;
  disburse.set_request_id("disburse");
  disburse.set_loan_id(loan_id);
  disburse.set_amount("100000.00");
  disburse.set_business_date("2020-01-15");
  status = Call(&Stub::DisburseLoan, "cashier", disburse, &loan);
  ASSERT_TRUE(status.ok()) << status.error_message();

  v1::AccrueSubsidyRequest accrue;
  accrue.set_request_id("accrue");
  accrue.set_loan_id(loan_id);
  v1::LoanResponse accrued;
  status = Call(&Stub::AccrueSubsidy, "cashier", accrue, &accrued);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::SettleSubsidyRequest settle;
  settle.set_request_id("settle");
  settle.set_bank_id("psbc");
  settle.set_amount("1000.00");
  v1::EntryResponse settlement;
  status = Call(&Stub::SettleSubsidy, "cashier", settle, &settlement);
  ASSERT_TRUE(status.ok()) << status.error_message();

  v1::ReverseEntryRequest reverse;
  reverse.set_request_id("reverse-accrual");
  reverse.set_sequence(accrued.entry().sequence());
  reverse.set_reason("重复计提");
  v1::EntryResponse reversal;
  status = Call(&Stub::ReverseEntry, "supervisor", reverse, &reversal);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "SUBSIDY_ALREADY_SETTLED") << status.error_message();
  EXPECT_NE(status.error_message().find("on bank:psbc:subsidy_payable"), std::string::npos)
      << status.error_message();

  v1::ReverseEntryRequest reverse_settlement;
  reverse_settlement.set_request_id("reverse-settlement");
  reverse_settlement.set_sequence(settlement.entry().sequence());
  reverse_settlement.set_reason("结算有误");
  ASSERT_TRUE(Call(&Stub::ReverseEntry, "supervisor", reverse_settlement, &reversal).ok());
  reverse.set_request_id("reverse-accrual-again");
  status = Call(&Stub::ReverseEntry, "supervisor", reverse, &reversal);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ServerTest, RetriedWriteReturnsTheOriginalAnswer) {
  const std::string loan_id = ActiveLoan();
  v1::LoanResponse first, again;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-once", loan_id, "800"), &first).ok());
  grpc::Status retried =
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-once", loan_id, "800"), &again);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_FALSE(first.entry().replayed());
  EXPECT_TRUE(again.entry().replayed());
  EXPECT_EQ(again.entry().sequence(), first.entry().sequence());
  EXPECT_EQ(again.loan().principal_outstanding(), "11200.00");
  grpc::Status different =
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-once", loan_id, "900"), &again);
  EXPECT_EQ(different.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Reason(different), "REQUEST_ID_REUSED");
}

// Request ids are shared by every caller: one reused for a different request is refused
// without showing anything of the original, which may be another person's national ID and
// phone numbers, recorded by another caller.
TEST_F(ServerTest, AReusedRequestIdShowsNothingOfTheOriginal) {
  v1::BorrowerResponse registered, again;
  const v1::RegisterBorrowerRequest original = Borrower("reg-shared", 1);
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", original, &registered).ok());
  v1::RegisterBorrowerRequest other = Borrower("reg-shared", 2);
  other.mutable_details()->set_name("王建国");
  other.mutable_details()->set_phone("13607960000");
  grpc::Status reused = Call(&Stub::RegisterBorrower, "portal", other, &again);
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Reason(reused), "REQUEST_ID_REUSED");
  for (const std::string& secret :
       {original.national_id(), std::string("13907961234"), std::string("刘秀英"),
        std::string("dev-officer"), registered.borrower().borrower_id()}) {
    EXPECT_EQ(reused.error_message().find(secret), std::string::npos)
        << secret << " in: " << reused.error_message();
    EXPECT_EQ(reused.error_details().find(secret), std::string::npos) << secret;
  }
  // Not even which fields differ, which would let a caller test guesses at the original.
  EXPECT_EQ(reused.error_message().find("national_id"), std::string::npos)
      << reused.error_message();
  EXPECT_EQ(reused.error_message().find("phone"), std::string::npos) << reused.error_message();

  // The officer who recorded it is told which fields of the request differ, in the
  // request's names, and still none of the values.
  v1::RegisterBorrowerRequest changed = original;
  changed.mutable_details()->set_phone("13607960000");
  grpc::Status own = Call(&Stub::RegisterBorrower, "officer", changed, &again);
  EXPECT_EQ(Reason(own), "REQUEST_ID_REUSED");
  EXPECT_NE(own.error_message().find("fields that differ: details.phone"), std::string::npos)
      << own.error_message();
  EXPECT_EQ(own.error_message().find("7961234"), std::string::npos) << own.error_message();
}

// Two officers who read a borrower and then update it: the second update, made from the
// version both read, is refused instead of silently undoing the first.
TEST_F(ServerTest, ABorrowerUpdateNamesTheVersionItWasMadeFromAndAStaleOneIsRefused) {
  v1::BorrowerResponse registered;
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", Borrower("reg-1", 1), &registered).ok());
  const uint64_t version = registered.borrower().version();
  EXPECT_EQ(version, registered.entry().sequence());

  v1::UpdateBorrowerRequest update;
  update.set_request_id("update-1");
  update.set_borrower_id(registered.borrower().borrower_id());
  *update.mutable_details() = Borrower("reg-1", 1).details();
  update.mutable_details()->set_sector("餐饮");
  v1::BorrowerResponse updated;
  grpc::Status status = Call(&Stub::UpdateBorrower, "officer", update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadFields(status), std::vector<std::string>{"expected_version"});

  update.set_expected_version(version);
  status = Call(&Stub::UpdateBorrower, "officer", update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.borrower().version(), updated.entry().sequence());
  EXPECT_EQ(updated.borrower().sector(), "餐饮");

  v1::UpdateBorrowerRequest stale = update;
  stale.set_request_id("update-2");
  stale.mutable_details()->set_phone("13907960002");
  stale.mutable_details()->set_sector("乡村旅游");
  v1::BorrowerResponse refused;
  status = Call(&Stub::UpdateBorrower, "supervisor", stale, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(Reason(status), "BORROWER_CHANGED");

  // A version the borrower never had, here one from before its registration, is no
  // change by someone else: named as unknown, nothing written.
  v1::BorrowerResponse other;
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", Borrower("reg-2", 2), &other).ok());
  v1::UpdateBorrowerRequest unknown = update;
  unknown.set_request_id("update-3");
  unknown.set_borrower_id(other.borrower().borrower_id());
  *unknown.mutable_details() = Borrower("reg-2", 2).details();
  unknown.set_expected_version(version);
  status = Call(&Stub::UpdateBorrower, "officer", unknown, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(status), "VERSION_UNKNOWN");
  EXPECT_NE(status.error_message().find("registered at version " +
                                        std::to_string(other.borrower().version())),
            std::string::npos)
      << status.error_message();
  v1::GetBorrowerRequest get_other;
  get_other.set_borrower_id(other.borrower().borrower_id());
  v1::Borrower other_now;
  ASSERT_TRUE(Call(&Stub::GetBorrower, "officer", get_other, &other_now).ok());
  EXPECT_EQ(other_now.version(), other.borrower().version());

  v1::GetBorrowerRequest get;
  get.set_borrower_id(registered.borrower().borrower_id());
  v1::Borrower now;
  ASSERT_TRUE(Call(&Stub::GetBorrower, "supervisor", get, &now).ok());
  EXPECT_EQ(now.sector(), "餐饮");
  EXPECT_EQ(now.phone(), "13907961234");
  EXPECT_EQ(now.version(), updated.entry().sequence());

  // A retry of the update that landed is answered with it, though the version it names
  // is no longer the borrower's.
  v1::BorrowerResponse again;
  status = Call(&Stub::UpdateBorrower, "officer", update, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(again.entry().replayed());
  EXPECT_EQ(again.entry().sequence(), updated.entry().sequence());
}

TEST_F(ServerTest, RestartKeepsEverything) {
  const std::string loan_id = ActiveLoan();
  v1::LoanResponse paid;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-1", loan_id, "1000"), &paid).ok());
  const std::string officer_token = server_->Token("officer");
  EXPECT_EQ(server_->Stop(), 0);
  StartServer();
  EXPECT_EQ(server_->Token("officer"), officer_token);  // the development tokens are kept
  EXPECT_NE(server_->startup().find("7 entries"), std::string::npos) << server_->startup();
  v1::GetLoanRequest get;
  get.set_loan_id(loan_id);
  v1::Loan loan;
  ASSERT_TRUE(Call(&Stub::GetLoan, "officer", get, &loan).ok());
  EXPECT_EQ(loan.principal_outstanding(), "11000.00");
  v1::LoanResponse retry;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("pay-1", loan_id, "1000"), &retry).ok());
  EXPECT_TRUE(retry.entry().replayed());
}

TEST_F(ServerTest, PersonalDataIsMaskedForRolesThatDoNotNeedIt) {
  ActiveLoan();
  v1::GetBorrowerRequest get;
  get.set_borrower_id("B000001");
  v1::Borrower full, masked;
  ASSERT_TRUE(Call(&Stub::GetBorrower, "officer", get, &full).ok());
  ASSERT_TRUE(Call(&Stub::GetBorrower, "auditor", get, &masked).ok());
  EXPECT_EQ(full.national_id().size(), 18u);
  EXPECT_EQ(full.national_id().find('*'), std::string::npos);
  EXPECT_EQ(masked.national_id(),
            full.national_id().substr(0, 4) + "**********" + full.national_id().substr(14));
  EXPECT_EQ(masked.phone(), "139****1234");
  EXPECT_EQ(full.phone(), "13907961234");
  // Logs carry neither tokens nor ID numbers.
  const std::string log = server_->StderrText();
  EXPECT_NE(log.find("method=GetBorrower"), std::string::npos);
  EXPECT_EQ(log.find(full.national_id()), std::string::npos);
  for (const char* who : {"officer", "auditor", "cashier"}) {
    EXPECT_EQ(log.find(server_->Token(who)), std::string::npos);
  }
}

// Journal entries are the stored records. They are given as stored to the roles shown
// personal data and to the auditor, who checks their hashes; the cashier, who may read
// the journal too, is given them with the national ID and phone numbers masked, by every
// method that returns entries.
TEST_F(ServerTest, JournalEntriesShowPersonalDataAsStoredOnlyToRolesThatNeedIt) {
  const std::string loan_id = ActiveLoan();
  v1::BorrowerResponse second;
  ASSERT_TRUE(Call(&Stub::RegisterBorrower, "officer", Borrower("reg-2", 2), &second).ok());
  const std::string guarantor_first17 = "36082119700101123";
  const std::string guarantor_id = guarantor_first17 + NationalIdCheckCharacter(guarantor_first17);
  v1::SubmitApplicationRequest submit =
      Application("submit-guaranteed", second.borrower().borrower_id(), "10000");
  v1::Guarantor* guarantor = submit.add_guarantors();
  guarantor->set_name("刘建华");
  guarantor->set_national_id(guarantor_id);
  guarantor->set_relationship("配偶");
  v1::LoanResponse submitted;
  grpc::Status applied = Call(&Stub::SubmitApplication, "officer", submit, &submitted);
  ASSERT_TRUE(applied.ok()) << applied.error_message();
  const std::string national_id = Borrower("reg-1", 1).national_id();
  auto mask_id = [](const std::string& id) {
    return id.substr(0, 4) + "**********" + id.substr(14);
  };

  v1::ListEntriesResponse officer, auditor, cashier;
  ASSERT_TRUE(Call(&Stub::ListEntries, "officer", v1::ListEntriesRequest(), &officer).ok());
  ASSERT_TRUE(Call(&Stub::ListEntries, "auditor", v1::ListEntriesRequest(), &auditor).ok());
  ASSERT_TRUE(Call(&Stub::ListEntries, "cashier", v1::ListEntriesRequest(), &cashier).ok());
  ASSERT_EQ(auditor.entries_size(), officer.entries_size());
  ASSERT_EQ(cashier.entries_size(), officer.entries_size());
  uint64_t registration = 0;
  int with_guarantor = -1;
  for (int i = 0; i < officer.entries_size(); ++i) {
    // As stored, for the auditor too: the same bytes the hash covers.
    EXPECT_EQ(auditor.entries(i).SerializeAsString(), officer.entries(i).SerializeAsString());
    EXPECT_EQ(cashier.entries(i).hash(), officer.entries(i).hash());
    const v1::Event& event = officer.entries(i).event();
    if (event.has_borrower_registered() && registration == 0) {
      registration = officer.entries(i).sequence();
      EXPECT_EQ(event.borrower_registered().national_id(), national_id);
      EXPECT_EQ(event.borrower_registered().details().phone(), "13907961234");
      const v1::BorrowerRegistered& shown = cashier.entries(i).event().borrower_registered();
      EXPECT_EQ(shown.national_id(), mask_id(national_id));
      EXPECT_EQ(shown.details().phone(), "139****1234");
      EXPECT_EQ(shown.details().name(), "刘秀英");  // not personal data
    }
    if (event.application_submitted().guarantors_size() > 0) with_guarantor = i;
  }
  ASSERT_NE(registration, 0u);
  ASSERT_GE(with_guarantor, 0);
  EXPECT_EQ(
      officer.entries(with_guarantor).event().application_submitted().guarantors(0).national_id(),
      guarantor_id);
  EXPECT_EQ(
      cashier.entries(with_guarantor).event().application_submitted().guarantors(0).national_id(),
      mask_id(guarantor_id));

  // An update of details holds the phone number.
  v1::UpdateBorrowerRequest update;
  update.set_request_id("update-phone");
  update.set_borrower_id(second.borrower().borrower_id());
  *update.mutable_details() = Borrower("reg-2", 2).details();
  update.mutable_details()->set_phone("13607960000");
  update.set_expected_version(second.borrower().version());
  v1::BorrowerResponse updated;
  grpc::Status changed = Call(&Stub::UpdateBorrower, "officer", update, &updated);
  ASSERT_TRUE(changed.ok()) << changed.error_message();
  v1::GetEntryRequest get_update;
  get_update.set_sequence(updated.entry().sequence());
  v1::Entry update_as_cashier, update_as_officer;
  ASSERT_TRUE(Call(&Stub::GetEntry, "cashier", get_update, &update_as_cashier).ok());
  ASSERT_TRUE(Call(&Stub::GetEntry, "officer", get_update, &update_as_officer).ok());
  EXPECT_EQ(update_as_cashier.event().borrower_updated().details().phone(), "136****0000");
  EXPECT_EQ(update_as_officer.event().borrower_updated().details().phone(), "13607960000");

  // One entry, and one with its inclusion proof.
  v1::GetEntryRequest get;
  get.set_sequence(registration);
  v1::Entry as_cashier, as_auditor;
  ASSERT_TRUE(Call(&Stub::GetEntry, "cashier", get, &as_cashier).ok());
  ASSERT_TRUE(Call(&Stub::GetEntry, "auditor", get, &as_auditor).ok());
  EXPECT_EQ(as_cashier.event().borrower_registered().national_id(), mask_id(national_id));
  EXPECT_EQ(as_auditor.event().borrower_registered().national_id(), national_id);
  v1::GetInclusionProofRequest prove;
  prove.set_sequence(registration);
  prove.set_tree_size(static_cast<uint64_t>(officer.entries_size()));
  v1::InclusionProof proof;
  ASSERT_TRUE(Call(&Stub::GetInclusionProof, "cashier", prove, &proof).ok());
  EXPECT_EQ(proof.entry().event().borrower_registered().details().phone(), "139****1234");
  ASSERT_TRUE(Call(&Stub::GetInclusionProof, "auditor", prove, &proof).ok());
  EXPECT_EQ(proof.entry().event().borrower_registered().details().phone(), "13907961234");

  // The stream, as an auditor's replay or a follower reads it.
  auto streamed = [&](const std::string& who) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + server_->Token(who));
    v1::StreamEntriesRequest request;
    request.set_start_sequence(registration);
    auto reader = stub_->StreamEntries(&context, request);
    v1::Entry first, rest;
    EXPECT_TRUE(reader->Read(&first));
    context.TryCancel();
    while (reader->Read(&rest)) {
    }
    reader->Finish();
    return first;
  };
  EXPECT_EQ(streamed("cashier").event().borrower_registered().national_id(), mask_id(national_id));
  EXPECT_EQ(streamed("auditor").event().borrower_registered().national_id(), national_id);

  // A statement's entries, as the rest of the statement: masked for the auditor too.
  v1::GetLoanStatementRequest statement_request;
  statement_request.set_loan_id(submitted.loan().loan_id());
  v1::LoanStatement full_statement, masked_statement;
  ASSERT_TRUE(Call(&Stub::GetLoanStatement, "officer", statement_request, &full_statement).ok());
  ASSERT_TRUE(Call(&Stub::GetLoanStatement, "auditor", statement_request, &masked_statement).ok());
  ASSERT_EQ(full_statement.entries_size(), 1);
  ASSERT_EQ(masked_statement.entries_size(), 1);
  EXPECT_EQ(full_statement.entries(0).event().application_submitted().guarantors(0).national_id(),
            guarantor_id);
  EXPECT_EQ(masked_statement.entries(0).event().application_submitted().guarantors(0).national_id(),
            mask_id(guarantor_id));
  (void)loan_id;
}

// A token with several roles: the call is made in the first role its method allows, but
// the caller sees personal data when any of those roles may (a supervisor whose token
// lists "auditor" first). The client's `borrower update`, which writes back what it read,
// is tested through the client (CliTest.BorrowerUpdateByATokenWithSeveralRoles...).
TEST_F(ServerTest, ATokenWithSeveralRolesSeesPersonalDataWhenOneOfItsRolesMay) {
  ActiveLoan();
  stub_.reset();  // an open channel would hold the stop for the server's 5 s of grace
  server_->Stop();
  const std::string token = "token-of-zhang-who-audits-and-supervises";
  const std::string config = dir_.Sub("several-roles.toml");
  testing::WriteConfigAddingAToken(config, dir_.Sub("data"), token, "zhang",
                                   "\"auditor\", \"supervisor\"");
  StartServer({"--config", config, "--business-date", "2020-06-30"});

  v1::GetBorrowerRequest get;
  get.set_borrower_id("B000001");
  v1::Borrower read;
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  ASSERT_TRUE(stub_->GetBorrower(&context, get, &read).ok());
  EXPECT_EQ(read.phone(), "13907961234");
  EXPECT_EQ(read.national_id().find('*'), std::string::npos) << read.national_id();

  // The auditor's own token still sees them masked.
  v1::Borrower masked;
  ASSERT_TRUE(Call(&Stub::GetBorrower, "auditor", get, &masked).ok());
  EXPECT_EQ(masked.phone(), "139****1234");
}

TEST_F(ServerTest, BadInputOverTheWireGetsClearErrorsAndTheServerKeepsServing) {
  v1::ProductResponse product;
  // Garbage tokens.
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer not-a-token");
    EXPECT_EQ(stub_->DefineProduct(&context, FundProduct(), &product).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Basic b2ZmaWNlcjpwdw==");
    EXPECT_EQ(stub_->DefineProduct(&context, FundProduct(), &product).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // An oversize message: the purpose alone is 5 MiB, over the 4 MiB limit.
  v1::SubmitApplicationRequest huge;
  huge.set_request_id("huge");
  huge.set_purpose(std::string(5 << 20, 'x'));
  v1::LoanResponse loan;
  EXPECT_EQ(Call(&Stub::SubmitApplication, "officer", huge, &loan).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Bytes that are not a protobuf message at all.
  grpc::Status garbage =
      RawCall("/gongdai.v1.LoanLedger/GetLoan", "officer", "\xff\xff\xff\xff garbage");
  EXPECT_FALSE(garbage.ok());  // gRPC itself refuses bytes that do not parse
  // Missing fields and an unknown enum value.
  v1::ListLoansRequest list;
  list.set_status(static_cast<v1::ApiLoanStatus::Value>(77));
  v1::ListLoansResponse loans;
  grpc::Status status = Call(&Stub::ListLoans, "officer", list, &loans);
  EXPECT_EQ(BadFields(status), (std::vector<std::string>{"status"}));
  v1::SubmitApplicationRequest empty;
  status = Call(&Stub::SubmitApplication, "officer", empty, &loan);
  const std::vector<std::string> fields = BadFields(status);
  for (const char* field :
       {"request_id", "borrower_id", "product_id", "amount", "term_months", "method", "purpose"}) {
    EXPECT_NE(std::find(fields.begin(), fields.end(), field), fields.end()) << field;
  }
  // And it keeps serving.
  EXPECT_EQ(HealthStatus(), 1);
  EXPECT_TRUE(Call(&Stub::DefineProduct, "supervisor", FundProduct(), &product).ok());
}

TEST_F(ServerTest, TlsWhenConfigured) {
  server_->Stop();
  const std::string key = dir_.Sub("key.pem");
  const std::string cert = dir_.Sub("cert.pem");
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
      " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const std::string config = dir_.Sub("server.toml");
  std::ofstream(config) << "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"" << cert
                        << "\"\nkey_file = \"" << key << "\"\n";
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(dir_.Sub("tls-data"), {"--config", config})) << server_->startup();
  EXPECT_NE(server_->startup().find("(TLS)"), std::string::npos);
  std::ifstream cert_in(cert);
  std::stringstream pem;
  pem << cert_in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto secure = v1::LoanLedger::NewStub(
      grpc::CreateCustomChannel(server_->address(), grpc::SslCredentials(ssl), args));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + server_->Token("portal"));
  v1::ListProductsResponse products;
  grpc::Status status = secure->ListProducts(&context, v1::ListProductsRequest(), &products);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Plaintext to a TLS port fails.
  auto plain = server_->Stub();
  grpc::ClientContext plain_context;
  plain_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  plain_context.AddMetadata("authorization", "Bearer " + server_->Token("portal"));
  EXPECT_FALSE(plain->ListProducts(&plain_context, v1::ListProductsRequest(), &products).ok());
}

TEST(ServerConfigFile, ABadSettingStopsTheStartBeforeAnythingIsCreatedAndIsNamed) {
  TempDir dir;
  const std::string config = dir.Sub("bad.toml");
  std::ofstream(config) << "listen = \"127.0.0.1:0\"\n[storage]\nwrite_buffer_mib = 0\n";
  ServerProcess bad;
  EXPECT_FALSE(bad.Start(dir.Sub("bad-data"), {"--config", config}));
  const int status = bad.Stop();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(bad.StderrText().find("config: storage.write_buffer_mib: must be 1-1024"),
            std::string::npos)
      << bad.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("bad-data")));
}

// gRPC's reflection library adds the reflection service to every server once it is
// loaded: it is served by default, and not at all with [grpc] reflection = false.
TEST_F(ServerTest, ReflectionIsServedOnlyWhenConfigured) {
  // ServerReflectionRequest{list_services: "*"}, sent as one message.
  const std::string list_services("\x3a\x01*", 3);
  auto reflect = [&](const std::string& address, std::string* listed) {
    grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::CompletionQueue cq;
    grpc::Slice slice(list_services);
    grpc::ByteBuffer request(&slice, 1), response;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> call = stub.PrepareUnaryCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request, &cq);
    call->StartCall();
    grpc::Status status;
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    std::vector<grpc::Slice> slices;
    if (status.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) listed->append(s.begin(), s.end());
    }
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status.error_code();
  };
  std::string listed;
  EXPECT_EQ(reflect(server_->address(), &listed), grpc::StatusCode::OK);
  EXPECT_NE(listed.find("gongdai.v1.LoanLedger"), std::string::npos) << listed;

  server_->Stop();
  const std::string config = dir_.Sub("no-reflection.toml");
  std::ofstream(config) << "listen = \"127.0.0.1:0\"\n[grpc]\nreflection = false\n";
  StartServer({"--config", config});
  listed.clear();
  EXPECT_EQ(reflect(server_->address(), &listed), grpc::StatusCode::UNIMPLEMENTED) << listed;
  v1::ListProductsResponse products;
  EXPECT_TRUE(Call(&Stub::ListProducts, "portal", v1::ListProductsRequest(), &products).ok());
}

// What an operator gets wrong is refused before anything is written, with the setting
// named; what the server writes is its own user's only (the ledger holds personal data).
TEST(ServerOperations, MistakesAreRefusedBeforeAnythingIsWrittenAndFilesAreOwnerOnly) {
  TempDir dir;
  auto exit_code = [](ServerProcess& server) {
    const int status = server.Stop();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  };
  ServerProcess bad_flag;
  EXPECT_FALSE(bad_flag.Start(dir.Sub("flag-data"), {"--bogus"}));
  EXPECT_EQ(exit_code(bad_flag), 2);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("flag-data")));

  ServerProcess bad_port;  // gRPC would have listened on port 34463
  EXPECT_FALSE(bad_port.Start(dir.Sub("port-data"), {"--listen", "127.0.0.1:99999"}));
  EXPECT_EQ(exit_code(bad_port), 2);
  EXPECT_NE(bad_port.StderrText().find("--listen: port 99999 is not 0-65535"), std::string::npos)
      << bad_port.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("port-data")));

  const std::string tls = dir.Sub("tls.toml");
  std::ofstream(tls) << "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"" << dir.Sub("none.pem")
                     << "\"\nkey_file = \"" << dir.Sub("none.key") << "\"\n";
  ServerProcess no_cert;
  EXPECT_FALSE(no_cert.Start(dir.Sub("tls-data"), {"--config", tls, "--demo"}));
  EXPECT_EQ(exit_code(no_cert), 1);
  EXPECT_NE(no_cert.StderrText().find("tls.cert_file: cannot read " + dir.Sub("none.pem")),
            std::string::npos)
      << no_cert.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("tls-data")));

  ServerProcess first;
  ASSERT_TRUE(first.Start(dir.Sub("data"))) << first.StderrText();
  struct stat info {};
  for (const std::string& path :
       {dir.Sub("data"), dir.Sub("data") + "/ledger", dir.Sub("data") + "/ledger/CURRENT",
        dir.Sub("data") + "/checkpoint-key.pem"}) {
    ASSERT_EQ(::stat(path.c_str(), &info), 0) << path;
    EXPECT_EQ(info.st_mode & 077, 0u) << path << " mode " << std::oct << info.st_mode;
  }
  EXPECT_EQ(exit_code(first), 0);
  // The ledger's own RocksDB directory given as the data directory.
  ServerProcess inside;
  EXPECT_FALSE(inside.Start(dir.Sub("data") + "/ledger"));
  EXPECT_EQ(exit_code(inside), 1);
  EXPECT_NE(inside.StderrText().find("is a database directory itself"), std::string::npos)
      << inside.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data") + "/ledger/ledger"));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data") + "/ledger/dev-tokens.toml"));
}

// A second server started by mistake is refused with the reason, and leaves the first
// serving: on the first one's data directory RocksDB's lock stops it; on its address the
// port is not shared (gRPC would otherwise share it, and the kernel would split the
// connections, and so the writes, between two ledgers).
TEST_F(ServerTest, ASecondServerOnTheSameDataOrAddressIsRefusedAndSaysWhy) {
  ServerProcess same_data;
  EXPECT_FALSE(same_data.Start(dir_.Sub("data")));
  int status = same_data.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(same_data.StderrText().find("gongdai-server: opening ledger database at " +
                                        dir_.Sub("data") + "/ledger: IO error: While lock file"),
            std::string::npos)
      << same_data.StderrText();

  // Refused before it creates anything: no data directory, ledger or tokens.
  ServerProcess same_address;
  EXPECT_FALSE(same_address.Start(dir_.Sub("second"), {"--listen", server_->address()}));
  status = same_address.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(
      same_address.StderrText().find("gongdai-server: cannot listen on " + server_->address() +
                                     ": the address is in use (another process listens there)"),
      std::string::npos)
      << same_address.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("second")));

  ServerProcess elsewhere;  // 192.0.2.0/24 is reserved for documentation: never local
  EXPECT_FALSE(elsewhere.Start(dir_.Sub("third"), {"--listen", "192.0.2.1:50051"}));
  status = elsewhere.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(elsewhere.StderrText().find("gongdai-server: cannot listen on 192.0.2.1:50051: "
                                        "192.0.2.1 is not an address of this machine"),
            std::string::npos)
      << elsewhere.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("third")));

  v1::ListProductsResponse products;
  EXPECT_TRUE(Call(&Stub::ListProducts, "portal", v1::ListProductsRequest(), &products).ok());
}

// A listen address is read as gRPC reads it, before anything is created: an address with
// no host, which gRPC refuses, is refused with what to write instead; any spelling of the
// wildcard means [::] for IPv6 and IPv4 both or, when another process holds [::] for IPv6
// only, 0.0.0.0, which serves.
TEST_F(ServerTest, AListenAddressIsReadAsGrpcReadsItBeforeAnythingIsCreated) {
  ServerProcess no_host;
  EXPECT_FALSE(no_host.Start(dir_.Sub("no-host"), {"--listen", ":50051"}));
  int status = no_host.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(no_host.StderrText().find("gongdai-server: cannot listen on :50051: no host before "
                                      "the port (for every interface: 0.0.0.0:50051 or "
                                      "[::]:50051)"),
            std::string::npos)
      << no_host.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("no-host")));

  // Another process's socket on [::], IPv6 only, on a port the kernel picks.
  const int held = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (held < 0) GTEST_SKIP() << "no IPv6 on this machine";
  const int one = 1;
  ASSERT_EQ(::setsockopt(held, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)), 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_any;
  if (::bind(held, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
    ::close(held);
    GTEST_SKIP() << "cannot bind [::] on this machine";
  }
  ASSERT_EQ(::listen(held, 1), 0);
  socklen_t length = sizeof(any);
  ASSERT_EQ(::getsockname(held, reinterpret_cast<sockaddr*>(&any), &length), 0);
  const std::string port = std::to_string(ntohs(any.sin6_port));

  ServerProcess wildcard;
  const bool started = wildcard.Start(dir_.Sub("wildcard"), {"--listen", "[::0]:" + port});
  ::close(held);
  ASSERT_TRUE(started) << wildcard.StderrText();
  EXPECT_EQ(wildcard.address(), "[::0]:" + port);
  // gRPC fell back to 0.0.0.0: the server is reached over IPv4 (a client given the
  // reported address, [::0], would try IPv6).
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + wildcard.Token("portal"));
  v1::ListProductsResponse products;
  const grpc::Status listed =
      wildcard.Stub("127.0.0.1:" + port)->ListProducts(&context, {}, &products);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  status = wildcard.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A port below the kernel's first unprivileged one, without the privilege to bind it, is
// refused before anything is created. The tests may run as root: the server is then run
// with CAP_NET_BIND_SERVICE dropped, as a federation's service account would run it.
TEST_F(ServerTest, APrivilegedPortWithoutThePrivilegeIsRefusedBeforeAnythingIsCreated) {
  int first_unprivileged = 1024;
  std::ifstream("/proc/sys/net/ipv4/ip_unprivileged_port_start") >> first_unprivileged;
  if (first_unprivileged <= 1) GTEST_SKIP() << "every port is unprivileged on this machine";
  std::vector<std::string> wrapper;
  if (::geteuid() == 0) {
    wrapper = {"/usr/bin/setpriv", "--bounding-set=-net_bind_service",
               "--inh-caps=-net_bind_service", "--"};
    if (std::system("/usr/bin/setpriv --bounding-set=-net_bind_service -- /bin/true") != 0) {
      GTEST_SKIP() << "running as root, and setpriv cannot drop CAP_NET_BIND_SERVICE here";
    }
  }
  const std::string port = std::to_string(first_unprivileged - 1);
  ServerProcess privileged;
  EXPECT_FALSE(
      privileged.Start(dir_.Sub("privileged"), {"--listen", "127.0.0.1:" + port}, {}, wrapper));
  const int status = privileged.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(privileged.StderrText().find("gongdai-server: cannot listen on 127.0.0.1:" + port +
                                         ": port " + port + " needs privileges"),
            std::string::npos)
      << privileged.StderrText();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("privileged")));
}

// A stop gives the calls under way up to 5 s to be answered, ends entry streams and
// refuses the calls that start meanwhile (nothing handed to the ledger), and then closes
// every connection at once. The server's syncs are held to keep a write under way.
TEST_F(ServerTest, AStopAnswersTheWritesUnderWayRefusesNewCallsAndDoesNotWaitForIdleClients) {
  server_->Stop();
  const std::string hold = dir_.Sub("hold-sync");
  const std::string held = hold + ".held";
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::vector<std::string> env = {
      "LD_PRELOAD=" GONGDAI_FAIL_SYNC_PRELOAD, "GONGDAI_HOLD_SYNC_TRIGGER=" + hold,
      // The preloaded library comes before the sanitizer runtime in the load order.
      std::string("ASAN_OPTIONS=") + (asan != nullptr ? std::string(asan) + ":" : "") +
          "verify_asan_link_order=0"};
  const std::vector<std::string> args = {"--business-date", "2020-06-30"};
  StartServer(args, env);
  const std::string loan_id = ActiveLoan();
  auto repay_while_held = [&](const std::string& request_id) {
    std::filesystem::remove(held);
    std::ofstream(hold) << "hold";
    auto answer = std::async(std::launch::async, [this, loan_id, request_id] {
      v1::LoanResponse loan;
      return Call(&Stub::RecordRepayment, "cashier", Repayment(request_id, loan_id, "100"), &loan);
    });
    for (int i = 0; i < 1000 && !std::filesystem::exists(held); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(std::filesystem::exists(held)) << "the write never reached its sync";
    return answer;
  };

  // An auditor follows the journal, and a repayment waits for its sync.
  auto stream_context = std::make_unique<grpc::ClientContext>();
  stream_context->AddMetadata("authorization", "Bearer " + server_->Token("auditor"));
  v1::StreamEntriesRequest follow;
  follow.set_follow(true);
  std::unique_ptr<Stub> auditor = server_->Stub();
  auto reader = auditor->StreamEntries(stream_context.get(), follow);
  v1::Entry entry;
  ASSERT_TRUE(reader->Read(&entry));
  std::future<grpc::Status> answered = repay_while_held("under-way");

  server_->BeginStop();
  grpc::Status refused;
  for (int i = 0; i < 300; ++i) {
    v1::ListProductsResponse products;
    refused = Call(&Stub::ListProducts, "officer", v1::ListProductsRequest(), &products);
    if (!refused.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_EQ(Reason(refused), "SERVER_STOPPING") << refused.error_message();
  while (reader->Read(&entry)) {
  }
  const grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
  EXPECT_EQ(Reason(ended), "SERVER_STOPPING");
  // The disk comes back within the grace period: the write is answered.
  std::filesystem::remove(hold);
  const grpc::Status repaid = answered.get();
  EXPECT_TRUE(repaid.ok()) << repaid.error_message();
  EXPECT_EQ(server_->Wait(), 0);
  EXPECT_EQ(server_->StderrText().find("grace period over"), std::string::npos)
      << server_->StderrText();

  // It does not: at the end of the grace period the call is cut short. The entry is
  // durable all the same (the ledger closes only once its writes are on disk), and a
  // retry with the request id gets it.
  StartServer(args, env);
  answered = repay_while_held("cut-short");
  server_->BeginStop();
  for (int i = 0; i < 1500; ++i) {
    if (server_->StderrText().find("grace period over: cancelling 1 calls under way") !=
        std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(server_->StderrText().find("grace period over: cancelling 1 calls under way"),
            std::string::npos)
      << server_->StderrText();
  std::filesystem::remove(hold);
  EXPECT_FALSE(answered.get().ok());
  EXPECT_EQ(server_->Wait(), 0);
  StartServer(args, env);
  v1::LoanResponse retried;
  ASSERT_TRUE(
      Call(&Stub::RecordRepayment, "cashier", Repayment("cut-short", loan_id, "100"), &retried)
          .ok());
  EXPECT_TRUE(retried.entry().replayed());
  EXPECT_EQ(retried.loan().principal_outstanding(), "11800.00");

  // With nothing under way, a client's idle channel (the fixture's) does not hold the
  // stop: given time, gRPC would wait for the client to acknowledge its GOAWAY, which an
  // idle client never reads.
  const auto begun = std::chrono::steady_clock::now();
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - begun, std::chrono::seconds(4));
  const std::string log = server_->StderrText();  // all three servers' lines
  EXPECT_EQ(log.find("grace period over"), log.rfind("grace period over")) << log;
}

TEST_F(ServerTest, HealthTurnsNotServingWhenTheEngineStops) {
  server_->Stop();
  const std::string trigger = dir_.Sub("fail-sync");
  const char* asan = std::getenv("ASAN_OPTIONS");
  StartServer({"--business-date", "2020-06-30"},
              {"LD_PRELOAD=" GONGDAI_FAIL_SYNC_PRELOAD, "GONGDAI_FAIL_SYNC_TRIGGER=" + trigger,
               // The preloaded library comes before the sanitizer runtime in the load order.
               std::string("ASAN_OPTIONS=") + (asan != nullptr ? std::string(asan) + ":" : "") +
                   "verify_asan_link_order=0"});
  const std::string loan_id = ActiveLoan();
  EXPECT_EQ(HealthStatus(), 1);  // SERVING
  std::ofstream(trigger) << "fail";
  v1::LoanResponse loan;
  grpc::Status failed =
      Call(&Stub::RecordRepayment, "cashier", Repayment("doomed", loan_id, "100"), &loan);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE) << failed.error_message();
  EXPECT_EQ(HealthStatus(), 2);  // NOT_SERVING
  std::filesystem::remove(trigger);
  // Reads go on; writes stay refused.
  v1::GetLoanRequest get;
  get.set_loan_id(loan_id);
  v1::Loan read;
  EXPECT_TRUE(Call(&Stub::GetLoan, "officer", get, &read).ok());
  EXPECT_EQ(read.principal_outstanding(), "12000.00");
  EXPECT_EQ(Call(&Stub::RecordRepayment, "cashier", Repayment("later", loan_id, "100"), &loan)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTest, DemoBookAndItsReportOverTheWire) {
  server_->Stop();
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(dir_.Sub("demo"), {"--demo"})) << server_->startup();
  stub_ = server_->Stub();
  EXPECT_NE(server_->startup().find("demo book loaded"), std::string::npos) << server_->startup();
  EXPECT_NE(server_->startup().find("business date 2021-03-31"), std::string::npos);
  v1::GetProgrammeReportRequest request;
  request.set_year(2020);
  request.add_group_by(v1::REPORT_DIMENSION_COUNTY);
  v1::ProgrammeReport report;
  grpc::Status status = Call(&Stub::GetProgrammeReport, "portal", request, &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(report.from(), "2020-01-01");
  EXPECT_EQ(report.to(), "2020-12-31");
  EXPECT_EQ(report.total().loans_disbursed(), 330);
  EXPECT_EQ(report.total().amount_disbursed(), "62470000.00");
  EXPECT_EQ(report.total().jobs_expected(), 2556);
  EXPECT_EQ(report.rows_size(), 14);
  v1::ListOverdueLoansResponse overdue;
  ASSERT_TRUE(
      Call(&Stub::ListOverdueLoans, "officer", v1::ListOverdueLoansRequest(), &overdue).ok());
  EXPECT_EQ(overdue.as_of(), "2021-03-31");
  ASSERT_GT(overdue.loans_size(), 0);
  EXPECT_GE(overdue.loans(0).days_past_due(),
            overdue.loans(overdue.loans_size() - 1).days_past_due());
  EXPECT_EQ(
      Call(&Stub::ListOverdueLoans, "portal", v1::ListOverdueLoansRequest(), &overdue).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  // A quarter, and a bad period.
  v1::GetProgrammeReportRequest quarter;
  quarter.set_year(2020);
  quarter.set_quarter(2);
  ASSERT_TRUE(Call(&Stub::GetProgrammeReport, "officer", quarter, &report).ok());
  EXPECT_EQ(report.to(), "2020-06-30");
  quarter.set_month(5);
  EXPECT_EQ(BadFields(Call(&Stub::GetProgrammeReport, "officer", quarter, &report)),
            (std::vector<std::string>{"month"}));
  // The demo's year 2021 is not over (its business date is 2021-03-31): reported up to
  // today. A period after today is refused, naming the request's own field.
  v1::GetProgrammeReportRequest current;
  current.set_year(2021);
  ASSERT_TRUE(Call(&Stub::GetProgrammeReport, "officer", current, &report).ok());
  EXPECT_EQ(report.from(), "2021-01-01");
  EXPECT_EQ(report.to(), "2021-03-31");
  current.set_quarter(2);
  EXPECT_EQ(BadFields(Call(&Stub::GetProgrammeReport, "officer", current, &report)),
            (std::vector<std::string>{"quarter"}));
  current.clear_quarter();
  current.set_year(2022);
  EXPECT_EQ(BadFields(Call(&Stub::GetProgrammeReport, "officer", current, &report)),
            (std::vector<std::string>{"year"}));
  v1::GetProgrammeReportRequest dated;
  dated.set_from("2021-04-01");
  dated.set_to("2021-04-30");
  EXPECT_EQ(BadFields(Call(&Stub::GetProgrammeReport, "officer", dated, &report)),
            (std::vector<std::string>{"from"}));
  // Restarting with --demo on a ledger that has entries loads nothing.
  server_->Stop();
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(dir_.Sub("demo"), {"--demo"}));
  EXPECT_NE(server_->startup().find("demo book not loaded"), std::string::npos)
      << server_->startup();
}

}  // namespace
}  // namespace gongdai
