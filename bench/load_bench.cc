// gongdai-load-bench: end-to-end load on a real gongdai-server over loopback gRPC, next to
// the ceiling of the same machine: a gRPC service that only answers, driven the same way.
//
// By default it starts gongdai-server itself (a temporary --data-dir, --listen
// 127.0.0.1:0, --business-date 2020-06-30; with --server it uses a running one), prepares
// a loan book through the API, then keeps --outstanding calls in flight for --seconds:
//   --mix write:      RecordRepayment on the active loans, and RecordFundContribution;
//   --mix realistic:  repayments, applications submitted, approved and disbursed,
//                     borrowers registered, GetLoan and GetLoanStatement.
// Repayments ask for the loan's basic view back (--repayment-view full: the whole loan with
// its schedule); every other call gets the whole loan.
// It prints per method calls/s, latency percentiles and errors by status code, and the
// server's CPU time during the run. Then (unless --no-ceiling) it starts the echo service
// of bench/echo.proto (this same binary with --serve-echo) and drives it with the same
// loop, the same concurrency and messages of the ledger run's mean request and response
// sizes: what gRPC alone allows, and the ledger's throughput as a fraction of it.
//
// Everything it creates (the server's data directory, its log, the child processes) is
// removed or stopped at the end, also after Ctrl-C, which ends the current run early.
#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/echo.grpc.pb.h"
#include "bench/scratch_directory.h"
#include "engine/date.h"
#include "engine/national_id.h"
#include "gongdai/v1/ledger_service.grpc.pb.h"

