// gongdai application ... and gongdai loan ...: from the application to the last
// repayment.
#include <cstdint>
#include <limits>

#include "client/cli.h"
#include "client/render.h"
#include "client/table.h"

namespace gongdai::client {
namespace {

using Stub = v1::LoanLedger::Stub;

// "approvals: 1 of 2".
std::string Approvals(const v1::Loan& loan) {
  return "approvals: " + std::to_string(loan.approvals_size()) + " of " +
         std::to_string(loan.approvals_required());
}

// "; loan L000001 is approved" and the like.
std::string StatusTail(const v1::Loan& loan) {
  return "; loan " + loan.loan_id() + " is " + LoanStatusWords().Name(loan.status());
}

void PrintLoanResponse(Cli& cli, const std::string& subject, const std::string& tail,
                       const v1::LoanResponse& response) {
  cli.Print(response, [&] {
    return Confirmation(subject, response.entry(), tail) + "\n" + RenderLoan(response.loan());
  });
}

// "刘秀英,360802198506121024,配偶" (the relationship may be left out; a full-width comma
// works too).
std::optional<v1::Guarantor> ParseGuarantor(const std::string& text) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ',') {
      parts.emplace_back();
    } else if (text.compare(i, 3, "\xEF\xBC\x8C") == 0) {  // U+FF0C FULLWIDTH COMMA
      parts.emplace_back();
      i += 2;
    } else {
      parts.back().push_back(text[i]);
    }
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
    return std::nullopt;
  v1::Guarantor g;
  g.set_name(parts[0]);
  g.set_national_id(parts[1]);
  if (parts.size() == 3) g.set_relationship(parts[2]);
  return g;
}

struct LoanReason {
  WriteFlags write;
  std::string loan_id;
  std::string reason;
};

// approve / reject / withdraw / revoke: a loan id, a note or reason, a write.
template <typename Request>
void AddDecisionCommand(Cli& cli, CLI::App& noun, const std::string& name,
                        const std::string& description, const std::string& example,
                        bool reason_required, Session::Method<Request, v1::LoanResponse> method,
                        void (Request::*set_text)(const std::string&), const std::string& what) {
  auto f = std::make_shared<LoanReason>();
  CLI::App* c = cli.Command(noun, name, description, example);
  c->add_option("loan-id", f->loan_id, "the application, such as L000001")->required();
  if (reason_required) {
    c->add_option("--reason", f->reason, "why, for the record")->required();
  } else {
    c->add_option("--note", f->reason, "a note for the record");
  }
  cli.AddWriteFlags(c, f->write);
  cli.Action(c, [&cli, f, method, set_text, what] {
    Request request;
    request.set_loan_id(f->loan_id);
    (request.*set_text)(f->reason);
    v1::LoanResponse response;
    cli.Write(method, f->write, request, &response);
    const std::string tail = what == "Approval"
                                 ? "; " + Approvals(response.loan()) + StatusTail(response.loan())
                                 : StatusTail(response.loan());
    PrintLoanResponse(cli, what + " of " + response.loan().loan_id(), tail, response);
  });
}

