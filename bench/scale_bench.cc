// gongdai-scale-bench: the ledger on a book of ten million entries against a small one.
//
// It builds, with the engine's own commands, a book of --probe-loans loans (the small
// book: about 100,000 entries), measures it, grows the same database to --loans loans
// (default 300,000 with 30 monthly repayments each: about 10.2 million entries) and
// measures it again. Before each measurement the book settles (Storage::Settle), as a book
// grown over years is settled. Each measurement runs in a fresh process (this program with
// --measure), so that memory and open time are those of a server starting on the book:
//   open:       Ledger::Open of the existing database (no replay);
//   memory:     resident set after opening, and its peak after all the reads and writes;
//   reads:      2,000 loan statements of random loans on a cold page cache (the book's
//               files are dropped from it before the process opens the book), 2,000
//               loans, the same statements again warm; then 2,000 statements of other
//               loans, cold (the book dropped again and reopened) and warm; p50/p99;
//   report:     the yearly programme report for 2021, total and by county, median of 5;
//   writes:     repayments of 1.00 yuan on 3,000 random loans for --seconds, 1,024 in
//               flight, the engine's default batch and queue: entries/s, p50/p99.
// The two books' first measurements lie the whole build apart (12-19 minutes), over which
// the machine's speed drifts. So the repayments are measured --write-rounds - 1 times more,
// the small book (a fresh copy of it as built) and the large one in turn, each in a fresh
// process that opens the book with its files dropped from the page cache; the write ratio
// is that of the two books' medians.
// Then it prints both books side by side with the ratios and the targets.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/book.h"
#include "engine/ledger.h"
#include "engine/storage.h"