namespace gongdai::bench {
namespace {

using Clock = std::chrono::steady_clock;
using LedgerStub = v1::LoanLedger::Stub;
using EchoStub = echo::Echo::Stub;

// Set by SIGINT/SIGTERM: no new call starts, so that every run drains and the server and
// the scratch directory are cleaned up.
std::atomic<bool> stop_requested{false};

void RequestStop(int) { stop_requested.store(true, std::memory_order_relaxed); }

bool Stopping() { return stop_requested.load(std::memory_order_relaxed); }

// Every method the benchmark calls. The order is the order of the printed tables.
enum Method : size_t {
  kRecordRepayment = 0,
  kRecordFundContribution,
  kSubmitApplication,
  kApproveApplication,
  kDisburseLoan,
  kRegisterBorrower,
  kDefineProduct,
  kGetLoan,
  kGetLoanStatement,
  kEcho,
  kMethodCount
};
constexpr std::array<const char*, kMethodCount> kMethodNames = {
    "RecordRepayment",   "RecordFundContribution",
    "SubmitApplication", "ApproveApplication",
    "DisburseLoan",      "RegisterBorrower",
    "DefineProduct",     "GetLoan",
    "GetLoanStatement",  "Echo"};

// A write becomes one journal entry when it succeeds.
bool IsWrite(size_t method) { return method <= kDefineProduct; }

const char* StatusCodeName(int code) {
  static constexpr std::array<const char*, 17> kNames = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(kNames.size()) ? kNames[static_cast<size_t>(code)]
                                                             : "?";
}

// The mixes: each call of the timed run picks its method with these weights (percent).
struct MixShare {
  Method method;
  int percent;
};
const std::vector<MixShare>& WriteMix() {
  static const auto* const kMix = new std::vector<MixShare>{
      {kRecordRepayment, 90},
      {kRecordFundContribution, 10},
  };
  return *kMix;
}
// Submissions outnumber approvals, which outnumber disbursements, so that the queues of
// applications waiting for the next step do not run dry (a call that finds its queue
// empty becomes the step before it, and is counted as what it became).
const std::vector<MixShare>& RealisticMix() {
  static const auto* const kMix = new std::vector<MixShare>{
      {kRecordRepayment, 30},  {kGetLoan, 30},           {kGetLoanStatement, 15},
      {kSubmitApplication, 8}, {kApproveApplication, 7}, {kDisburseLoan, 6},
      {kRegisterBorrower, 4},
  };
  return *kMix;
}

struct Flags {
  std::string mix = "write";
  size_t outstanding = 64;
  double seconds = 10.0;
  size_t loans = 3000;
  // Applications left submitted and approved before the realistic run, so that its
  // approvals and disbursements find work from the first call.
  size_t queued_applications = 1000;
  size_t client_threads = 2;
  size_t channels = 1;
  bool ceiling = true;
  std::string server;
  std::string tokens_file;
  int server_pid = 0;
  std::string dir;
  bool smoke = false;
  bool serve_echo = false;
  // What the repayments ask back: "basic" (the loan without its schedule, as a repayment
  // feed would) or "full".
  std::string repayment_view = "basic";
};

// ---------------------------------------------------------------------------------------
// Processes, directories, CPU time

double CpuSecondsOfProcess(pid_t pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: fields are counted after its ")".
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  uint64_t utime = 0;
  uint64_t stime = 0;
  // After ")": state is field 3; utime is field 14 and stime field 15.
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) utime = std::stoull(field);
    if (number == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double CpuSecondsOfSelf() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A server started by the benchmark: its stdout is read up to the line that says it is
// ready, its stderr goes to a file. Stopped with SIGTERM (SIGKILL if never stopped).
class ChildServer {
 public:
  ChildServer() = default;
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  // A server not stopped yet (an early return) still gets SIGTERM first, and 10 s to
  // close its ledger, before SIGKILL.
  ~ChildServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      bool reaped = false;
      for (int i = 0; i < 200 && !reaped; ++i) {
        reaped = waitpid(pid_, nullptr, WNOHANG) == pid_;
        if (!reaped) usleep(50'000);
      }
      if (!reaped) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    if (stdout_ != nullptr) std::fclose(stdout_);
  }

  // Runs `argv`; reads stdout until a line starting with `ready_prefix`, taking the
  // address from the text after "listening on ".
  absl::Status Start(std::vector<std::string> argv, const std::filesystem::path& stderr_path,
                     std::string_view ready_prefix) {
    stderr_path_ = stderr_path;
    // Everything the child needs is made before fork: between fork and exec a child of a
    // threaded process may only make system calls (another thread may hold malloc's lock).
    std::vector<char*> raw;
    for (std::string& arg : argv) raw.push_back(arg.data());
    raw.push_back(nullptr);
    const int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err < 0) {
      return absl::InternalError("open " + stderr_path_.string() + ": " + std::strerror(errno));
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      close(err);
      return absl::InternalError(std::string("pipe: ") + std::strerror(errno));
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) {
      close(err);
      close(out[0]);
      close(out[1]);
      return absl::InternalError(std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
      // If the benchmark dies without stopping it, the server is told to shut down too.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
      // dup2 clears close-on-exec on the copies: only stdout and stderr reach the server.
      dup2(out[1], STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execv(raw[0], raw.data());
      _exit(127);
    }
    close(err);
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    char line[1024];
    bool ready = false;
    while (std::fgets(line, sizeof(line), stdout_) != nullptr) {
      const std::string text = line;
      banner_ += text;
      constexpr std::string_view kMarker = "listening on ";
      if (const size_t at = text.find(kMarker); at != std::string::npos) {
        address_ = text.substr(at + kMarker.size());
        address_ = address_.substr(0, address_.find_first_of(" \n"));
      }
      if (text.starts_with(ready_prefix)) {
        ready = true;
        break;
      }
    }
    if (!ready || address_.empty()) {
      return absl::UnavailableError(argv[0] + " did not start; its output:\n" + banner_ +
                                    StderrTail());
    }
    return absl::OkStatus();
  }

  // SIGTERM, then waits; an error unless it exited with status 0.
  absl::Status Stop() {
    if (pid_ <= 0) return absl::OkStatus();
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::InternalError("the server did not exit cleanly after SIGTERM (wait status " +
                                 std::to_string(status) + ")" + StderrTail());
    }
    return absl::OkStatus();
  }

  std::string StderrTail() const {
    std::ifstream in(stderr_path_);
    std::deque<std::string> last;
    std::string line;
    while (std::getline(in, line)) {
      last.push_back(line);
      if (last.size() > 20) last.pop_front();
    }
    std::string text;
    for (const std::string& l : last) text += "\n  " + l;
    return text.empty() ? "" : "\nlast lines of its stderr:" + text;
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::filesystem::path stderr_path_;
  std::string address_;
  std::string banner_;
};

// role -> token, from the [tokens] table of a server's dev-tokens.toml.
absl::StatusOr<std::map<std::string, std::string>> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read the development tokens in " + path);
  std::map<std::string, std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find(" = \"");
    if (line.starts_with("#") || eq == std::string::npos || !line.ends_with("\"")) continue;
    tokens[line.substr(0, eq)] = line.substr(eq + 4, line.size() - eq - 5);
  }
  for (const char* role : {"officer", "approver", "cashier", "supervisor"}) {
    if (!tokens.contains(role)) return absl::NotFoundError(path + " has no " + role + " token");
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------
// The load loop: threads, each with a completion queue and a share of the outstanding
// calls; every completed call is replaced by the next one the workload picks.

struct MethodStats {
  std::vector<uint32_t> latencies_us;  // successful calls
  std::array<uint64_t, 17> errors{};   // by grpc::StatusCode
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  uint64_t errors_total() const {
    uint64_t total = 0;
    for (uint64_t count : errors) total += count;
    return total;
  }
};
using StatsTable = std::array<MethodStats, kMethodCount>;

class Worker;

// One call in flight; its address is the completion queue tag.
struct PendingCall {
  virtual ~PendingCall() = default;
  virtual void Complete(Worker& worker) = 0;
  Method method = kEcho;
  Clock::time_point start;
  size_t request_bytes = 0;
  grpc::ClientContext context;
  grpc::Status status;
};

// What a workload does: start exactly one call on `worker` and return true, or return
// false when it has nothing more to start.
class Workload {
 public:
  virtual ~Workload() = default;
  virtual bool StartNext(Worker& worker) = 0;
};

template <typename Stub, typename Request, typename Response>
using PrepareMethod = std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> (Stub::*)(
    grpc::ClientContext*, const Request&, grpc::CompletionQueue*);

template <typename Response>
using Then = std::function<void(const grpc::Status&, const Response&)>;

class Worker {
 public:
  Worker(Workload& workload, size_t slots, uint64_t seed)
      : workload_(workload), slots_(slots), random_(seed) {
    for (MethodStats& stats : stats_) stats.latencies_us.reserve(1 << 16);
  }

  void Run() {
    size_t started = 0;
    while (started < slots_ && workload_.StartNext(*this)) ++started;
    void* tag = nullptr;
    bool ok = false;
    while (in_flight_ > 0 && queue_.Next(&tag, &ok)) {
      std::unique_ptr<PendingCall> call(static_cast<PendingCall*>(tag));
      --in_flight_;
      call->Complete(*this);
      call.reset();
      workload_.StartNext(*this);
    }
    // Nothing is in flight: the shut-down queue only has to be drained.
    queue_.Shutdown();
    while (queue_.Next(&tag, &ok)) continue;
  }

  // Starts `prepare` on `stub` with `request`; `then` sees the outcome on this thread.
  template <typename Stub, typename Request, typename Response>
  void Start(Method method, Stub* stub, PrepareMethod<Stub, Request, Response> prepare,
             const Request& request, const std::string& authorization,
             std::type_identity_t<Then<Response>> then = nullptr) {
    auto* call = new Call<Response>();
    call->method = method;
    call->then = std::move(then);
    call->request_bytes = request.ByteSizeLong();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    call->context.AddMetadata("authorization", authorization);
    call->start = Clock::now();
    call->reader = (stub->*prepare)(&call->context, request, &queue_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    ++in_flight_;
  }

  std::mt19937_64& random() { return random_; }
  // A number in [0, n).
  uint64_t Roll(uint64_t n) { return random_() % n; }
  StatsTable& stats() { return stats_; }
  std::string& first_error() { return first_error_; }

 private:
  template <typename Response>
  struct Call : PendingCall {
    Response response;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
    Then<Response> then;

    void Complete(Worker& worker) override {
      const int64_t latency_us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
      MethodStats& stats = worker.stats_[method];
      if (status.ok()) {
        stats.latencies_us.push_back(static_cast<uint32_t>(latency_us));
        stats.request_bytes += request_bytes;
        stats.response_bytes += response.ByteSizeLong();
      } else {
        ++stats.errors[static_cast<size_t>(status.error_code()) % stats.errors.size()];
        if (worker.first_error_.empty()) {
          worker.first_error_ = std::string(kMethodNames[method]) + ": " +
                                StatusCodeName(status.error_code()) + ": " + status.error_message();
        }
      }
      if (then) then(status, response);
    }
  };

  Workload& workload_;
  size_t slots_;
  size_t in_flight_ = 0;
  std::mt19937_64 random_;
  grpc::CompletionQueue queue_;
  StatsTable stats_;
  std::string first_error_;
};

struct PhaseResult {
  StatsTable stats;
  double elapsed_seconds = 0;
  std::string first_error;
  uint64_t errors = 0;
};

// Runs `workload` with `outstanding` calls in flight over `threads` threads until it has
// nothing more to start and every call has completed.
PhaseResult RunPhase(Workload& workload, size_t outstanding, size_t threads, uint64_t seed) {
  threads = std::max<size_t>(1, std::min(threads, outstanding));
  std::vector<std::unique_ptr<Worker>> workers;
  for (size_t i = 0; i < threads; ++i) {
    const size_t slots = outstanding / threads + (i < outstanding % threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(workload, slots, seed * 7919 + i));
  }
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> running;
  for (auto& worker : workers) running.emplace_back([&worker] { worker->Run(); });
  for (std::thread& thread : running) thread.join();
  PhaseResult result;
  result.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& worker : workers) {
    for (size_t m = 0; m < kMethodCount; ++m) {
      MethodStats& from = worker->stats()[m];
      MethodStats& to = result.stats[m];
      to.latencies_us.insert(to.latencies_us.end(), from.latencies_us.begin(),
                             from.latencies_us.end());
      for (size_t c = 0; c < to.errors.size(); ++c) to.errors[c] += from.errors[c];
      to.request_bytes += from.request_bytes;
      to.response_bytes += from.response_bytes;
      result.errors += from.errors_total();
    }
    if (result.first_error.empty()) result.first_error = worker->first_error();
  }
  return result;
}

// A fixed list of calls, each started once (the preparation's steps).
class TaskList : public Workload {
 public:
  using Task = std::function<void(Worker&)>;
  explicit TaskList(std::vector<Task> tasks) : tasks_(std::move(tasks)) {}
  bool StartNext(Worker& worker) override {
    if (Stopping()) return false;
    const size_t index = next_.fetch_add(1, std::memory_order_relaxed);
    if (index >= tasks_.size()) return false;
    tasks_[index](worker);
    return true;
  }

 private:
  std::vector<Task> tasks_;
  std::atomic<size_t> next_{0};
};

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<uint32_t>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(fraction * static_cast<double>(sorted.size()));
  rank = std::min(rank, sorted.size() - 1);
  return sorted[rank];
}

struct Latency {
  uint64_t calls = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
};

Latency Summarize(std::vector<uint32_t> samples) {
  std::sort(samples.begin(), samples.end());
  double sum_us = 0;
  for (uint32_t sample : samples) sum_us += sample;
  return {samples.size(),
          samples.empty() ? 0 : sum_us / static_cast<double>(samples.size()),
          Percentile(samples, 0.50),
          Percentile(samples, 0.90),
          Percentile(samples, 0.99),
          Percentile(samples, 0.999)};
}

// ---------------------------------------------------------------------------------------
// The loan book, through the API

// An application on its way: its id and the amount it was submitted for.
struct Application {
  std::string loan_id;
  std::string amount;
};

// What the benchmark knows of the ledger: who is registered, which loans are active, and
// which applications wait for approval or disbursement. Shared by every worker.
class Book {
 public:
  void AddBorrower(std::string id) {
    std::lock_guard<std::mutex> lock(mutex_);
    borrowers_.push_back(std::move(id));
  }
  void AddSubmitted(Application application) {
    std::lock_guard<std::mutex> lock(mutex_);
    submitted_.push_back(std::move(application));
  }
  void AddApproved(Application application) {
    std::lock_guard<std::mutex> lock(mutex_);
    approved_.push_back(std::move(application));
  }
  void AddActive(std::string loan_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    active_.push_back(std::move(loan_id));
  }
  bool TakeSubmitted(Application& out) { return Take(submitted_, out); }
  bool TakeApproved(Application& out) { return Take(approved_, out); }
  bool PickBorrower(std::mt19937_64& random, std::string& out) {
    return Pick(borrowers_, random, out);
  }
  bool PickActive(std::mt19937_64& random, std::string& out) { return Pick(active_, random, out); }
  size_t active() {
    std::lock_guard<std::mutex> lock(mutex_);
    return active_.size();
  }
  size_t borrowers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return borrowers_.size();
  }

 private:
  bool Take(std::deque<Application>& queue, Application& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue.empty()) return false;
    out = std::move(queue.front());
    queue.pop_front();
    return true;
  }
  bool Pick(const std::vector<std::string>& from, std::mt19937_64& random, std::string& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (from.empty()) return false;
    out = from[random() % from.size()];
    return true;
  }