void AddApplicationSubmit(Cli& cli, CLI::App& noun) {
  struct Flags {
    WriteFlags write;
    std::string borrower_id;
    std::string product_id;
    std::string amount;
    int term = 0;
    int method = 0;
    std::string purpose;
    int jobs = 0;
    std::vector<std::string> guarantors;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* c = cli.Command(
      noun, "submit", "submit a loan application for a borrower (officer, supervisor)",
      "gongdai application submit --borrower B000001 --product fund-2020 --amount 50000 \\\n"
      "      --term 12 --method monthly --purpose 购置冷库设备 --jobs 3 \\\n"
      "      --guarantor '王建国,360802198807152019,配偶'");
  c->add_option("--borrower", f->borrower_id, "the borrower, such as B000001")->required();
  c->add_option("--product", f->product_id,
                "the loan product, such as fund-2020 (see gongdai product list)")
      ->required();
  cli.AddAmount(c, "--amount", f->amount, "the amount asked for")->required();
  c->add_option("--term", f->term, "term in months")
      ->required()
      ->check(Cli::WholeNumber(1, std::numeric_limits<int32_t>::max()));
  cli.AddWord(c, "--method", f->method, MethodWords(),
              "repayment method: equal principal every month, or all at the end")
      ->required();
  c->add_option("--purpose", f->purpose, "what the money is for")->required();
  c->add_option("--jobs", f->jobs, "jobs the business expects to create")
      ->check(Cli::WholeNumber(0, std::numeric_limits<int32_t>::max()));
  c->add_option("--guarantor", f->guarantors,
                "a guarantor as 'name,national-id,relationship' (repeatable)")
      ->type_name("NAME,ID,RELATION")
      ->expected(1)
      ->take_all();
  cli.AddWriteFlags(c, f->write);
  cli.Action(c, [&cli, f] {
    v1::SubmitApplicationRequest request;
    request.set_borrower_id(f->borrower_id);
    request.set_product_id(f->product_id);
    request.set_amount(f->amount);
    request.set_term_months(f->term);
    request.set_method(static_cast<v1::RepaymentMethod>(f->method));
    request.set_purpose(f->purpose);
    request.set_jobs_expected(f->jobs);
    for (const std::string& text : f->guarantors) {
      std::optional<v1::Guarantor> g = ParseGuarantor(text);
      if (!g.has_value()) {
        cli.UsageError("--guarantor: \"" + text +
                       "\" must be name,national-id or name,national-id,relationship");
      }
      *request.add_guarantors() = *std::move(g);
    }
    v1::LoanResponse response;
    cli.Write(&Stub::SubmitApplication, f->write, request, &response);
    const v1::Loan& loan = response.loan();
    PrintLoanResponse(cli,
                      "Application " + loan.loan_id() + " of " + loan.borrower_id() + " for " +
                          FormatAmount(loan.amount()),
                      "; it needs " + std::to_string(loan.approvals_required()) +
                          (loan.approvals_required() == 1 ? " approval" : " approvals"),
                      response);
  });
}

}  // namespace

void AddApplicationCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun = cli.Command(app, "application",
                               "loan applications: submit, approve, reject, withdraw, revoke",
                               "gongdai --as approver application approve L000001 --note 材料齐全");
  noun->require_subcommand(1);
  AddApplicationSubmit(cli, *noun);
  AddDecisionCommand<v1::ApproveApplicationRequest>(
      cli, *noun, "approve",
      "approve an application; never your own (approver, supervisor). Loans above the product's "
      "dual-approval amount need two approvers",
      "gongdai --as approver application approve L000001 --note 材料齐全", false,
      &Stub::ApproveApplication, &v1::ApproveApplicationRequest::set_note, "Approval");
  AddDecisionCommand<v1::RejectApplicationRequest>(
      cli, *noun, "reject", "reject an application (approver, supervisor)",
      "gongdai --as approver application reject L000001 --reason 经营计划不完整", true,
      &Stub::RejectApplication, &v1::RejectApplicationRequest::set_reason, "Rejection");
  AddDecisionCommand<v1::WithdrawApplicationRequest>(
      cli, *noun, "withdraw", "withdraw an application not yet disbursed (officer, supervisor)",
      "gongdai application withdraw L000001 --reason 借款人撤回申请", true,
      &Stub::WithdrawApplication, &v1::WithdrawApplicationRequest::set_reason, "Withdrawal");
  AddDecisionCommand<v1::RevokeApprovalRequest>(
      cli, *noun, "revoke",
      "revoke the approvals of a loan not yet disbursed (approver, supervisor)",
      "gongdai --as approver application revoke L000001 --reason 担保人撤保", true,
      &Stub::RevokeApproval, &v1::RevokeApprovalRequest::set_reason, "Revocation of the approvals");
}

