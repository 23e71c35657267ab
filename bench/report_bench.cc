// gongdai-report-bench: how long the programme report takes on a large book.
//
// Builds, with the engine's own commands, a book of --loans loans (default 100,000)
// disbursed through 2020 across 13 counties, three categories and both funding kinds,
// with repayments through the first quarter of 2021, then times (median of --repeat runs):
// the yearly programme report for 2020 (total only, and by county), the portfolio as of
// the book's date, and the list of overdue loans.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "bench/book.h"
#include "engine/ledger.h"

namespace gongdai::bench {
namespace {

using Clock = std::chrono::steady_clock;

bool Wave(Ledger& ledger, size_t count, const std::function<Command(size_t)>& make,
          const std::function<void(size_t, const CommandResult&)>& after) {
  constexpr size_t kWindow = 4096;
  for (size_t start = 0; start < count; start += kWindow) {
    const size_t end = std::min(count, start + kWindow);
    std::vector<std::future<CommandResult>> results;
    for (size_t i = start; i < end; ++i) {
      auto promise = std::make_shared<std::promise<CommandResult>>();
      results.push_back(promise->get_future());
      ledger.Submit(make(i), [promise](CommandResult r) { promise->set_value(std::move(r)); });
    }
    for (size_t i = start; i < end; ++i) {
      CommandResult result = results[i - start].get();
      if (!result.status.ok()) {
        std::fprintf(stderr, "command %zu refused: %s\n", i,
                     std::string(result.status.message()).c_str());
        return false;
      }
      after(i, result);
    }
  }
  return true;
}

bool Build(Ledger& ledger, size_t loans) {
  const Date start = *ParseDate("2020-01-02", "d");
  const v1::Actor officer = BookActor("officer.a", "officer"),
                  approver = BookActor("approver.a", "approver"),
                  cashier = BookActor("cashier.a", "cashier"),
                  supervisor = BookActor("supervisor.a", "supervisor");
  auto must = [](const CommandResult& r) {
    if (!r.status.ok())
      std::fprintf(stderr, "refused: %s\n", std::string(r.status.message()).c_str());
    return r.status.ok();
  };
  for (bool bank : {false, true}) {
    v1::Event e;
    e.mutable_product_defined()->set_product_id(bank ? "bank" : "fund");
    *e.mutable_product_defined()->mutable_terms() = BookTerms(bank, 24);
    if (!must(ledger.SubmitAndWait(MakeCommand(bank ? "p-bank" : "p-fund", supervisor, start, e))))
      return false;
  }
  // Enough in the fund for every union-fund loan: contributions of 100 million yuan each.
  for (size_t i = 0; i * 10'000'000'000 < loans * 11'000'000; ++i) {
    v1::Event fund;
    fund.mutable_fund_contributed()->set_amount_fen(10'000'000'000);
    fund.mutable_fund_contributed()->set_source("bench");
    if (!must(ledger.SubmitAndWait(MakeCommand("fund-" + std::to_string(i), cashier, start, fund))))
      return false;
  }
  auto day_of = [&](size_t i) { return start.PlusDays(static_cast<int32_t>(i % 330)); };
  std::vector<std::string> borrowers(loans), ids(loans);
  bool ok = Wave(
      ledger, loans,
      [&](size_t i) {
        return MakeCommand("b" + std::to_string(i), officer, day_of(i), BorrowerRegistration(i));
      },
      [&](size_t i, const CommandResult& r) {
        borrowers[i] = r.entry.event().borrower_registered().borrower_id();
      });
  ok = ok && Wave(
                 ledger, loans,
                 [&](size_t i) {
                   v1::Event e;
                   v1::ApplicationSubmitted* a = e.mutable_application_submitted();
                   a->set_borrower_id(borrowers[i]);
                   a->set_product_id(i % 2 ? "bank" : "fund");
                   a->set_amount_fen(LoanAmountFen(i));
                   a->set_term_months(12);
                   a->set_method(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
                   a->set_purpose("扩大经营");
                   a->set_jobs_expected(static_cast<int32_t>(1 + i % 9));
                   return MakeCommand("s" + std::to_string(i), officer, day_of(i), e);
                 },
                 [&](size_t i, const CommandResult& r) {
                   ids[i] = r.entry.event().application_submitted().loan_id();
                 });
  ok = ok && Wave(
                 ledger, loans,
                 [&](size_t i) {
                   v1::Event e;
                   e.mutable_approval_granted()->set_loan_id(ids[i]);
                   return MakeCommand("a" + std::to_string(i), approver, day_of(i), e);
                 },
                 [](size_t, const CommandResult&) {});
  ok = ok && Wave(
                 ledger, loans,
                 [&](size_t i) {
                   v1::Event e;
                   e.mutable_loan_disbursed()->set_loan_id(ids[i]);
                   return MakeCommand("d" + std::to_string(i), cashier, day_of(i).PlusDays(1), e);
                 },
                 [](size_t, const CommandResult&) {});
  // Three monthly repayments each; every seventh borrower pays nothing after the first.
  for (int k = 1; k <= 3 && ok; ++k) {
    std::vector<size_t> paying;
    for (size_t i = 0; i < loans; ++i) {
      if (k == 1 || i % 7 != 0) paying.push_back(i);
    }
    ok = Wave(
        ledger, paying.size(),
        [&](size_t j) {
          const size_t i = paying[j];
          const int64_t amount = LoanAmountFen(i) / 12;
          v1::Event e;
          e.mutable_repayment_recorded()->set_loan_id(ids[i]);
          e.mutable_repayment_recorded()->set_amount_fen(amount);
          e.mutable_repayment_recorded()->set_channel(v1::PAYMENT_CHANNEL_AUTO_DEBIT);
          return MakeCommand("r" + std::to_string(k) + "-" + std::to_string(i), cashier,
                             day_of(i).PlusDays(1).PlusMonthsClamped(k), e);
        },
        [](size_t, const CommandResult&) {});
  }
  return ok;
}

// The median of `repeat` runs of a query, or the first run's failure.
absl::StatusOr<double> MedianMs(int repeat, const std::function<absl::Status()>& run) {
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const Clock::time_point start = Clock::now();
    if (absl::Status status = run(); !status.ok()) return status;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app{"gongdai-report-bench: the programme report on a large book"};
  size_t loans = 100'000;
  int repeat = 5;
  std::string dir = std::filesystem::temp_directory_path().string();
  bool smoke = false;
  app.add_option("--loans", loans, "loans in the book (default 100,000)");
  app.add_option("--repeat", repeat, "runs of each query; the median is shown (default 5)");
  app.add_option("--dir", dir, "where to build the scratch database (removed at the end)");
  app.add_flag("--smoke", smoke, "1,000 loans, one run");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    loans = 1000;
    repeat = 1;
  }
  const std::string path = dir + "/gongdai-report-bench-" + std::to_string(::getpid());
  int code = 0;
  {
    LedgerOptions options;
    options.batch_commands_max = 2048;
    options.queue_commands_max = 1 << 16;
    const Date today = *ParseDate("2021-03-31", "d");
    options.business_date_today = [today] { return today; };
    absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(path, options);
    if (!ledger.ok()) {
      std::fprintf(stderr, "%s\n", std::string(ledger.status().message()).c_str());
      return 1;
    }
    const Clock::time_point start = Clock::now();
    if (!Build(**ledger, loans)) {
      code = 1;
    } else {
      std::printf("built %zu loans, %llu entries in %.1f s\n", loans,
                  static_cast<unsigned long long>((*ledger)->Head().sequence),
                  std::chrono::duration<double>(Clock::now() - start).count());
      int64_t disbursed = 0;
      const absl::StatusOr<double> total_ms = MedianMs(repeat, [&] {
        absl::StatusOr<ProgrammeReport> r =
            (*ledger)->GetProgrammeReport({"2020-01-01", "2020-12-31", {}});
        if (r.ok()) disbursed = r->total.flows.loans_disbursed();
        return r.status();
      });
      const absl::StatusOr<double> county_ms = MedianMs(repeat, [&] {
        return (*ledger)
            ->GetProgrammeReport({"2020-01-01", "2020-12-31", {ReportDimension::kCounty}})
            .status();
      });
      const absl::StatusOr<double> portfolio_ms =
          MedianMs(repeat, [&] { return (*ledger)->GetPortfolio("2021-03-31").status(); });
      const absl::StatusOr<double> overdue_ms = MedianMs(repeat, [&] {
        // The first page of the largest size: every loan is still read and sorted.
        return (*ledger)->ListOverdueLoans(OverdueQuery{"2021-03-31", 500, ""}).status();
      });
      std::printf("%-44s %10s\n", "query (median of runs)", "ms");
      const auto line = [&code](const char* query, const absl::StatusOr<double>& ms) {
        if (ms.ok()) {
          std::printf("%-44s %10.1f\n", query, *ms);
        } else {  // a failure is not a timing
          std::printf("%-44s %10s\n", query, "failed");
          std::fprintf(stderr, "%s: %s\n", query, ms.status().ToString().c_str());
          code = 1;
        }
      };
      line("programme report, year 2020, total", total_ms);
      line("programme report, year 2020, by county", county_ms);
      line("portfolio (PAR30/PAR90, aging) as of date", portfolio_ms);
      line("overdue loans as of date", overdue_ms);
      if (disbursed != static_cast<int64_t>(loans)) {
        std::fprintf(stderr, "the report counts %lld loans disbursed, expected %zu\n",
                     static_cast<long long>(disbursed), loans);
        code = 1;
      }
    }
  }
  std::filesystem::remove_all(path);
  return code;
}

}  // namespace
}  // namespace gongdai::bench

int main(int argc, char** argv) { return gongdai::bench::Main(argc, argv); }