  std::mutex mutex_;
  std::vector<std::string> borrowers_;
  std::vector<std::string> active_;
  std::deque<Application> submitted_;
  std::deque<Application> approved_;
};

std::string YuanText(int64_t fen) {
  char text[32];
  std::snprintf(text, sizeof(text), "%lld.%02lld", static_cast<long long>(fen / 100),
                static_cast<long long>(fen % 100));
  return text;
}

// Calls of the ledger's API with the right role, unique request ids, and the book kept up
// to date from the answers.
class LedgerCalls {
 public:
  LedgerCalls(std::vector<std::unique_ptr<LedgerStub>> stubs,
              const std::map<std::string, std::string>& tokens, std::string run_id,
              v1::LoanView repayment_view, Book& book)
      : stubs_(std::move(stubs)),
        run_id_(std::move(run_id)),
        repayment_view_(repayment_view),
        book_(book) {
    for (const auto& [role, token] : tokens) authorization_[role] = "Bearer " + token;
    fund_product_ = "lb-fund-" + run_id_;
    bank_product_ = "lb-bank-" + run_id_;
    // National ID numbers start at a point of their space that depends on the run, so that
    // repeated runs against one --server register new people.
    national_id_next_ = std::hash<std::string>{}(run_id_) % kNationalIdSpace;
  }