void AddLoanCommands(Cli& cli, CLI::App& app) {
  CLI::App* noun = cli.Command(app, "loan",
                               "loans: disburse, repay, show, list, overdue, statement, write-off, "
                               "recovery, accrue-subsidy, jobs",
                               "gongdai loan statement L000001 --as-of 2020-09-30");
  noun->require_subcommand(1);

  {
    struct Flags {
      WriteFlags write;
      std::string loan_id;
      std::string amount;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(*noun, "disburse",
                              "pay out an approved loan and fix its schedule (cashier, supervisor)",
                              "gongdai --as cashier loan disburse L000001 --amount 50000");
    c->add_option("loan-id", f->loan_id, "the approved loan, such as L000001")->required();
    cli.AddAmount(c, "--amount", f->amount,
                  "confirms the amount: it must equal the approved amount");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::DisburseLoanRequest request;
      request.set_loan_id(f->loan_id);
      request.set_amount(f->amount);
      v1::LoanResponse response;
      cli.Write(&Stub::DisburseLoan, f->write, request, &response);
      const v1::Loan& loan = response.loan();
      std::string tail = "; " + std::to_string(loan.schedule_size()) +
                         (loan.schedule_size() == 1 ? " installment" : " installments");
      if (!loan.schedule().empty()) tail += ", the first due " + loan.schedule(0).due_date();
      PrintLoanResponse(cli,
                        "Disbursement of " + FormatAmount(loan.amount()) + " on " + loan.loan_id(),
                        tail, response);
    });
  }

  // repay and recovery: money coming back.
  const auto add_payment = [&](const std::string& name, const std::string& description,
                               const std::string& example, bool recovery) {
    struct Flags {
      WriteFlags write;
      std::string loan_id;
      std::string amount;
      int channel = v1::PAYMENT_CHANNEL_BANK_TRANSFER;
      std::string reference;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(*noun, name, description, example);
    c->add_option("loan-id", f->loan_id, "the loan, such as L000001")->required();
    cli.AddAmount(c, "--amount", f->amount, recovery ? "the amount recovered" : "the amount repaid")
        ->required();
    cli.AddWord(c, "--channel", f->channel, ChannelWords(),
                "how the money came (default bank-transfer)");
    c->add_option("--reference", f->reference, "the bank's or the receipt's reference");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f, recovery] {
      v1::LoanResponse response;
      if (recovery) {
        v1::RecordRecoveryRequest request;
        request.set_loan_id(f->loan_id);
        request.set_amount(f->amount);
        request.set_channel(static_cast<v1::PaymentChannel>(f->channel));
        request.set_reference(f->reference);
        cli.Write(&Stub::RecordRecovery, f->write, request, &response);
      } else {
        v1::RecordRepaymentRequest request;
        request.set_loan_id(f->loan_id);
        request.set_amount(f->amount);
        request.set_channel(static_cast<v1::PaymentChannel>(f->channel));
        request.set_reference(f->reference);
        cli.Write(&Stub::RecordRepayment, f->write, request, &response);
      }
      const v1::Loan& loan = response.loan();
      std::string tail = recovery ? "; recovered so far " + FormatAmount(loan.recovered()) +
                                        " of " + FormatAmount(loan.written_off()) + " written off"
                                  : "; outstanding " + FormatAmount(loan.principal_outstanding());
      if (!recovery && loan.status() == v1::ApiLoanStatus::CLOSED)
        tail += ", the loan is paid off and closed";
      PrintLoanResponse(cli,
                        std::string(recovery ? "Recovery" : "Repayment") + " of " +
                            FormatAmount(f->amount) + " on " + loan.loan_id(),
                        tail, response);
    });
  };
  add_payment(
      "repay", "record a repayment; it pays the oldest installment first (cashier, supervisor)",
      "gongdai --as cashier loan repay L000001 --amount 1500 --channel cash --reference 收据0042",
      false);

  {
    auto id = std::make_shared<std::string>();
    CLI::App* c = cli.Command(*noun, "show", "a loan: its terms, decisions, position and schedule",
                              "gongdai loan show L000001");
    c->add_option("loan-id", *id, "the loan, such as L000001")->required();
    cli.Action(c, [&cli, id] {
      v1::GetLoanRequest request;
      request.set_loan_id(*id);
      v1::Loan loan;
      cli.Read(&Stub::GetLoan, request, &loan);
      cli.Print(loan, [&] { return RenderLoan(loan); });
    });
  }

  {
    struct Flags {
      int status = 0;
      std::string borrower_id;
      std::string product_id;
      std::string county;
      std::string from;
      std::string to;
      std::string view;
      PageFlags page;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, "list", "loans and applications, with filters",
        "gongdai loan list --status active --county 吉州区 --disbursed-from 2020-01-01 --all");
    cli.AddWord(c, "--status", f->status, LoanStatusWords(), "only loans with this status");
    c->add_option("--borrower", f->borrower_id, "only this borrower's loans, such as B000001");
    c->add_option("--product", f->product_id, "only loans of this product");
    c->add_option("--county", f->county, "only loans of this county or district");
    cli.AddDate(c, "--disbursed-from", f->from, "only loans disbursed on or after this date");
    cli.AddDate(c, "--disbursed-to", f->to, "only loans disbursed on or before this date");
    c->add_option("--view", f->view,
                  "basic: each loan without its schedule; full: with it, for --json (default: "
                  "basic for the table, full with --json)")
        ->check(CLI::IsMember({"basic", "full"}));
    cli.AddPageFlags(c, f->page);
    cli.Action(c, [&cli, f] {
      // The table shows no schedule, so it asks for none; JSON keeps the whole loan
      // unless asked otherwise.
      if (f->view == "full" && !cli.json())
        cli.UsageError("--view full: the table shows no schedules; use it with --json");
      v1::ListLoansRequest request;
      const bool basic = f->view.empty() ? !cli.json() : f->view == "basic";
      request.set_view(basic ? v1::LOAN_VIEW_BASIC : v1::LOAN_VIEW_FULL);
      request.set_status(static_cast<v1::ApiLoanStatus::Value>(f->status));
      request.set_borrower_id(f->borrower_id);
      request.set_product_id(f->product_id);
      request.set_county(f->county);
      request.set_disbursed_from(f->from);
      request.set_disbursed_to(f->to);
      v1::ListLoansResponse response;
      ReadPages(cli, &Stub::ListLoans, request, f->page, &response,
                [](v1::ListLoansResponse& r) { return r.mutable_loans(); });
      cli.Print(response, [&] {
        if (response.loans().empty()) return std::string("No loans match.\n");
        return RenderLoans(response.loans()) + MorePages(response.next_page_token());
      });
    });
  }

  {
    struct Flags {
      std::string loan_id;
      std::string as_of;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c =
        cli.Command(*noun, "statement",
                    "a loan's statement: each installment paid, unpaid or overdue, and every entry",
                    "gongdai loan statement L000001 --as-of 2020-09-30");
    c->add_option("loan-id", f->loan_id, "the loan, such as L000001")->required();
    cli.AddDate(c, "--as-of", f->as_of, "the statement's date (default: today's business date)");
    cli.Action(c, [&cli, f] {
      v1::GetLoanStatementRequest request;
      request.set_loan_id(f->loan_id);
      request.set_as_of(f->as_of);
      v1::LoanStatement statement;
      cli.Read(&Stub::GetLoanStatement, request, &statement);
      cli.Print(statement, [&] {
        // The borrower's name makes the statement readable; it is not worth failing for.
        v1::GetBorrowerRequest get;
        get.set_borrower_id(statement.loan().borrower_id());
        v1::Borrower borrower;
        const bool named = cli.TryRead(&Stub::GetBorrower, get, &borrower);
        return RenderStatement(statement, named ? borrower.name() : "");
      });
    });
  }

  {
    struct Flags {
      std::string as_of;
      bool csv = false;
      PageFlags page;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c =
        cli.Command(*noun, "overdue", "loans with overdue installments, most days past due first",
                    "gongdai loan overdue --as-of 2020-09-30 --csv > follow-up.csv");
    cli.AddDate(c, "--as-of", f->as_of, "the date (default: today's business date)");
    c->add_flag("--csv", f->csv,
                "print CSV for a spreadsheet (UTF-8 with BOM) instead of a table: every page");
    cli.AddPageFlags(c, f->page);
    cli.Action(c, [&cli, f] {
      v1::ListOverdueLoansRequest request;
      request.set_as_of(f->as_of);
      // A spreadsheet of the follow-up list holds all of it. Each page of this list reads
      // every loan again (its order is not the order loans are kept in), so a whole list
      // is read in pages of the largest size.
      if (f->csv) f->page.all = true;
      if (f->page.all && f->page.page_size == 0) f->page.page_size = kPageSizeLargest;
      v1::ListOverdueLoansResponse response;
      // Every page as of the first page's date, should the business day turn meanwhile.
      ReadPages(
          cli, &Stub::ListOverdueLoans, request, f->page, &response,
          [](v1::ListOverdueLoansResponse& r) { return r.mutable_loans(); },
          [](const v1::ListOverdueLoansResponse& first, v1::ListOverdueLoansRequest& next) {
            next.set_as_of(first.as_of());
          });
      cli.Print(response, [&] {
        if (f->csv) return RenderOverdueLoansCsv(response);
        return RenderOverdueLoans(response) + MorePages(response.next_page_token());
      });
    });
  }

  {
    struct Flags {
      WriteFlags write;
      std::string loan_id;
      std::string reason;
      bool yes = false;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, "write-off",
        "write off a loan's whole outstanding principal; asks for confirmation (supervisor)",
        "gongdai --as supervisor loan write-off L000001 --reason '逾期超过一年，催收无果' --yes");
    c->add_option("loan-id", f->loan_id, "the loan, such as L000001")->required();
    c->add_option("--reason", f->reason, "why, for the record")->required();
    c->add_flag("--yes", f->yes, "do not ask for confirmation (for scripts)");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      cli.NeedsConfirmation("loan write-off", f->yes);
      cli.Confirm(f->yes, "write off loan " + f->loan_id, [&] {
        v1::GetLoanRequest get;
        get.set_loan_id(f->loan_id);
        v1::Loan loan;
        if (!cli.TryRead(&Stub::GetLoan, get, &loan)) return "Write off loan " + f->loan_id + ".\n";
        return "Write off loan " + loan.loan_id() + " of " + loan.borrower_id() + " (" +
               loan.county() + "): outstanding principal " +
               FormatAmount(loan.principal_outstanding()) + " becomes a loss.\n";
      });
      v1::WriteOffLoanRequest request;
      request.set_loan_id(f->loan_id);
      request.set_reason(f->reason);
      v1::LoanResponse response;
      cli.Write(&Stub::WriteOffLoan, f->write, request, &response);
      PrintLoanResponse(cli,
                        "Write-off of " + FormatAmount(response.loan().written_off()) + " on " +
                            response.loan().loan_id(),
                        StatusTail(response.loan()), response);
    });
  }

  add_payment("recovery", "record money recovered on a written-off loan (cashier, supervisor)",
              "gongdai --as cashier loan recovery L000001 --amount 2000 --channel cash", true);

  {
    struct Flags {
      WriteFlags write;
      std::string loan_id;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c =
        cli.Command(*noun, "accrue-subsidy",
                    "post the interest subsidy of a partner-bank loan's complete months (cashier, "
                    "supervisor)",
                    "gongdai --as cashier loan accrue-subsidy L000002");
    c->add_option("loan-id", f->loan_id, "the partner-bank loan, such as L000002")->required();
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::AccrueSubsidyRequest request;
      request.set_loan_id(f->loan_id);
      v1::LoanResponse response;
      cli.Write(&Stub::AccrueSubsidy, f->write, request, &response);
      PrintLoanResponse(
          cli, "Subsidy accrual on " + response.loan().loan_id(),
          "; subsidy accrued so far " + FormatAmount(response.loan().subsidy_accrued()), response);
    });
  }

  {
    struct Flags {
      WriteFlags write;
      std::string loan_id;
      int created = 0;
      std::string note;
    };
    auto f = std::make_shared<Flags>();
    CLI::App* c = cli.Command(
        *noun, "jobs", "report the jobs a loan's business actually created (officer, supervisor)",
        "gongdai loan jobs L000001 --created 5 --note 新招店员3人、厨师2人");
    c->add_option("loan-id", f->loan_id, "the loan, such as L000001")->required();
    c->add_option("--created", f->created, "jobs created")
        ->required()
        ->check(Cli::WholeNumber(0, std::numeric_limits<int32_t>::max()));
    c->add_option("--note", f->note, "a note for the record");
    cli.AddWriteFlags(c, f->write);
    cli.Action(c, [&cli, f] {
      v1::ReportJobsRequest request;
      request.set_loan_id(f->loan_id);
      request.set_jobs_created(f->created);
      request.set_note(f->note);
      v1::LoanResponse response;
      cli.Write(&Stub::ReportJobs, f->write, request, &response);
      PrintLoanResponse(cli, "Jobs report on " + response.loan().loan_id(),
                        "; " + std::to_string(response.loan().jobs_reported()) +
                            " jobs reported, " + std::to_string(response.loan().jobs_expected()) +
                            " expected",
                        response);
    });
  }
}

}  // namespace gongdai::client