namespace gongdai::bench {
namespace {

using Clock = std::chrono::steady_clock;

const Date kToday = *ParseDate("2023-12-31", "today");
const Date kFirstDay = *ParseDate("2020-01-02", "first");
constexpr int kTermMonths = 36;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// --batch-read-threads: the writer's read helpers, in the build and in every measurement.
size_t batch_read_threads = LedgerOptions().batch_read_threads;

LedgerOptions FixedDayOptions() {
  LedgerOptions options;
  options.batch_read_threads = batch_read_threads;
  options.business_date_today = [] { return kToday; };
  return options;
}

std::string LoanId(size_t number) {
  std::string digits = std::to_string(number);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return "L" + digits;
}

Date DisbursedOn(size_t i) { return kFirstDay.PlusDays(static_cast<int32_t>(i % 330) + 1); }

// Loans [from, to): borrower, application, approval, disbursement and `repayments`
// monthly repayments each; with from == 0 also the two products and the union fund.
bool Build(Ledger& ledger, size_t from, size_t to, size_t total_loans, int repayments) {
  const v1::Actor officer = BookActor("officer.a", "officer"),
                  approver = BookActor("approver.a", "approver"),
                  cashier = BookActor("cashier.a", "cashier"),
                  supervisor = BookActor("supervisor.a", "supervisor");
  Pipeline pipeline(ledger, 16'384, 8'192);
  const Clock::time_point start = Clock::now();
  const uint64_t first_entry = ledger.Head().sequence;
  auto progress = [&](const char* phase) {
    const bool ok = pipeline.Wait();
    const uint64_t entries = ledger.Head().sequence;
    std::printf("  %-28s %10llu entries in the book, %8.0f entries/s so far\n", phase,
                static_cast<unsigned long long>(entries),
                static_cast<double>(entries - first_entry) / Seconds(start));
    std::fflush(stdout);
    return ok;
  };
  if (from == 0) {
    for (bool bank : {false, true}) {
      v1::Event e;
      e.mutable_product_defined()->set_product_id(bank ? "bank" : "fund");
      *e.mutable_product_defined()->mutable_terms() = BookTerms(bank, kTermMonths);
      pipeline.Submit(MakeCommand(bank ? "p-bank" : "p-fund", supervisor, kFirstDay, e));
    }
    for (size_t i = 0; i * 10'000'000'000 < total_loans * 11'000'000; ++i) {
      v1::Event fund;
      fund.mutable_fund_contributed()->set_amount_fen(10'000'000'000);
      fund.mutable_fund_contributed()->set_source("bench");
      pipeline.Submit(MakeCommand("fund-" + std::to_string(i), cashier, kFirstDay, fund));
    }
    if (!progress("products and fund")) return false;
  }
  const size_t count = to - from;
  std::vector<std::string> borrowers(count), loans(count);
  for (size_t i = from; i < to; ++i) {
    pipeline.Submit(MakeCommand("b" + std::to_string(i), officer, DisbursedOn(i).PlusDays(-1),
                                BorrowerRegistration(i)),
                    [&borrowers, j = i - from](const CommandResult& r) {
                      borrowers[j] = r.entry.event().borrower_registered().borrower_id();
                    });
  }
  if (!progress("borrowers registered")) return false;
  for (size_t i = from; i < to; ++i) {
    v1::Event e;
    v1::ApplicationSubmitted* a = e.mutable_application_submitted();
    a->set_borrower_id(borrowers[i - from]);
    a->set_product_id(i % 2 ? "bank" : "fund");
    a->set_amount_fen(LoanAmountFen(i));
    a->set_term_months(kTermMonths);
    a->set_method(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
    a->set_purpose("扩大经营");
    a->set_jobs_expected(static_cast<int32_t>(1 + i % 9));
    pipeline.Submit(MakeCommand("s" + std::to_string(i), officer, DisbursedOn(i).PlusDays(-1), e),
                    [&loans, j = i - from](const CommandResult& r) {
                      loans[j] = r.entry.event().application_submitted().loan_id();
                    });
  }
  if (!progress("applications submitted")) return false;
  for (size_t i = from; i < to; ++i) {
    v1::Event e;
    e.mutable_approval_granted()->set_loan_id(loans[i - from]);
    pipeline.Submit(MakeCommand("a" + std::to_string(i), approver, DisbursedOn(i).PlusDays(-1), e));
  }
  for (size_t i = from; i < to; ++i) {
    v1::Event e;
    e.mutable_loan_disbursed()->set_loan_id(loans[i - from]);
    pipeline.Submit(MakeCommand("d" + std::to_string(i), cashier, DisbursedOn(i), e));
  }
  if (!progress("approved and disbursed")) return false;
  // Entries of one loan are submitted in date order, and the writer keeps that order.
  for (int k = 1; k <= repayments; ++k) {
    for (size_t i = from; i < to; ++i) {
      v1::Event e;
      e.mutable_repayment_recorded()->set_loan_id(loans[i - from]);
      e.mutable_repayment_recorded()->set_amount_fen(LoanAmountFen(i) / kTermMonths);
      e.mutable_repayment_recorded()->set_channel(v1::PAYMENT_CHANNEL_AUTO_DEBIT);
      pipeline.Submit(MakeCommand("r" + std::to_string(k) + "-" + std::to_string(i), cashier,
                                  DisbursedOn(i).PlusMonthsClamped(k), e));
    }
    if (k % 10 == 0 || k == repayments) {
      if (!progress(("repayment month " + std::to_string(k)).c_str())) return false;
    }
  }
  return pipeline.Wait();
}

// ---- One measurement, in its own process ------------------------------------------------

long StatusKb(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  }
  return -1;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

int Failed(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), std::string(status.message()).c_str());
  return 1;
}

// MiB of the files under `path` that are in the page cache (mincore over a mapping).
double CachedMb(const std::string& path) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t cached_pages = 0;
  for (const auto& file : std::filesystem::recursive_directory_iterator(path)) {
    if (!file.is_regular_file() || file.file_size() == 0) continue;
    const int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const size_t size = file.file_size();
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) continue;
    std::vector<unsigned char> resident((size + page - 1) / page);
    if (::mincore(map, size, resident.data()) == 0) {
      for (unsigned char r : resident) cached_pages += r & 1;
    }
    ::munmap(map, size);
  }
  return static_cast<double>(cached_pages * page) / (1 << 20);
}