  // The union-fund product of tests/server_e2e_test.cc's FundProduct, or a partner-bank
  // one like the demo book's.
  void DefineProduct(Worker& worker, bool bank) {
    v1::DefineProductRequest r;
    r.set_request_id(RequestId());
    r.set_product_id(bank ? bank_product_ : fund_product_);
    v1::ProductTermsInput* t = r.mutable_terms();
    t->set_name(bank ? "庐陵工贷·邮储银行贴息贷款" : "庐陵工贷·互助金");
    v1::CategoryLimitSpec* limit = t->add_limits();
    limit->set_category(v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
    limit->set_max_amount("100000");
    t->add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
    if (bank) {
      t->set_funding(v1::FUNDING_PARTNER_BANK);
      t->set_bank_id("psbc");
      t->set_annual_rate("0.0435");
      t->set_day_count(v1::DAY_COUNT_CONVENTION_ACT_360);
      t->set_term_months_min(12);
      t->set_term_months_max(36);
      t->set_grace_days(3);
      t->set_dual_approval_above("300000");
    } else {
      t->set_funding(v1::FUNDING_UNION_FUND);
      t->set_term_months_min(3);
      t->set_term_months_max(36);
      t->set_grace_days(5);
      t->set_dual_approval_above("200000");
    }
    worker.Start(kDefineProduct, Stub(), &LedgerStub::PrepareAsyncDefineProduct, r,
                 authorization_.at("supervisor"));
  }

  void ContributeFund(Worker& worker, int64_t fen) {
    v1::RecordFundContributionRequest r;
    r.set_request_id(RequestId());
    r.set_amount(YuanText(fen));
    r.set_source("吉安市总工会");
    r.set_reference("工会经费划拨");
    worker.Start(kRecordFundContribution, Stub(), &LedgerStub::PrepareAsyncRecordFundContribution,
                 r, authorization_.at("cashier"));
  }

  void RegisterBorrower(Worker& worker) {
    // Region (a county of Ji'an), a birth date in 1960-1999 and a serial: 18 digits with
    // a valid check character, distinct for every registration of this run.
    const uint64_t n = national_id_next_.fetch_add(1, std::memory_order_relaxed) % kNationalIdSpace;
    const Date born =
        ParseDate("1960-01-01", "born")->PlusDays(static_cast<int32_t>(n % kBirthDays));
    const std::string birth = born.ToString();
    char first17[18];
    std::snprintf(first17, sizeof(first17), "%s%s%s%s%03llu", kRegions[n / kBirthDays / 1000],
                  birth.substr(0, 4).c_str(), birth.substr(5, 2).c_str(),
                  birth.substr(8, 2).c_str(),
                  static_cast<unsigned long long>((n / kBirthDays) % 1000));
    v1::RegisterBorrowerRequest r;
    r.set_request_id(RequestId());
    r.set_national_id(std::string(first17) + NationalIdCheckCharacter(first17));
    v1::BorrowerDetailsInput* d = r.mutable_details();
    d->set_name("刘秀英");
    char phone[16];
    std::snprintf(phone, sizeof(phone), "139%08llu",
                  static_cast<unsigned long long>(n % 100'000'000));
    d->set_phone(phone);
    d->set_union_member_number("JA-" + std::to_string(n % 1'000'000));
    d->set_category(v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
    d->set_county("吉州区");
    d->set_enterprise_name("秀英农家乐");
    d->set_sector("乡村旅游");
    worker.Start(kRegisterBorrower, Stub(), &LedgerStub::PrepareAsyncRegisterBorrower, r,
                 authorization_.at("officer"),
                 [this](const grpc::Status& status, const v1::BorrowerResponse& response) {
                   if (status.ok()) book_.AddBorrower(response.borrower().borrower_id());
                 });
  }

  // An application for 10,000-100,000 yuan over 12, 24 or 36 months, from the union fund
  // or the partner bank.
  void SubmitApplication(Worker& worker, const std::string& borrower_id) {
    v1::SubmitApplicationRequest r;
    r.set_request_id(RequestId());
    r.set_borrower_id(borrower_id);
    r.set_product_id(worker.Roll(2) == 0 ? fund_product_ : bank_product_);
    std::string amount = std::to_string(10'000 + 1'000 * worker.Roll(91));
    r.set_amount(amount);
    r.set_term_months(static_cast<int32_t>(12 * (1 + worker.Roll(3))));
    r.set_method(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
    r.set_purpose("购置冷库设备");
    r.set_jobs_expected(static_cast<int32_t>(1 + worker.Roll(5)));
    worker.Start(kSubmitApplication, Stub(), &LedgerStub::PrepareAsyncSubmitApplication, r,
                 authorization_.at("officer"),
                 [this, amount = std::move(amount)](const grpc::Status& status,
                                                    const v1::LoanResponse& response) {
                   if (status.ok()) book_.AddSubmitted({response.loan().loan_id(), amount});
                 });
  }

  void ApproveApplication(Worker& worker, Application application) {
    v1::ApproveApplicationRequest r;
    r.set_request_id(RequestId());
    r.set_loan_id(application.loan_id);
    r.set_note("材料齐全");
    worker.Start(kApproveApplication, Stub(), &LedgerStub::PrepareAsyncApproveApplication, r,
                 authorization_.at("approver"),
                 [this, application = std::move(application)](const grpc::Status& status,
                                                              const v1::LoanResponse&) {
                   if (status.ok()) book_.AddApproved(application);
                 });
  }

  void DisburseLoan(Worker& worker, Application application) {
    v1::DisburseLoanRequest r;
    r.set_request_id(RequestId());
    r.set_loan_id(application.loan_id);
    r.set_amount(application.amount);
    worker.Start(
        kDisburseLoan, Stub(), &LedgerStub::PrepareAsyncDisburseLoan, r,
        authorization_.at("cashier"),
        [this, loan_id = application.loan_id](const grpc::Status& status, const v1::LoanResponse&) {
          if (status.ok()) book_.AddActive(loan_id);
        });
  }

  // 0.01-9.99 yuan: thousands of repayments leave a loan of 10,000 yuan or more active.
  void RecordRepayment(Worker& worker, const std::string& loan_id) {
    v1::RecordRepaymentRequest r;
    r.set_request_id(RequestId());
    r.set_loan_id(loan_id);
    r.set_amount(YuanText(static_cast<int64_t>(1 + worker.Roll(999))));
    r.set_channel(v1::PAYMENT_CHANNEL_BANK_TRANSFER);
    r.set_view(repayment_view_);
    worker.Start(kRecordRepayment, Stub(), &LedgerStub::PrepareAsyncRecordRepayment, r,
                 authorization_.at("cashier"));
  }

  void GetLoan(Worker& worker, const std::string& loan_id) {
    v1::GetLoanRequest r;
    r.set_loan_id(loan_id);
    worker.Start(kGetLoan, Stub(), &LedgerStub::PrepareAsyncGetLoan, r,
                 authorization_.at("officer"));
  }

  void GetLoanStatement(Worker& worker, const std::string& loan_id) {
    v1::GetLoanStatementRequest r;
    r.set_loan_id(loan_id);
    worker.Start(kGetLoanStatement, Stub(), &LedgerStub::PrepareAsyncGetLoanStatement, r,
                 authorization_.at("officer"));
  }

  const std::string& cashier_authorization() const { return authorization_.at("cashier"); }

  // Drops the channels: a server shuts down at once only when its clients are gone.
  void CloseChannels() { stubs_.clear(); }

 private:
  std::string RequestId() {
    return "lb-" + run_id_ + "-" +
           std::to_string(request_counter_.fetch_add(1, std::memory_order_relaxed));
  }
  // Calls go round the channels.
  LedgerStub* Stub() {
    return stubs_[stub_counter_.fetch_add(1, std::memory_order_relaxed) % stubs_.size()].get();
  }

  std::vector<std::unique_ptr<LedgerStub>> stubs_;
  std::map<std::string, std::string> authorization_;
  std::string run_id_;
  v1::LoanView repayment_view_;
  std::string fund_product_;
  std::string bank_product_;
  Book& book_;
  std::atomic<uint64_t> request_counter_{0};
  std::atomic<uint64_t> stub_counter_{0};
  std::atomic<uint64_t> national_id_next_{0};

  static constexpr std::array<const char*, 4> kRegions = {"360802", "360803", "360821", "360822"};
  static constexpr uint64_t kBirthDays = 14600;
  // Regions x birth dates x 1,000 serials.
  static constexpr uint64_t kNationalIdSpace = kRegions.size() * kBirthDays * 1000;
};

// The timed run: until the deadline, each call picks its method by the mix's weights.
class MixWorkload : public Workload {
 public:
  MixWorkload(const std::vector<MixShare>& mix, LedgerCalls& calls, Book& book,
              Clock::time_point deadline)
      : calls_(calls), book_(book), deadline_(deadline) {
    int total = 0;
    for (const MixShare& share : mix) {
      total += share.percent;
      cumulative_.emplace_back(total, share.method);
    }
  }

  bool StartNext(Worker& worker) override {
    if (Stopping() || Clock::now() >= deadline_) return false;
    const int roll = static_cast<int>(worker.Roll(100));
    Method method = kRecordRepayment;
    for (const auto& [below, candidate] : cumulative_) {
      if (roll < below) {
        method = candidate;
        break;
      }
    }
    Application application;
    std::string id;
    // A step whose queue is empty becomes the step before it.
    if (method == kDisburseLoan) {
      if (book_.TakeApproved(application)) {
        calls_.DisburseLoan(worker, std::move(application));
        return true;
      }
      substituted_.fetch_add(1, std::memory_order_relaxed);
      method = kApproveApplication;
    }
    if (method == kApproveApplication) {
      if (book_.TakeSubmitted(application)) {
        calls_.ApproveApplication(worker, std::move(application));
        return true;
      }
      substituted_.fetch_add(1, std::memory_order_relaxed);
      method = kSubmitApplication;
    }
    switch (method) {
      case kSubmitApplication:
        book_.PickBorrower(worker.random(), id);
        calls_.SubmitApplication(worker, id);
        break;
      case kRegisterBorrower:
        calls_.RegisterBorrower(worker);
        break;
      case kRecordFundContribution:
        calls_.ContributeFund(worker, static_cast<int64_t>(100 * (1 + worker.Roll(10'000))));
        break;
      case kGetLoan:
        book_.PickActive(worker.random(), id);
        calls_.GetLoan(worker, id);
        break;
      case kGetLoanStatement:
        book_.PickActive(worker.random(), id);
        calls_.GetLoanStatement(worker, id);
        break;
      default:
        book_.PickActive(worker.random(), id);
        calls_.RecordRepayment(worker, id);
        break;
    }
    return true;
  }

  uint64_t substituted() const { return substituted_.load(); }

 private:
  LedgerCalls& calls_;
  Book& book_;
  Clock::time_point deadline_;
  std::vector<std::pair<int, Method>> cumulative_;
  std::atomic<uint64_t> substituted_{0};
};

// Echo calls with messages of fixed sizes until the deadline.
class EchoWorkload : public Workload {
 public:
  EchoWorkload(std::vector<std::unique_ptr<EchoStub>> stubs, size_t request_bytes,
               size_t response_bytes, std::string authorization, Clock::time_point deadline)
      : stubs_(std::move(stubs)), authorization_(std::move(authorization)), deadline_(deadline) {
    request_.set_reply_bytes(static_cast<uint32_t>(response_bytes));
    // The payload makes the serialized request as long as the ledger's mean request.
    size_t payload = request_bytes;
    request_.set_payload(std::string(payload, 'p'));
    while (payload > 0 && request_.ByteSizeLong() > request_bytes) {
      request_.set_payload(std::string(--payload, 'p'));
    }
  }

  bool StartNext(Worker& worker) override {
    if (Stopping() || Clock::now() >= deadline_) return false;
    EchoStub* stub = stubs_[counter_.fetch_add(1, std::memory_order_relaxed) % stubs_.size()].get();
    worker.Start(kEcho, stub, &EchoStub::PrepareAsyncEcho, request_, authorization_);
    return true;
  }

  size_t request_bytes() const { return request_.ByteSizeLong(); }

 private:
  std::vector<std::unique_ptr<EchoStub>> stubs_;
  echo::EchoMessage request_;
  std::string authorization_;
  Clock::time_point deadline_;
  std::atomic<uint64_t> counter_{0};
};

// Channels with their own TCP connection each (a local subchannel pool), so that
// --channels N means N connections, as N clients would have.
std::vector<std::shared_ptr<grpc::Channel>> Channels(const std::string& address, size_t count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (size_t i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

// ---------------------------------------------------------------------------------------
// Reporting

struct TimedRun {
  PhaseResult phase;
  double server_cpu_seconds = -1;
  double client_cpu_seconds = 0;
};

struct Totals {
  uint64_t calls = 0;
  uint64_t errors = 0;
  double calls_per_second = 0;
  Latency latency;
  double mean_request_bytes = 0;
  double mean_response_bytes = 0;
};

Totals Total(const PhaseResult& phase, bool writes_only) {
  Totals totals;
  std::vector<uint32_t> samples;
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  for (size_t m = 0; m < kMethodCount; ++m) {
    if (writes_only && !IsWrite(m)) continue;
    const MethodStats& stats = phase.stats[m];
    samples.insert(samples.end(), stats.latencies_us.begin(), stats.latencies_us.end());
    totals.errors += stats.errors_total();
    request_bytes += stats.request_bytes;
    response_bytes += stats.response_bytes;
  }
  totals.calls = samples.size();
  totals.calls_per_second = static_cast<double>(samples.size()) / phase.elapsed_seconds;
  totals.latency = Summarize(std::move(samples));
  if (totals.calls > 0) {
    totals.mean_request_bytes =
        static_cast<double>(request_bytes) / static_cast<double>(totals.calls);
    totals.mean_response_bytes =
        static_cast<double>(response_bytes) / static_cast<double>(totals.calls);
  }
  return totals;
}

std::string ErrorsText(const std::array<uint64_t, 17>& errors) {
  std::string text;
  for (size_t code = 0; code < errors.size(); ++code) {
    if (errors[code] == 0) continue;
    if (!text.empty()) text += ", ";
    text +=
        std::string(StatusCodeName(static_cast<int>(code))) + " " + std::to_string(errors[code]);
  }
  return text.empty() ? "none" : text;
}

void PrintRow(const char* name, uint64_t calls, double seconds, uint64_t all_calls,
              const Latency& latency, const std::string& errors) {
  std::printf(
      "%-24s %9llu %10.0f %6.1f%% %9.0f %9.0f %9.0f %9.0f  %s\n", name,
      static_cast<unsigned long long>(calls), static_cast<double>(calls) / seconds,
      all_calls == 0 ? 0.0 : 100.0 * static_cast<double>(calls) / static_cast<double>(all_calls),
      latency.p50_us, latency.p90_us, latency.p99_us, latency.p999_us, errors.c_str());
}

void PrintTable(const std::string& title, const TimedRun& run, size_t outstanding) {
  const PhaseResult& phase = run.phase;
  const Totals all = Total(phase, false);
  std::printf("\n%s: %zu outstanding, %.2f s\n", title.c_str(), outstanding, phase.elapsed_seconds);
  std::printf("%-24s %9s %10s %7s %9s %9s %9s %9s  %s\n", "method", "calls", "calls/s", "share",
              "p50 us", "p90 us", "p99 us", "p99.9 us", "errors");
  std::printf("%s\n", std::string(24 + 10 + 11 + 8 + 40 + 8, '-').c_str());
  for (size_t m = 0; m < kMethodCount; ++m) {
    const MethodStats& stats = phase.stats[m];
    if (stats.latencies_us.empty() && stats.errors_total() == 0) continue;
    PrintRow(kMethodNames[m], stats.latencies_us.size(), phase.elapsed_seconds, all.calls,
             Summarize(stats.latencies_us), ErrorsText(stats.errors));
  }
  std::printf("%s\n", std::string(24 + 10 + 11 + 8 + 40 + 8, '-').c_str());
  std::array<uint64_t, 17> errors{};
  for (const MethodStats& stats : phase.stats) {
    for (size_t c = 0; c < errors.size(); ++c) errors[c] += stats.errors[c];
  }
  PrintRow("all calls", all.calls, phase.elapsed_seconds, all.calls, all.latency,
           ErrorsText(errors));
  if (phase.stats[kEcho].latencies_us.empty()) {
    const Totals writes = Total(phase, true);
    PrintRow("writes (journal entries)", writes.calls, phase.elapsed_seconds, all.calls,
             writes.latency, "");
  }
  std::printf("messages: mean request %.0f bytes, mean response %.0f bytes\n",
              all.mean_request_bytes, all.mean_response_bytes);
  const double calls = static_cast<double>(std::max<uint64_t>(1, all.calls));
  if (run.server_cpu_seconds >= 0) {
    std::printf("server CPU: %.2f s in %.2f s (%.0f%% of one core; %u cores), %.1f us per call\n",
                run.server_cpu_seconds, phase.elapsed_seconds,
                100.0 * run.server_cpu_seconds / phase.elapsed_seconds,
                std::thread::hardware_concurrency(), 1e6 * run.server_cpu_seconds / calls);
  } else {
    std::printf("server CPU: unknown (give --server-pid)\n");
  }
  std::printf("client CPU: %.2f s (%.0f%% of one core), %.1f us per call\n", run.client_cpu_seconds,
              100.0 * run.client_cpu_seconds / phase.elapsed_seconds,
              1e6 * run.client_cpu_seconds / calls);
}

// ---------------------------------------------------------------------------------------

// Runs `workload` as a measured run: server and client CPU time around it.
TimedRun MeasureRun(Workload& workload, const Flags& flags, pid_t server_pid, uint64_t seed) {
  TimedRun run;
  const double server_before = CpuSecondsOfProcess(server_pid);
  const double client_before = CpuSecondsOfSelf();
  run.phase = RunPhase(workload, flags.outstanding, flags.client_threads, seed);
  const double server_after = CpuSecondsOfProcess(server_pid);
  run.client_cpu_seconds = CpuSecondsOfSelf() - client_before;
  if (server_before >= 0 && server_after >= 0) {
    run.server_cpu_seconds = server_after - server_before;
  }
  return run;
}

// Runs one preparation step; an error if any of its calls failed.
absl::Status Prepare(const char* what, std::vector<TaskList::Task> tasks, const Flags& flags,
                     uint64_t seed) {
  const size_t count = tasks.size();
  TaskList list(std::move(tasks));
  const PhaseResult phase = RunPhase(list, flags.outstanding, flags.client_threads, seed);
  if (Stopping()) return absl::CancelledError("interrupted");
  if (phase.errors > 0) {
    return absl::InternalError(
        std::string("preparation (") + what + "): " + std::to_string(phase.errors) + " of " +
        std::to_string(count) + " calls failed; first: " + phase.first_error);
  }
  std::printf("  %-40s %6zu calls in %5.2f s\n", what, count, phase.elapsed_seconds);
  std::fflush(stdout);
  return absl::OkStatus();
}

absl::Status PrepareBook(const Flags& flags, LedgerCalls& calls, Book& book) {
  std::printf("preparing the loan book through the API (%zu outstanding):\n", flags.outstanding);
  const bool realistic = flags.mix == "realistic";
  const size_t queued = realistic ? flags.queued_applications : 0;
  std::vector<TaskList::Task> tasks;
  tasks.push_back([&calls](Worker& w) { calls.DefineProduct(w, false); });
  tasks.push_back([&calls](Worker& w) { calls.DefineProduct(w, true); });
  absl::Status status = Prepare("products (union fund, partner bank)", std::move(tasks), flags, 1);
  if (!status.ok()) return status;

  // 1,000,000,000 yuan in ten contributions (the API takes at most 100 million at once):
  // more than every loan the realistic run can disburse from the fund.
  tasks.assign(10, [&calls](Worker& w) { calls.ContributeFund(w, int64_t{100'000'000} * 100); });
  status = Prepare("fund contributions", std::move(tasks), flags, 2);
  if (!status.ok()) return status;

  tasks.assign(flags.loans, [&calls](Worker& w) { calls.RegisterBorrower(w); });
  status = Prepare("borrowers registered", std::move(tasks), flags, 3);
  if (!status.ok()) return status;

  // One application per borrower, plus the ones left waiting for the realistic run.
  tasks.clear();
  for (size_t i = 0; i < flags.loans + 2 * queued; ++i) {
    tasks.push_back([&calls, &book](Worker& w) {
      std::string borrower;
      book.PickBorrower(w.random(), borrower);
      calls.SubmitApplication(w, borrower);
    });
  }
  status = Prepare("applications submitted", std::move(tasks), flags, 4);
  if (!status.ok()) return status;

  tasks.assign(flags.loans + queued, [&calls, &book](Worker& w) {
    Application application;
    book.TakeSubmitted(application);
    calls.ApproveApplication(w, std::move(application));
  });
  status = Prepare("applications approved", std::move(tasks), flags, 5);
  if (!status.ok()) return status;

  tasks.assign(flags.loans, [&calls, &book](Worker& w) {
    Application application;
    book.TakeApproved(application);
    calls.DisburseLoan(w, std::move(application));
  });
  status = Prepare("loans disbursed", std::move(tasks), flags, 6);
  if (!status.ok()) return status;
  std::printf(
      "  %zu active loans, %zu borrowers, %zu applications submitted and %zu approved "
      "waiting\n",
      book.active(), book.borrowers(), queued, queued);
  return absl::OkStatus();
}

std::string RunId() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const uint64_t mixed = static_cast<uint64_t>(std::chrono::nanoseconds(now).count()) * 31 +
                         static_cast<uint64_t>(getpid());
  char id[24];
  std::snprintf(id, sizeof(id), "%012llx",
                static_cast<unsigned long long>(mixed & 0xffffffffffffULL));
  return id;
}

std::string SelfPath() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string() : self.string();
}

int Run(const Flags& flags) {
  const std::vector<MixShare>& mix = flags.mix == "write" ? WriteMix() : RealisticMix();
  absl::StatusOr<std::unique_ptr<ScratchDirectory>> scratch =
      ScratchDirectory::Create(flags.dir, "gongdai-load-bench");
  if (!scratch.ok()) {
    std::fprintf(stderr, "error: %s\n", scratch.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "gongdai-load-bench: mix %s, %zu outstanding, %.2f s, %zu client threads, %zu "
      "channel%s, %u hardware threads\n",
      flags.mix.c_str(), flags.outstanding, flags.seconds, flags.client_threads, flags.channels,
      flags.channels == 1 ? "" : "s", std::thread::hardware_concurrency());
  std::printf("mix %s:", flags.mix.c_str());
  for (const MixShare& share : mix) {
    std::printf(" %s %d%%", kMethodNames[share.method], share.percent);
  }
  std::printf("; repayments answered with the %s loan\n", flags.repayment_view.c_str());

  // The ledger server: ours, or the one given.
  ChildServer ledger_server;
  std::string address = flags.server;
  std::string tokens_path = flags.tokens_file;
  pid_t server_pid = flags.server_pid;
  if (address.empty()) {
    const std::filesystem::path data_dir = (*scratch)->path() / "data";
    absl::Status started =
        ledger_server.Start({GONGDAI_SERVER_BINARY, "--data-dir", data_dir.string(), "--listen",
                             "127.0.0.1:0", "--business-date", "2020-06-30"},
                            (*scratch)->path() / "server.stderr", "ledger:");
    if (!started.ok()) {
      std::fprintf(stderr, "error: %s\n", started.ToString().c_str());
      return 1;
    }
    address = ledger_server.address();
    tokens_path = (data_dir / "dev-tokens.toml").string();
    server_pid = ledger_server.pid();
    std::printf("started %s on %s (pid %d), data in %s\n", GONGDAI_SERVER_BINARY, address.c_str(),
                server_pid, data_dir.c_str());
  }
  absl::StatusOr<std::map<std::string, std::string>> tokens = ReadTokens(tokens_path);
  if (!tokens.ok()) {
    std::fprintf(stderr, "error: %s\n", tokens.status().ToString().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<LedgerStub>> stubs;
  for (const auto& channel : Channels(address, flags.channels)) {
    stubs.push_back(v1::LoanLedger::NewStub(channel));
  }
  Book book;
  LedgerCalls calls(std::move(stubs), *tokens, RunId(),
                    flags.repayment_view == "full" ? v1::LOAN_VIEW_FULL : v1::LOAN_VIEW_BASIC,
                    book);
  absl::Status prepared = PrepareBook(flags, calls, book);
  if (!prepared.ok()) {
    if (prepared.code() == absl::StatusCode::kCancelled) {
      std::fprintf(stderr, "interrupted during the preparation\n");
      return 130;
    }
    std::fprintf(stderr, "error: %s%s\n", prepared.ToString().c_str(),
                 ledger_server.StderrTail().c_str());
    return 1;
  }

  const auto duration =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(flags.seconds));
  MixWorkload workload(mix, calls, book, Clock::now() + duration);
  const TimedRun ledger_run = MeasureRun(workload, flags, server_pid, 7);
  PrintTable("gongdai-server, mix " + flags.mix, ledger_run, flags.outstanding);
  if (workload.substituted() > 0) {
    std::printf("%llu calls found no application waiting and took the step before instead\n",
                static_cast<unsigned long long>(workload.substituted()));
  }
  const Totals ledger_all = Total(ledger_run.phase, false);
  const Totals ledger_writes = Total(ledger_run.phase, true);
  calls.CloseChannels();
  absl::Status stopped = ledger_server.Stop();
  if (!stopped.ok()) std::fprintf(stderr, "error: %s\n", stopped.ToString().c_str());
  if (Stopping()) {
    std::fprintf(stderr, "interrupted: the figures above cover a shortened run\n");
    return 130;
  }

  // The ceiling: the same loop against a service that only answers, with messages of the
  // ledger run's mean sizes.
  Totals echo_all;
  if (flags.ceiling) {
    ChildServer echo_server;
    absl::Status started = echo_server.Start({SelfPath(), "--serve-echo"},
                                             (*scratch)->path() / "echo.stderr", "echo server");
    if (!started.ok()) {
      std::fprintf(stderr, "error: %s\n", started.ToString().c_str());
      return 1;
    }
    const size_t request_bytes = static_cast<size_t>(ledger_all.mean_request_bytes + 0.5);
    const size_t response_bytes = static_cast<size_t>(ledger_all.mean_response_bytes + 0.5);
    TimedRun echo_run;
    size_t echo_request_bytes = 0;
    {
      // Closed at the end of this scope, before the echo server is stopped.
      const std::vector<std::shared_ptr<grpc::Channel>> echo_channels =
          Channels(echo_server.address(), flags.channels);
      auto echo_stubs = [&echo_channels] {
        std::vector<std::unique_ptr<EchoStub>> made;
        for (const auto& channel : echo_channels) made.push_back(echo::Echo::NewStub(channel));
        return made;
      };
      // A few calls first, so that the connections are up before the clock starts, as the
      // ledger's were after its preparation.
      EchoWorkload warm_up(echo_stubs(), request_bytes, response_bytes,
                           calls.cashier_authorization(),
                           Clock::now() + std::chrono::milliseconds(200));
      RunPhase(warm_up, flags.outstanding, flags.client_threads, 8);
      EchoWorkload echo_workload(echo_stubs(), request_bytes, response_bytes,
                                 calls.cashier_authorization(), Clock::now() + duration);
      echo_run = MeasureRun(echo_workload, flags, echo_server.pid(), 9);
      echo_request_bytes = echo_workload.request_bytes();
    }
    PrintTable("ceiling: gRPC echo service, request " + std::to_string(echo_request_bytes) +
                   " bytes, response " + std::to_string(response_bytes) + " bytes",
               echo_run, flags.outstanding);
    echo_all = Total(echo_run.phase, false);
    absl::Status echo_stopped = echo_server.Stop();
    if (!echo_stopped.ok()) std::fprintf(stderr, "error: %s\n", echo_stopped.ToString().c_str());
    if (echo_all.calls_per_second > 0) {
      std::printf("\nledger / echo ceiling: %.0f / %.0f calls/s = %.1f%%\n",
                  ledger_all.calls_per_second, echo_all.calls_per_second,
                  100.0 * ledger_all.calls_per_second / echo_all.calls_per_second);
    }
  }

  // One line for scripts (bench/run-all, bench/run-postgres-peer.sh).
  std::printf(
      "\nresult mix=%s outstanding=%zu seconds=%.2f calls_per_s=%.0f latency_us_p50=%.0f "
      "latency_us_p99=%.0f writes_per_s=%.0f write_latency_us_mean=%.0f write_latency_us_p50=%.0f "
      "write_latency_us_p99=%.0f write_latency_us_p999=%.0f errors=%llu server_cpu_s=%.2f "
      "echo_calls_per_s=%.0f echo_latency_us_p50=%.0f echo_latency_us_p99=%.0f "
      "repayment_view=%s\n",
      flags.mix.c_str(), flags.outstanding, ledger_run.phase.elapsed_seconds,
      ledger_all.calls_per_second, ledger_all.latency.p50_us, ledger_all.latency.p99_us,
      ledger_writes.calls_per_second, ledger_writes.latency.mean_us, ledger_writes.latency.p50_us,
      ledger_writes.latency.p99_us, ledger_writes.latency.p999_us,
      static_cast<unsigned long long>(ledger_all.errors + echo_all.errors),
      ledger_run.server_cpu_seconds, echo_all.calls_per_second, echo_all.latency.p50_us,
      echo_all.latency.p99_us, flags.repayment_view.c_str());
  if (ledger_all.errors + echo_all.errors > 0 || !stopped.ok()) {
    std::fprintf(stderr, "error: calls failed during the run (see the errors columns)\n");
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// --serve-echo: the ceiling's server, run as a child process like gongdai-server.

class EchoService final : public echo::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const echo::EchoMessage* request,
                                 echo::EchoMessage* response) override {
    if (request->reply_bytes() == 0) {
      response->set_payload(request->payload());
    } else {
      response->mutable_payload()->assign(request->reply_bytes(), 'r');
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

int ServeEcho() {
  // Taken by sigwait below, not by whichever of gRPC's threads the kernel picks: blocked
  // before any thread starts, as gongdai-server does.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  // gongdai-server's defaults.
  builder.SetMaxReceiveMessageSize(4 << 20);
  builder.SetMaxSendMessageSize(4 << 20);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4096);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "echo server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::printf("echo server listening on 127.0.0.1:%d (plaintext)\n", port);
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  return 0;
}

}  // namespace
}  // namespace gongdai::bench

int main(int argc, char** argv) {
  // As the server does (server/main.cc): Debian's Abseil keeps a lock-order graph on every
  // absl::Mutex that gRPC takes, unless told not to. The client and the echo ceiling run
  // without it, so that they take no more of the shared cores than gRPC needs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  using gongdai::bench::Flags;
  Flags flags;
  const char* tmpdir = std::getenv("TMPDIR");
  flags.dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";

  CLI::App app{
      "End-to-end load on gongdai-server over loopback gRPC (per-method throughput, latency "
      "percentiles, errors, server CPU), next to a gRPC echo service driven the same way."};
  app.add_option("--mix", flags.mix,
                 "write: RecordRepayment 90%, RecordFundContribution 10%; realistic: "
                 "RecordRepayment 30%, GetLoan 30%, GetLoanStatement 15%, SubmitApplication 8%, "
                 "ApproveApplication 7%, DisburseLoan 6%, RegisterBorrower 4%")
      ->check(CLI::IsMember({"write", "realistic"}))
      ->capture_default_str();
  app.add_option("--outstanding", flags.outstanding, "Calls in flight at all times")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--seconds", flags.seconds, "Duration of the ledger run and of the echo run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--loans", flags.loans, "Active loans disbursed before the run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--queued-applications", flags.queued_applications,
                 "Realistic mix: applications left submitted, and as many approved, before the "
                 "run")
      ->capture_default_str();
  app.add_option("--client-threads", flags.client_threads,
                 "Client threads, each with a completion queue and a share of the calls")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--channels", flags.channels, "gRPC channels (TCP connections) the calls go round")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--repayment-view", flags.repayment_view,
                 "What RecordRepayment asks back: basic (the loan without its schedule, as a "
                 "repayment feed would) or full (the loan with its schedule)")
      ->check(CLI::IsMember({"basic", "full"}))
      ->capture_default_str();
  app.add_flag("--ceiling,!--no-ceiling", flags.ceiling,
               "After the ledger run, measure the gRPC echo ceiling (default on)");
  app.add_option("--server", flags.server,
                 "Address of a running gongdai-server to use instead of starting one (its "
                 "ledger keeps what the benchmark writes)");
  app.add_option("--tokens-file", flags.tokens_file,
                 "With --server: its dev-tokens.toml (default gongdai-data/dev-tokens.toml)");
  app.add_option("--server-pid", flags.server_pid,
                 "With --server: its pid, to measure its CPU time");
  app.add_option("--dir", flags.dir, "Parent of the scratch directory (removed at the end)")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  app.add_flag("--smoke", flags.smoke,
               "About a second of load (40 loans, 0.5 s per run): checks that it works, "
               "measures nothing");
  app.add_flag("--serve-echo", flags.serve_echo,
               "Internal: serve the echo ceiling on 127.0.0.1 until SIGTERM");
  CLI11_PARSE(app, argc, argv);
  if (flags.serve_echo) return gongdai::bench::ServeEcho();
  if (flags.smoke) {
    flags.seconds = 0.5;
    flags.loans = 40;
    flags.queued_applications = 20;
  }
  if (!flags.server.empty() && flags.tokens_file.empty()) {
    flags.tokens_file = "gongdai-data/dev-tokens.toml";
  }

  struct sigaction action = {};
  action.sa_handler = gongdai::bench::RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return gongdai::bench::Run(flags);
}