// Drops the files under `path` from the page cache, as after a restart of the machine or
// when other work has pushed the book out: each is synced first, so every page is clean
// and can go. The book must not be open. Returns the MiB still cached, and warns when
// that is more than a trace (a file system that ignores the advice would make the "cold"
// figures warm).
double DropFromPageCache(const std::string& path) {
  for (const auto& file : std::filesystem::recursive_directory_iterator(path)) {
    if (!file.is_regular_file()) continue;
    const int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fdatasync(fd) != 0 || ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
      std::fprintf(stderr, "WARNING: could not drop %s from the page cache: %s\n",
                   file.path().c_str(), std::strerror(errno));
    }
    if (fd >= 0) ::close(fd);
  }
  const double cached_mb = CachedMb(path);
  if (cached_mb > 16) {
    std::fprintf(stderr, "WARNING: %.0f MiB of the book still cached after the drop\n", cached_mb);
  }
  return cached_mb;
}

// Reads the statements of `ids` as of kToday, each timed; false (and a message) on an error.
bool ReadStatements(Ledger& ledger, const std::vector<std::string>& ids, std::vector<double>& us) {
  for (const std::string& id : ids) {
    const Clock::time_point start = Clock::now();
    absl::StatusOr<LoanStatement> statement = ledger.GetLoanStatement(id, kToday.ToString());
    if (!statement.ok()) {
      Failed("statement of " + id, statement.status());
      return false;
    }
    us.push_back(Seconds(start) * 1e6);
  }
  return true;
}

// A book grown over years has long been compacted; one built in minutes can leave RocksDB
// compactions to do (453 MiB in one run), which the first measured reads would share the
// disk and the cores with. Both books are measured at rest. The time printed includes
// opening the storage. A book still busy after 10 minutes is measured anyway, with a
// warning, rather than losing the build.
bool SettleBook(const std::string& path, const LedgerOptions& options) {
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::unique_ptr<Storage>> storage =
      Storage::Open(path, options, OpenMode::kReadWrite);
  if (!storage.ok()) {
    Failed("opening the book to settle it", storage.status());
    return false;
  }
  const absl::Status settled = (*storage)->Settle(std::chrono::minutes(10));
  if (absl::IsDeadlineExceeded(settled)) {
    std::printf("  WARNING: %s; measuring anyway (the first reads meet those compactions)\n",
                std::string(settled.message()).c_str());
    return true;
  }
  if (!settled.ok()) {
    Failed("settling the book", settled);
    return false;
  }
  std::printf("  settled (RocksDB's flushes and compactions done) in %.1f s\n", Seconds(start));
  return true;
}

struct Writes {
  double per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Repayments of 1.00 yuan on 3,000 loans drawn with `seed`, 1,024 in flight, for `seconds`.
std::optional<Writes> Repay(Ledger& ledger, size_t loans, double seconds, uint64_t seed) {
  std::mt19937_64 paying_random(seed);
  std::vector<std::string> paying;
  for (int i = 0; i < 3'000; ++i) paying.push_back(LoanId(1 + paying_random() % loans));
  const v1::Actor cashier = BookActor("cashier.a", "cashier");
  std::vector<double> write_us;
  write_us.reserve(1 << 20);
  size_t written = 0;
  const Clock::time_point writes_start = Clock::now();
  {
    Pipeline pipeline(ledger, 1'024);
    const std::string prefix = "m" + std::to_string(::getpid()) + "-";
    while (Seconds(writes_start) < seconds) {
      v1::Event e;
      e.mutable_repayment_recorded()->set_loan_id(paying[paying_random() % paying.size()]);
      e.mutable_repayment_recorded()->set_amount_fen(100);
      e.mutable_repayment_recorded()->set_channel(v1::PAYMENT_CHANNEL_CASH);
      const Clock::time_point submitted = Clock::now();
      pipeline.Submit(MakeCommand(prefix + std::to_string(written++), cashier, kToday, e),
                      [&write_us, submitted](const CommandResult&) {
                        write_us.push_back(Seconds(submitted) * 1e6);
                      });
    }
    if (!pipeline.Wait()) return std::nullopt;
  }
  return Writes{static_cast<double>(written) / Seconds(writes_start), Percentile(write_us, 0.5),
                Percentile(write_us, 0.99)};
}

// --writes-only: the repayments alone, on the book opened with its files dropped from the
// page cache, for the extra rounds that alternate the two books.
int MeasureWrites(const std::string& path, size_t loans, double seconds) {
  if (!SettleBook(path, FixedDayOptions())) return 1;
  DropFromPageCache(path);
  absl::StatusOr<std::unique_ptr<Ledger>> opened = Ledger::Open(path, FixedDayOptions());
  if (!opened.ok()) return Failed("open", opened.status());
  const uint64_t entries = (*opened)->Head().sequence;
  const std::optional<Writes> writes = Repay(**opened, loans, seconds, entries);
  if (!writes.has_value()) return 1;
  std::printf("measure entries=%llu writes_per_s=%.0f write_p50_us=%.0f write_p99_us=%.0f\n",
              static_cast<unsigned long long>(entries), writes->per_s, writes->p50_us,
              writes->p99_us);
  return 0;
}

int Measure(const std::string& path, size_t loans, double seconds) {
  // At rest, also when a kept book is measured again: the last measurement's repayments
  // leave flushes and compactions that would share the disk with the cold reads.
  if (!SettleBook(path, FixedDayOptions())) return 1;
  const double cached_mb = CachedMb(path);
  const double cached_after_drop_mb = DropFromPageCache(path);
  Clock::time_point start = Clock::now();
  absl::StatusOr<std::unique_ptr<Ledger>> opened = Ledger::Open(path, FixedDayOptions());
  const double open_ms = Seconds(start) * 1e3;
  if (!opened.ok()) return Failed("open", opened.status());
  const long rss_open_kb = StatusKb("VmRSS:");
  const uint64_t entries = (*opened)->Head().sequence;
  // The loans read are the same in every measurement of a book; the loans repaid are drawn
  // afresh each time, seeded by the journal's length (the `entries` of the result line).
  // With one seed for both, every re-measurement of a kept book repaid the same 3,000
  // loans again: their histories grew by hundreds of repayments each, and every repayment
  // on them got slower to apply, run after run.
  auto random_loans = [&](uint64_t seed) {
    std::mt19937_64 random(seed);
    std::vector<std::string> ids;
    for (int i = 0; i < 2'000; ++i) ids.push_back(LoanId(1 + random() % loans));
    return ids;
  };

  // Statements on the cold page cache, then loans (their states, one point read each),
  // then the same statements warm.
  const std::vector<std::string> statement_ids = random_loans(42);
  std::vector<double> statement_us, loan_us, warm_statement_us;
  if (!ReadStatements(**opened, statement_ids, statement_us)) return 1;
  for (const std::string& id : random_loans(7)) {
    start = Clock::now();
    absl::StatusOr<v1::LoanState> loan = (*opened)->GetLoan(id);
    if (!loan.ok()) return Failed("loan " + id, loan.status());
    loan_us.push_back(Seconds(start) * 1e6);
  }
  if (!ReadStatements(**opened, statement_ids, warm_statement_us)) return 1;

  // A second sample: statements of other loans (so that nothing the disk may keep of the
  // first reads helps), on the cold page cache again, then warm.
  opened->reset();
  const double cached_after_second_drop_mb = DropFromPageCache(path);
  opened = Ledger::Open(path, FixedDayOptions());
  if (!opened.ok()) return Failed("open after the second drop", opened.status());
  const std::vector<std::string> other_ids = random_loans(43);
  std::vector<double> other_statement_us, other_warm_statement_us;
  if (!ReadStatements(**opened, other_ids, other_statement_us)) return 1;
  if (!ReadStatements(**opened, other_ids, other_warm_statement_us)) return 1;

  // The report and the repayments on the book opened as a server would, its block cache
  // empty, the page cache as the reads above left it.
  opened->reset();
  opened = Ledger::Open(path, FixedDayOptions());
  if (!opened.ok()) return Failed("reopen", opened.status());
  Ledger& ledger = **opened;

  std::vector<double> report_ms, county_ms;
  for (int i = 0; i < 5; ++i) {
    start = Clock::now();
    absl::StatusOr<ProgrammeReport> report =
        ledger.GetProgrammeReport({"2021-01-01", "2021-12-31", {}});
    if (!report.ok()) return Failed("report", report.status());
    report_ms.push_back(Seconds(start) * 1e3);
    start = Clock::now();
    report = ledger.GetProgrammeReport({"2021-01-01", "2021-12-31", {ReportDimension::kCounty}});
    if (!report.ok()) return Failed("report by county", report.status());
    county_ms.push_back(Seconds(start) * 1e3);
  }

  const std::optional<Writes> writes = Repay(ledger, loans, seconds, entries);
  if (!writes.has_value()) return 1;
  const double rss_mb = StatusKb("VmRSS:") / 1024.0, hwm_mb = StatusKb("VmHWM:") / 1024.0;
  std::printf(
      "measure entries=%llu cached_mb=%.0f cached_after_drop_mb=%.0f "
      "cached_after_second_drop_mb=%.0f open_ms=%.1f "
      "rss_open_mb=%.1f rss_mb=%.1f hwm_mb=%.1f statement_p50_us=%.0f statement_p99_us=%.0f "
      "warm_statement_p50_us=%.0f warm_statement_p99_us=%.0f other_statement_p50_us=%.0f "
      "other_statement_p99_us=%.0f other_warm_statement_p50_us=%.0f "
      "other_warm_statement_p99_us=%.0f loan_p50_us=%.0f loan_p99_us=%.0f report_ms=%.1f "
      "report_county_ms=%.1f writes_per_s=%.0f write_p50_us=%.0f write_p99_us=%.0f\n",
      static_cast<unsigned long long>(entries), cached_mb, cached_after_drop_mb,
      cached_after_second_drop_mb, open_ms, rss_open_kb / 1024.0, rss_mb, hwm_mb,
      Percentile(statement_us, 0.5), Percentile(statement_us, 0.99),
      Percentile(warm_statement_us, 0.5), Percentile(warm_statement_us, 0.99),
      Percentile(other_statement_us, 0.5), Percentile(other_statement_us, 0.99),
      Percentile(other_warm_statement_us, 0.5), Percentile(other_warm_statement_us, 0.99),
      Percentile(loan_us, 0.5), Percentile(loan_us, 0.99), Percentile(report_ms, 0.5),
      Percentile(county_ms, 0.5), writes->per_s, writes->p50_us, writes->p99_us);
  return 0;
}

// Runs this program with --measure in a child process and parses its result line.
std::map<std::string, double> MeasureInChild(const std::string& path, size_t loans, double seconds,
                                             bool writes_only = false) {
  const std::string command = "'" + std::filesystem::read_symlink("/proc/self/exe").string() +
                              "' --measure '" + path + "' --loans " + std::to_string(loans) +
                              " --seconds " + std::to_string(seconds) + " --batch-read-threads " +
                              std::to_string(batch_read_threads) +
                              (writes_only ? " --writes-only" : "");
  std::map<std::string, double> result;
  FILE* child = ::popen(command.c_str(), "r");
  if (child == nullptr) return result;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, child) != nullptr) {
    std::string line(buffer);
    if (line.rfind("measure ", 0) != 0) continue;
    std::istringstream fields(line.substr(8));
    std::string field;
    while (fields >> field) {
      const size_t eq = field.find('=');
      if (eq != std::string::npos) result[field.substr(0, eq)] = std::stod(field.substr(eq + 1));
    }
  }
  if (::pclose(child) != 0) result.clear();
  return result;
}

double DirectoryMb(const std::string& path) {
  uintmax_t bytes = 0;
  for (const auto& file : std::filesystem::recursive_directory_iterator(path)) {
    if (file.is_regular_file()) bytes += file.file_size();
  }
  return static_cast<double>(bytes) / (1 << 20);
}

int Main(int argc, char** argv) {
  CLI::App app{"gongdai-scale-bench: the ledger on a ten-million-entry book against a small one"};
  size_t loans = 300'000;
  size_t probe_loans = 3'000;
  int repayments = 30;
  double seconds = 5;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::string keep;
  std::string measure;
  bool smoke = false;
  bool writes_only = false;
  int write_rounds = 3;
  app.add_option("--loans", loans, "loans in the large book (default 300,000)");
  app.add_option("--probe-loans", probe_loans, "loans in the small book (default 3,000)");
  app.add_option("--repayments", repayments, "monthly repayments per loan, at most 36 (default 30)")
      ->check(CLI::Range(0, kTermMonths));
  app.add_option("--seconds", seconds, "duration of each write measurement (default 5)");
  app.add_option("--batch-read-threads", batch_read_threads,
                 "the writer's read helpers (LedgerOptions::batch_read_threads, default 8)")
      ->check(CLI::Range(size_t{0}, kBatchReadThreadsMax));
  app.add_option("--dir", dir, "where to build the scratch database (removed at the end)");
  app.add_option("--keep", keep, "move the large book here instead of removing it");
  app.add_option("--measure", measure, "measure the book at this path and exit (used internally)");
  app.add_option("--write-rounds", write_rounds,
                 "repayment measurements of each book, alternated, the first with the full "
                 "measurement (default 3; the ratio is of their medians)")
      ->check(CLI::Range(1, 9));
  app.add_flag("--writes-only", writes_only, "with --measure: the repayments alone");
  app.add_flag("--smoke", smoke, "2,000 loans (1,000 in the small book), 3 repayments, 1 s");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    loans = 2'000;
    probe_loans = 1'000;
    repayments = 3;
    seconds = 1;
    write_rounds = 2;
  }
  if (!measure.empty()) {
    return writes_only ? MeasureWrites(measure, loans, seconds) : Measure(measure, loans, seconds);
  }
  if (probe_loans == 0 || probe_loans >= loans) {
    std::fprintf(stderr, "--probe-loans must be at least 1 and below --loans\n");
    return 2;
  }

  const std::string scratch = dir + "/gongdai-scale-bench-" + std::to_string(::getpid());
  const std::string path = scratch + "/book";
  // The small book as built, for the later rounds of repayments on it.
  const std::string small_copy = scratch + "/small-book";
  std::filesystem::create_directories(scratch);
  int code = 0;
  std::map<std::string, double> small, large;
  double build_s = 0;
  uint64_t built_entries = 0;
  auto build = [&](size_t from, size_t to) {
    LedgerOptions options = FixedDayOptions();
    options.batch_commands_max = 2'048;
    options.queue_commands_max = 1 << 16;
    // Each month of repayments cycles over every loan, of which the default 64 MiB of
    // recent projections holds a small share at 300,000 loans: nearly every repayment
    // would read its loan back from RocksDB. The build keeps 2 GiB of them (its repayments
    // ran 15-30% faster on 100,000 loans). The measurements open the book with the defaults.
    options.recent_projection_bytes = size_t{2} << 30;
    {
      absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(path, options);
      if (!ledger.ok()) {
        Failed("open", ledger.status());
        return false;
      }
      const uint64_t before = (*ledger)->Head().sequence;
      const Clock::time_point start = Clock::now();
      const bool ok = Build(**ledger, from, to, loans, repayments);
      build_s = Seconds(start);
      built_entries = (*ledger)->Head().sequence - before;
      if (!ok) return false;
    }
    return SettleBook(path, options);
  };
  std::printf("building the small book: %zu loans, %d repayments each\n", probe_loans, repayments);
  std::vector<double> small_writes, large_writes;
  if (!build(0, probe_loans)) {
    code = 1;
  } else {
    if (write_rounds > 1)
      std::filesystem::copy(path, small_copy, std::filesystem::copy_options::recursive);
    small = MeasureInChild(path, probe_loans, seconds);
    const double small_mb = DirectoryMb(path);
    std::printf("growing it to %zu loans\n", loans);
    if (small.empty() || !build(probe_loans, loans)) {
      code = 1;
    } else {
      std::printf("built %llu entries in %.1f s (%.0f entries/s)\n",
                  static_cast<unsigned long long>(built_entries), build_s,
                  static_cast<double>(built_entries) / build_s);
      large = MeasureInChild(path, loans, seconds);
      if (large.empty()) code = 1;
      small_writes.push_back(small["writes_per_s"]);
      large_writes.push_back(large["writes_per_s"]);
      // The books' repayments again, one after the other, each round on a fresh copy of
      // the small book: the first measurements of the two lie the whole build apart, and
      // this machine's speed drifts over that long.
      for (int round = 2; code == 0 && round <= write_rounds; ++round) {
        const std::string fresh = scratch + "/small-round";
        std::filesystem::remove_all(fresh);
        std::filesystem::copy(small_copy, fresh, std::filesystem::copy_options::recursive);
        std::map<std::string, double> s = MeasureInChild(fresh, probe_loans, seconds, true);
        std::map<std::string, double> l = MeasureInChild(path, loans, seconds, true);
        std::filesystem::remove_all(fresh);
        if (s.empty() || l.empty()) {
          code = 1;
          break;
        }
        std::printf("  repayments, round %d: small book %.0f, large book %.0f entries/s\n", round,
                    s["writes_per_s"], l["writes_per_s"]);
        small_writes.push_back(s["writes_per_s"]);
        large_writes.push_back(l["writes_per_s"]);
      }
      small["disk_mb"] = small_mb;
      large["disk_mb"] = DirectoryMb(path);
    }
  }
  if (code == 0) {
    auto median = [](std::vector<double> values) {
      std::sort(values.begin(), values.end());
      const size_t n = values.size();
      return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    };
    small["writes_median_per_s"] = median(small_writes);
    large["writes_median_per_s"] = median(large_writes);
    std::printf("\n%-44s %14s %14s %9s\n", "", "small book", "large book", "large/small");
    auto line = [&](const char* label, const char* key, const char* format) {
      char a[32], b[32];
      std::snprintf(a, sizeof a, format, small[key]);
      std::snprintf(b, sizeof b, format, large[key]);
      std::printf("%-44s %14s %14s %8.2fx\n", label, a, b,
                  small[key] == 0 ? 0.0 : large[key] / small[key]);
    };
    line("journal entries", "entries", "%.0f");
    line("database on disk (MiB)", "disk_mb", "%.0f");
    line("open (ms)", "open_ms", "%.1f");
    line("resident memory after open (MiB)", "rss_open_mb", "%.1f");
    line("resident memory after the run (MiB)", "rss_mb", "%.1f");
    line("peak resident memory (MiB)", "hwm_mb", "%.1f");
    line("book in the page cache before the drop (MiB)", "cached_mb", "%.0f");
    line("book in the page cache after the drop (MiB)", "cached_after_drop_mb", "%.0f");
    line("  and after the second drop (MiB)", "cached_after_second_drop_mb", "%.0f");
    line("loan statement p50, cold (us)", "statement_p50_us", "%.0f");
    line("loan statement p99, cold (us)", "statement_p99_us", "%.0f");
    line("loan statement p50, cold, other loans (us)", "other_statement_p50_us", "%.0f");
    line("loan statement p99, cold, other loans (us)", "other_statement_p99_us", "%.0f");
    line("loan statement p50, warm (us)", "warm_statement_p50_us", "%.0f");
    line("loan statement p99, warm (us)", "warm_statement_p99_us", "%.0f");
    line("loan statement p50, warm, other loans (us)", "other_warm_statement_p50_us", "%.0f");
    line("loan statement p99, warm, other loans (us)", "other_warm_statement_p99_us", "%.0f");
    line("loan p99, cold (us)", "loan_p99_us", "%.0f");
    line("programme report 2021, total (ms)", "report_ms", "%.1f");
    line("programme report 2021, by county (ms)", "report_county_ms", "%.1f");
    line("repayments, first round (entries/s)", "writes_per_s", "%.0f");
    const std::string median_label =
        "repayments, median of " + std::to_string(small_writes.size()) + " rounds";
    line(median_label.c_str(), "writes_median_per_s", "%.0f");
    line("repayment p50, first round (us)", "write_p50_us", "%.0f");
    line("repayment p99, first round (us)", "write_p99_us", "%.0f");
    auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
    const double write_ratio = large["writes_median_per_s"] / small["writes_median_per_s"];
    std::printf("\ntargets:\n");
    std::printf(
        "  writes on the large book >= 80%% of the small one (medians of %zu rounds): %.0f%% %s\n",
        small_writes.size(), 100 * write_ratio, verdict(write_ratio >= 0.8));
    std::printf("  open < 1 s: %.0f ms %s\n", large["open_ms"], verdict(large["open_ms"] < 1000));
    std::printf("  resident memory < 512 MiB: peak %.0f MiB %s\n", large["hwm_mb"],
                verdict(large["hwm_mb"] < 512));
    // The worse of the two cold samples.
    const double cold_p99_us = std::max(large["statement_p99_us"], large["other_statement_p99_us"]);
    std::printf("  loan statement p99 < 2 ms, cold page cache: %.0f us %s\n", cold_p99_us,
                verdict(cold_p99_us < 2000));
    std::printf("  yearly report < 100 ms: %.1f ms %s\n", large["report_ms"],
                verdict(large["report_ms"] < 100));
    std::printf(
        "result entries=%.0f build_entries_per_s=%.0f open_ms=%.1f hwm_mb=%.1f "
        "statement_p99_us=%.0f warm_statement_p99_us=%.0f other_statement_p99_us=%.0f "
        "report_ms=%.1f small_writes_per_s=%.0f writes_per_s=%.0f write_rounds=%zu "
        "small_writes_median_per_s=%.0f writes_median_per_s=%.0f\n",
        large["entries"], static_cast<double>(built_entries) / build_s, large["open_ms"],
        large["hwm_mb"], large["statement_p99_us"], large["warm_statement_p99_us"],
        large["other_statement_p99_us"], large["report_ms"], small["writes_per_s"],
        large["writes_per_s"], small_writes.size(), small["writes_median_per_s"],
        large["writes_median_per_s"]);
  }
  if (code == 0 && !keep.empty()) {
    std::filesystem::rename(path, keep);
    std::printf("the large book is kept in %s\n", keep.c_str());
  }
  std::filesystem::remove_all(scratch);
  return code;
}

}  // namespace
}  // namespace gongdai::bench

int main(int argc, char** argv) { return gongdai::bench::Main(argc, argv); }
