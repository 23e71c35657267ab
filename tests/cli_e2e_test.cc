// End-to-end: the real gongdai-server on a free loopback port with a temporary data
// directory, driven through the real `gongdai` binary the way a loan officer or a script
// runs it (arguments, stdin that is not a terminal, stdout, stderr, exit code).
#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "tests/server_process.h"
#include "tests/test_util.h"

extern char** environ;

namespace gongdai {
namespace {

using testing::ServerProcess;
using testing::TempDir;

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
  // For failure messages.
  std::string Show() const {
    return "exit " + std::to_string(code) + "\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

struct RunOptions {
  // Working directory; empty: the test's own.
  std::string cwd;
  // Fed to the client's stdin through a pipe (so never a terminal).
  std::string stdin_text;
  // "NAME=value" added to the environment.
  std::vector<std::string> env;
};

RunOptions WithStdin(std::string text) {
  RunOptions options;
  options.stdin_text = std::move(text);
  return options;
}
RunOptions WithEnv(std::vector<std::string> env) {
  RunOptions options;
  options.env = std::move(env);
  return options;
}
RunOptions InDirectory(std::string cwd) {
  RunOptions options;
  options.cwd = std::move(cwd);
  return options;
}

// Runs the gongdai binary with `args`. The environment is the test's own without any
// GONGDAI_* variable and with HOME set to `home` (so no user profile is read), plus
// `options.env`.
CliResult RunCli(const std::vector<std::string>& args, const std::string& home,
                 const RunOptions& options = {}) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.starts_with("GONGDAI_") || entry.starts_with("HOME=")) continue;
    env.push_back(entry);
  }
  env.push_back("HOME=" + home);
  env.insert(env.end(), options.env.begin(), options.env.end());
  std::vector<std::string> argv = {GONGDAI_CLI_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());

  int in[2], out[2], err[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0 || ::pipe(err) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) std::_Exit(126);
    std::vector<char*> raw_argv, raw_env;
    for (std::string& a : argv) raw_argv.push_back(a.data());
    raw_argv.push_back(nullptr);
    for (std::string& e : env) raw_env.push_back(e.data());
    raw_env.push_back(nullptr);
    ::execve(raw_argv[0], raw_argv.data(), raw_env.data());
    std::_Exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  // The input is small; write it all and close, so the client sees end of file.
  if (!options.stdin_text.empty()) {
    [[maybe_unused]] ssize_t written =
        ::write(in[1], options.stdin_text.data(), options.stdin_text.size());
  }
  ::close(in[1]);
  CliResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// Terminal columns of UTF-8 text: East Asian wide characters take two.
int Columns(std::string_view text) {
  int columns = 0;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    char32_t code = length == 1 ? c : c & (0xff >> (length + 1));
    for (size_t k = 1; k < length && i + k < text.size(); ++k)
      code = (code << 6) | (text[i + k] & 0x3f);
    const bool wide = (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) ||
                      (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
                      (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
                      (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x20000 && code <= 0x3fffd);
    columns += wide ? 2 : 1;
    i += length;
  }
  return columns;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The blocks of `text` that blank lines separate.
std::vector<std::vector<std::string>> Blocks(const std::string& text) {
  std::vector<std::vector<std::string>> blocks(1);
  for (const std::string& line : Lines(text)) {
    if (line.empty()) {
      if (!blocks.back().empty()) blocks.emplace_back();
    } else {
      blocks.back().push_back(line);
    }
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

// The display column where `needle` starts in `line`.
int ColumnOf(const std::string& line, const std::string& needle) {
  const size_t at = line.find(needle);
  return at == std::string::npos ? -1 : Columns(line.substr(0, at));
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// A loopback port nothing listens on.
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return message;
}

constexpr char kProductToml[] = R"(product_id = "fund-2020"
name = "庐陵工贷·互助金"
funding = "union-fund"
term_months_min = 3
term_months_max = 36
methods = ["monthly"]
grace_days = 5
dual_approval_above = "200000"

[[limits]]
category = "ordinary-member"
max_amount = "100000"
)";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = dir_.Sub("home");
    std::filesystem::create_directories(home_);
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(dir_.Sub("data"), {"--business-date", "2020-06-30"}))
        << server_->startup();
    tokens_ = dir_.Sub("data") + "/dev-tokens.toml";
  }

  // `gongdai --server ... --token-file .../dev-tokens.toml --as <role> args...`
  CliResult As(const std::string& role, std::vector<std::string> args,
               const RunOptions& options = {}) {
    std::vector<std::string> full = {
        "--server", server_->address(), "--token-file", tokens_, "--as", role};
    full.insert(full.end(), args.begin(), args.end());
    return RunCli(full, home_, options);
  }

  // `gongdai args...` against a port nothing listens on.
  CliResult Unreachable(std::vector<std::string> args) {
    std::vector<std::string> full = {"--server",     "127.0.0.1:" + std::to_string(ClosedPort()),
                                     "--token-file", tokens_,
                                     "--timeout",    "2"};
    full.insert(full.end(), args.begin(), args.end());
    return RunCli(full, home_);
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_.Sub(name);
    std::ofstream(path) << content;
    ::chmod(path.c_str(), 0600);
    return path;
  }

  // Product, fund, borrower 刘秀英 (B000001) and the active loan L000001 of 12,000.00 over
  // 12 months, all through the client.
  void ActiveLoan() {
    const std::string product = WriteFile("product.toml", kProductToml);
    CliResult r = As("supervisor", {"product", "define", "--file", product});
    ASSERT_EQ(r.code, 0) << r.Show();
    r = As("cashier", {"fund", "contribute", "--amount", "1000000", "--source", "吉安市总工会"});
    ASSERT_EQ(r.code, 0) << r.Show();
    r = As("officer",
           {"borrower", "register", "--national-id", "360802198506121016", "--name", "刘秀英",
            "--phone", "13907961234", "--member-no", "JA-0001", "--category", "ordinary-member",
            "--county", "吉州区", "--enterprise", "秀英农家乐", "--sector", "乡村旅游"});
    ASSERT_EQ(r.code, 0) << r.Show();
    r = As("officer", {"application", "submit", "--borrower", "B000001", "--product", "fund-2020",
                       "--amount", "12000", "--term", "12", "--method", "monthly", "--purpose",
                       "购置冷库设备", "--jobs", "3"});
    ASSERT_EQ(r.code, 0) << r.Show();
    r = As("approver", {"application", "approve", "L000001", "--note", "材料齐全"});
    ASSERT_EQ(r.code, 0) << r.Show();
    r = As("cashier", {"loan", "disburse", "L000001", "--amount", "12000"});
    ASSERT_EQ(r.code, 0) << r.Show();
  }

  v1::Loan LoanNow(const std::string& loan_id = "L000001") {
    const CliResult r = As("auditor", {"--json", "loan", "show", loan_id});
    EXPECT_EQ(r.code, 0) << r.Show();
    return FromJson<v1::Loan>(r.out);
  }

  std::string Balance(const std::string& account) {
    const CliResult r = As("auditor", {"--json", "account", "balance", account});
    EXPECT_EQ(r.code, 0) << r.Show();
    return FromJson<v1::AccountBalance>(r.out).balance();
  }

  uint64_t JournalLength() {
    const CliResult r = As("auditor", {"--json", "entry", "list", "--all"});
    EXPECT_EQ(r.code, 0) << r.Show();
    return static_cast<uint64_t>(FromJson<v1::ListEntriesResponse>(r.out).entries_size());
  }

  TempDir dir_;
  std::string home_;
  std::string tokens_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, WholeFlowThroughTheClient) {
  const std::string product = WriteFile("product.toml", kProductToml);
  CliResult r = As("supervisor", {"product", "define", "--file", product});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Definition of product fund-2020 recorded: entry 1 (2020-06-30)"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "100,000.00")) << r.out;

  r = As("cashier", {"fund", "contribute", "--amount", "1000000", "--source", "吉安市总工会"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(
      Contains(r.out, "Fund contribution of 1,000,000.00 from 吉安市总工会 recorded: entry 2"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "union:fund:cash")) << r.out;

  r = As("officer",
         {"borrower", "register", "--national-id", "360802198506121016", "--name", "刘秀英",
          "--phone", "13907961234", "--member-no", "JA-0001", "--category", "ordinary-member",
          "--county", "吉州区", "--enterprise", "秀英农家乐", "--sector", "乡村旅游"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Registration of borrower B000001 recorded: entry 3")) << r.out;
  EXPECT_TRUE(Contains(r.out, "刘秀英")) << r.out;

  r = As("officer",
         {"application", "submit", "--borrower", "B000001", "--product", "fund-2020", "--amount",
          "12000", "--term", "12", "--method", "monthly", "--purpose", "购置冷库设备", "--jobs",
          "3", "--guarantor", "王建国,360802198807152019,配偶"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Application L000001 of B000001 for 12,000.00 recorded: entry 4"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "王建国")) << r.out;

  // Four eyes: the officer who submitted may not approve; an approver may.
  r = As("approver", {"application", "approve", "L000001", "--note", "材料齐全"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Approval of L000001 recorded: entry 5")) << r.out;
  EXPECT_TRUE(Contains(r.out, "loan L000001 is approved")) << r.out;

  r = As("cashier", {"loan", "disburse", "L000001", "--amount", "12000"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "12 installments, the first due 2020-07-30")) << r.out;

  r = As("cashier", {"loan", "repay", "L000001", "--amount", "1500", "--channel", "cash",
                     "--reference", "收据0042"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(
      r.out,
      "Repayment of 1,500.00 on L000001 recorded: entry 7 (2020-06-30); outstanding 10,500.00"))
      << r.out;

  EXPECT_EQ(LoanNow().principal_outstanding(), "10500.00");
  EXPECT_EQ(Balance("union:fund:cash"), "989500.00");

  r = As("officer", {"loan", "list", "--status", "active"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "L000001")) << r.out;
  EXPECT_TRUE(Contains(r.out, "10,500.00")) << r.out;
  r = As("officer", {"loan", "list", "--status", "closed"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "No loans match.")) << r.out;

  r = As("portal", {"portfolio"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Outstanding principal  10,500.00")) << r.out;
}

TEST_F(CliTest, StatementTableShowsStatesAndLinesUpChineseText) {
  ActiveLoan();
  ASSERT_EQ(As("cashier", {"loan", "repay", "L000001", "--amount", "1500"}).code, 0);
  const CliResult r = As("officer", {"loan", "statement", "L000001", "--as-of", "2020-09-06"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const std::vector<std::vector<std::string>> blocks = Blocks(r.out);
  ASSERT_EQ(blocks.size(), 3u) << r.out;

  // The summary: a title, then labelled values in aligned columns.
  const std::vector<std::string>& summary = blocks[0];
  EXPECT_EQ(summary[0], "Statement of loan L000001 as of 2020-09-06");
  EXPECT_TRUE(Contains(r.out, "B000001 刘秀英")) << r.out;
  EXPECT_TRUE(Contains(r.out, "12,000.00 over 12 months")) << r.out;
  EXPECT_TRUE(Contains(r.out, "10,500.00")) << r.out;
  int county_row = -1;
  for (size_t i = 1; i < summary.size(); ++i) {
    EXPECT_EQ(Columns(summary[i]), Columns(summary[1])) << "line " << i << " of\n" << r.out;
    if (summary[i].starts_with("County")) county_row = static_cast<int>(i);
  }
  ASSERT_GT(county_row, 0) << r.out;
  EXPECT_EQ(ColumnOf(summary[static_cast<size_t>(county_row)], "吉州区"),
            ColumnOf(summary[1], "B000001"));

  // The installments: header, rule, one row per installment, every row as wide.
  const std::vector<std::string>& installments = blocks[1];
  ASSERT_EQ(installments[0], "Installments");
  const std::string& header = installments[1];
  for (const char* column : {"No.", "Due date", "Principal", "Paid", "Unpaid", "State"}) {
    EXPECT_TRUE(Contains(header, column)) << header;
  }
  ASSERT_EQ(installments.size(), 2u + 1u + 12u) << r.out;
  for (size_t i = 1; i < installments.size(); ++i) {
    EXPECT_EQ(Columns(installments[i]), Columns(header)) << installments[i];
  }
  const int state_column = ColumnOf(header, "State");
  EXPECT_EQ(ColumnOf(installments[3], "paid"), state_column) << installments[3];
  EXPECT_EQ(ColumnOf(installments[4], "overdue"), state_column) << installments[4];
  EXPECT_EQ(ColumnOf(installments[5], "not due"), state_column) << installments[5];
  EXPECT_TRUE(Contains(installments[4], "2020-08-30")) << installments[4];
  EXPECT_TRUE(Contains(installments[4], "1,000.00")) << installments[4];
  // Amounts are right-aligned: they end where their header ends.
  const auto end_of = [](const std::string& line, const std::string& text) {
    return Columns(line.substr(0, line.find(text) + text.size()));
  };
  EXPECT_EQ(end_of(installments[3], "1,000.00"), end_of(header, "Principal")) << installments[3];
  EXPECT_EQ(end_of(installments[4], "500.00"), end_of(header, "Paid")) << installments[4];

  // The entries of the loan, oldest first.
  const std::vector<std::string>& entries = blocks[2];
  ASSERT_EQ(entries[0], "Entries");
  ASSERT_EQ(entries.size(), 2u + 1u + 4u) << r.out;
  EXPECT_TRUE(Contains(entries[6], "repayment")) << entries[6];
  EXPECT_TRUE(Contains(entries[6], "1,500.00")) << entries[6];
  for (size_t i = 1; i < entries.size(); ++i)
    EXPECT_EQ(Columns(entries[i]), Columns(entries[1])) << entries[i];
}

TEST_F(CliTest, ListsLineUpNamesOfDifferentWidths) {
  ActiveLoan();
  CliResult r = As("officer", {"borrower", "register", "--national-id", "360802199003011231",
                               "--name", "王芳", "--phone", "13807960000", "--member-no", "JA-0002",
                               "--category", "ordinary-member", "--county", "青原区",
                               "--enterprise", "Wang's Tea", "--sector", "茶叶"});
  ASSERT_EQ(r.code, 0) << r.Show();
  r = As("officer", {"borrower", "list"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  for (const std::string& line : lines) EXPECT_EQ(Columns(line), Columns(lines[0])) << r.out;
  EXPECT_EQ(ColumnOf(lines[2], "吉州区"), ColumnOf(lines[0], "County")) << r.out;
  EXPECT_EQ(ColumnOf(lines[3], "青原区"), ColumnOf(lines[0], "County")) << r.out;
  EXPECT_EQ(ColumnOf(lines[3], "Wang's Tea"), ColumnOf(lines[0], "Enterprise")) << r.out;
}

TEST_F(CliTest, OverdueLoansAndTheProgrammeReport) {
  ActiveLoan();
  ASSERT_EQ(As("cashier", {"loan", "repay", "L000001", "--amount", "1500"}).code, 0);
  CliResult r = As("officer", {"loan", "overdue", "--as-of", "2020-09-06"});
  ASSERT_EQ(r.code, 0) << r.Show();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0], "Overdue loans as of 2020-09-06, most days past due first");
  EXPECT_TRUE(Contains(lines[3], "L000001")) << r.out;
  EXPECT_TRUE(Contains(lines[3], "吉州区")) << r.out;
  EXPECT_TRUE(Contains(lines[3], "2020-08-30")) << r.out;
  for (size_t i = 2; i < lines.size(); ++i)
    EXPECT_EQ(Columns(lines[i]), Columns(lines[1])) << r.out;

  // The year is not over on the business date (2020-06-30): reported up to it.
  r = As("portal", {"report", "--year", "2020", "--by", "county"});
  ASSERT_EQ(r.code, 0) << r.Show();
  lines = Lines(r.out);
  ASSERT_GE(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0], "Programme report 2020-01-01 to 2020-06-30, by county");
  for (size_t i = 2; i < lines.size(); ++i)
    EXPECT_EQ(Columns(lines[i]), Columns(lines[1])) << r.out;
  EXPECT_TRUE(Contains(r.out, "吉州区")) << r.out;
  EXPECT_TRUE(lines.back().starts_with("Total")) << r.out;
  EXPECT_TRUE(Contains(lines.back(), "12,000.00")) << r.out;

  r = As("portal", {"--json", "report", "--year", "2020", "--quarter", "2"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const v1::ProgrammeReport report = FromJson<v1::ProgrammeReport>(r.out);
  EXPECT_EQ(report.from(), "2020-04-01");
  EXPECT_EQ(report.total().loans_disbursed(), 1);
  EXPECT_EQ(report.total().amount_disbursed(), "12000.00");

  // CSV for a spreadsheet: a byte-order mark, a header, plain decimal amounts, a total.
  r = As("portal", {"report", "--year", "2020", "--by", "county", "--csv"});
  ASSERT_EQ(r.code, 0) << r.Show();
  lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r.out;
  EXPECT_TRUE(
      lines[0].starts_with("\xef\xbb\xbf"
                           "county,from,to,applications_received"))
      << lines[0];
  EXPECT_TRUE(Contains(r.out, "吉州区,2020-01-01,2020-06-30,1,1,0,0,1,12000.00,3,")) << r.out;
  EXPECT_TRUE(lines.back().starts_with("total,")) << r.out;
  // Categories and funding in the words the table and the flags use.
  r = As("portal", {"report", "--year", "2020", "--by", "funding,category", "--csv"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "\r\nunion-fund,ordinary-member,2020-01-01,")) << r.out;
  EXPECT_FALSE(Contains(r.out, "FUNDING_")) << r.out;
  EXPECT_FALSE(Contains(r.out, "BORROWER_CATEGORY_")) << r.out;
  // Without --by the one row is the total, written once: a sum over the file is right.
  r = As("portal", {"report", "--year", "2020", "--csv"});
  ASSERT_EQ(r.code, 0) << r.Show();
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_TRUE(lines[1].starts_with("2020-01-01,2020-06-30,1,1,0,0,1,12000.00,3,")) << r.out;
  r = As("officer", {"loan", "overdue", "--as-of", "2020-09-06", "--csv"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "2020-09-06,L000001,B000001,吉州区,7,1-30,2020-08-30,")) << r.out;
  // With a second loan, more days past due: a page at a time, or all of it in a spreadsheet.
  ASSERT_EQ(As("officer", {"application", "submit", "--borrower", "B000001", "--product",
                           "fund-2020", "--amount", "12000", "--term", "12", "--method", "monthly",
                           "--purpose", "扩建冷库", "--jobs", "1"})
                .code,
            0);
  ASSERT_EQ(As("approver", {"application", "approve", "L000002", "--note", "材料齐全"}).code, 0);
  ASSERT_EQ(As("cashier", {"loan", "disburse", "L000002", "--amount", "12000"}).code, 0);
  r = As("officer", {"loan", "overdue", "--as-of", "2020-09-06", "--page-size", "1"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "L000002")) << r.out;
  EXPECT_FALSE(Contains(r.out, "L000001")) << r.out;
  EXPECT_TRUE(Contains(r.out, "More: add --page-token 38/L000002")) << r.out;
  r = As("officer", {"loan", "overdue", "--as-of", "2020-09-06", "--page-size", "1", "--page-token",
                     "38/L000002"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "L000001")) << r.out;
  EXPECT_FALSE(Contains(r.out, "More:")) << r.out;
  r = As("officer", {"loan", "overdue", "--as-of", "2020-09-06", "--page-size", "1", "--csv"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_EQ(Lines(r.out).size(), 3u) << r.out;  // the header and both loans
  EXPECT_TRUE(Contains(r.out, "2020-09-06,L000002,B000001,吉州区,38,31-60,2020-07-30,")) << r.out;

  r = As("portal", {"report", "--quarter", "2"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--year")) << r.err;
  r = As("portal", {"report", "--year", "2020", "--by", "town"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--by")) << r.err;
}

TEST_F(CliTest, JsonOutputIsTheResponseMessage) {
  ActiveLoan();
  CliResult r = As("cashier", {"--json", "loan", "repay", "L000001", "--amount", "1500"});
  ASSERT_EQ(r.code, 0) << r.Show();
  ASSERT_EQ(Lines(r.out).size(), 1u) << "one JSON document: " << r.out;
  const v1::LoanResponse repaid = FromJson<v1::LoanResponse>(r.out);
  EXPECT_EQ(repaid.loan().principal_outstanding(), "10500.00");
  EXPECT_EQ(repaid.entry().sequence(), 7u);
  EXPECT_FALSE(repaid.entry().replayed());
  EXPECT_TRUE(Contains(r.out, "\"principal_outstanding\"")) << "proto field names: " << r.out;

  // --json may also come after the command.
  r = As("officer", {"loan", "statement", "L000001", "--as-of", "2020-09-06", "--json"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const v1::LoanStatement statement = FromJson<v1::LoanStatement>(r.out);
  EXPECT_EQ(statement.loan().loan_id(), "L000001");
  EXPECT_EQ(statement.as_of(), "2020-09-06");
  ASSERT_EQ(statement.installments_size(), 12);
  EXPECT_EQ(statement.installments(1).state(), "overdue");
  EXPECT_EQ(statement.days_past_due(), 7);
  EXPECT_EQ(statement.entries_size(), 4);

  r = As("officer", {"--json", "borrower", "list", "--all"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const v1::ListBorrowersResponse borrowers = FromJson<v1::ListBorrowersResponse>(r.out);
  ASSERT_EQ(borrowers.borrowers_size(), 1);
  EXPECT_EQ(borrowers.borrowers(0).name(), "刘秀英");

  // A list in JSON carries each loan whole unless --view basic leaves the schedules out;
  // the rest of each loan is the same either way.
  r = As("officer", {"--json", "loan", "list", "--all"});
  ASSERT_EQ(r.code, 0) << r.Show();
  v1::ListLoansResponse full = FromJson<v1::ListLoansResponse>(r.out);
  ASSERT_EQ(full.loans_size(), 1);
  EXPECT_EQ(full.loans(0).schedule_size(), 12);
  r = As("officer", {"--json", "loan", "list", "--all", "--view", "full"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const v1::ListLoansResponse asked_full = FromJson<v1::ListLoansResponse>(r.out);
  ASSERT_EQ(asked_full.loans_size(), 1);
  EXPECT_EQ(asked_full.loans(0).schedule_size(), 12);
  r = As("officer", {"--json", "loan", "list", "--all", "--view", "basic"});
  ASSERT_EQ(r.code, 0) << r.Show();
  const v1::ListLoansResponse basic = FromJson<v1::ListLoansResponse>(r.out);
  ASSERT_EQ(basic.loans_size(), 1);
  full.mutable_loans(0)->clear_schedule();
  EXPECT_EQ(basic.loans(0).SerializeAsString(), full.loans(0).SerializeAsString());
  r = As("officer", {"loan", "list", "--view", "summary"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--view")) << r.err;
  // The table has no column for a schedule: asking it for one is a usage error.
  r = As("officer", {"loan", "list", "--view", "full"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--view full: the table shows no schedules")) << r.err;
}

TEST_F(CliTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  CliResult r = As("cashier", {"loan", "repay", "L000001", "--amount", "5", "--bogus"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--bogus")) << r.err;
  // Even with a required option missing too, the unknown one is named.
  r = As("cashier", {"loan", "repay", "L000001", "--amuont", "5"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--amuont")) << r.err;

  r = As("cashier", {"loan", "repay", "L000001"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--amount is required")) << r.err;
  EXPECT_TRUE(Contains(r.err, "gongdai loan repay --help")) << r.err;

  r = As("cashier", {"loan", "repay", "L000001", "--amount", "5", "--channel", "cheque"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--channel")) << r.err;
  EXPECT_TRUE(Contains(r.err, "bank-transfer|cash|auto-debit")) << r.err;

  r = As("officer", {"loan", "statement", "L000001", "--as-of", "2020-02-30"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--as-of")) << r.err;

  r = As("officer", {"loan"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "choose a command")) << r.err;
  EXPECT_TRUE(Contains(r.err, "repay")) << r.err;

  r = As("officer", {"loan", "repay", "L000001", "--amount", "5", "--request-id", "has space"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--request-id")) << r.err;

  // A mistyped command is named, not taken for a missing one.
  r = As("officer", {"loan", "shw", "L000001"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "unknown command shw for gongdai loan")) << r.err;
  EXPECT_FALSE(Contains(r.err, "choose a command")) << r.err;
  r = As("officer", {"loans", "show"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "unknown command loans for gongdai")) << r.err;
}

// Counts and entry numbers are checked locally, and the rule is said in words.
TEST_F(CliTest, BadWholeNumbersAreRefusedLocallyWithTheRule) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"entry", "show", "abc"}, "sequence: \"abc\" is not a whole number"},
      {{"entry", "show", "0"}, "sequence: must be at least 1"},
      {{"entry", "list", "--from", "-3"}, "--from: \"-3\" is not a whole number"},
      {{"loan", "jobs", "L000001", "--created", "2.5"}, "--created: \"2.5\" is not a whole number"},
      {{"loan", "jobs", "L000001", "--created", "2147483648"},
       "--created: must be at most 2147483647"},
      {{"application", "submit", "--borrower", "B000001", "--product", "fund-2020", "--amount",
        "5000", "--term", "0", "--method", "monthly", "--purpose", "x"},
       "--term: must be at least 1"},
  };
  for (const auto& [args, rule] : cases) {
    std::vector<std::string> command = {"--as", "officer"};
    command.insert(command.end(), args.begin(), args.end());
    const CliResult r = Unreachable(command);
    EXPECT_EQ(r.code, 2) << rule << "\n" << r.Show();
    EXPECT_TRUE(Contains(r.err, rule)) << r.err;
    EXPECT_FALSE(Contains(r.err, "not in range")) << r.err;
  }
  EXPECT_EQ(Unreachable({"--as", "officer", "loan", "jobs", "L000001", "--created", "0"}).code, 5);
}

TEST_F(CliTest, BadAmountsAreRefusedLocallyWithTheRule) {
  // Nothing listens on the port: had the client called, it would have said so (exit 5).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1.234", "more than 2 decimals"},
      {"1,000", "thousands separators"},
      {"-5", "negative"},
      {"1e3", "exponent"},
      {"0", "greater than zero"},
  };
  for (const auto& [amount, rule] : cases) {
    const CliResult r =
        Unreachable({"--as", "cashier", "loan", "repay", "L000001", "--amount", amount});
    EXPECT_EQ(r.code, 2) << amount << "\n" << r.Show();
    EXPECT_TRUE(Contains(r.err, "--amount")) << r.err;
    EXPECT_TRUE(Contains(r.err, rule)) << r.err;
    EXPECT_FALSE(Contains(r.err, "unavailable")) << r.err;
  }
  const CliResult r =
      Unreachable({"--as", "cashier", "fund", "contribute", "--amount", "1.5.0", "--source", "x"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--amount")) << r.err;
}

TEST_F(CliTest, InvalidFieldsFromTheLedgerAreNamedAsFlags) {
  const CliResult r = As(
      "officer", {"borrower", "register", "--national-id", "360802198506121017", "--name", "刘秀英",
                  "--phone", "123", "--member-no", "JA-0001", "--category", "ordinary-member",
                  "--county", "吉州区", "--enterprise", "秀英农家乐", "--sector", "乡村旅游"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--phone: must be an 11-digit mobile number")) << r.err;
  EXPECT_TRUE(Contains(r.err, "--national-id:")) << r.err;
  EXPECT_FALSE(Contains(r.err, "INVALID_ARGUMENT")) << "no raw status dump: " << r.err;

  // The report's period is named by its flags too.
  CliResult report = As("portal", {"report", "--year", "2020", "--quarter", "2", "--month", "5"});
  EXPECT_EQ(report.code, 2) << report.Show();
  EXPECT_TRUE(Contains(report.err, "--month: ")) << report.err;
  report = As("portal", {"report", "--from", "2020-06-30", "--to", "2020-03-01"});
  EXPECT_EQ(report.code, 2) << report.Show();
  EXPECT_TRUE(Contains(report.err, "--to: ")) << report.err;
}

TEST_F(CliTest, BusinessRefusalExitsThreeWithTheRuleInWords) {
  ActiveLoan();
  CliResult r = As("cashier", {"loan", "repay", "L000001", "--amount", "12000.01"});
  EXPECT_EQ(r.code, 3) << r.Show();
  EXPECT_TRUE(Contains(r.err, "refused (EXCEEDS_OUTSTANDING)")) << r.err;
  EXPECT_TRUE(Contains(r.err, "more than loan L000001's outstanding principal of 12000.00"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "more than the principal the borrower still owes")) << r.err;
  EXPECT_EQ(LoanNow().principal_outstanding(), "12000.00");

  r = As("officer", {"loan", "show", "L000099"});
  EXPECT_EQ(r.code, 3) << r.Show();
  EXPECT_TRUE(Contains(r.err, "LOAN_NOT_FOUND")) << r.err;
}

// `borrower update` reads the borrower's details and writes them back with the change. A
// token with several roles calls in the first its method allows, but sees personal data
// when any of them may: a supervisor whose token lists "auditor" first updates a sector
// and keeps the phone (a masked phone written back would be refused).
TEST_F(CliTest, BorrowerUpdateByATokenWithSeveralRolesKeepsTheDetailsItRead) {
  ActiveLoan();
  server_->Stop();
  const std::string token = "token-of-zhang-who-audits-and-supervises";
  const std::string config = dir_.Sub("several-roles.toml");
  testing::WriteConfigAddingAToken(config, dir_.Sub("data"), token, "zhang",
                                   "\"auditor\", \"supervisor\"");
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(
      server_->Start(dir_.Sub("data"), {"--config", config, "--business-date", "2020-06-30"}))
      << server_->startup();
  const std::string zhang = WriteFile("zhang.token", token + "\n");

  CliResult r = RunCli({"--server", server_->address(), "--token-file", zhang, "borrower", "update",
                        "B000001", "--sector", "餐饮"},
                       home_);
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "13907961234")) << r.out;
  EXPECT_TRUE(Contains(r.out, "餐饮")) << r.out;
  // The auditor's own token still sees the phone masked, and the update kept it.
  r = As("auditor", {"borrower", "show", "B000001"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "139****1234")) << r.out;
  EXPECT_TRUE(Contains(r.out, "餐饮")) << r.out;
}

TEST_F(CliTest, WrongRoleOrTokenExitsFour) {
  ActiveLoan();
  CliResult r = As("officer", {"loan", "repay", "L000001", "--amount", "100"});
  EXPECT_EQ(r.code, 4) << r.Show();
  EXPECT_TRUE(Contains(r.err, "not allowed")) << r.err;
  EXPECT_TRUE(Contains(r.err, "RecordRepayment")) << r.err;
  EXPECT_TRUE(Contains(r.err, "\"officer\" token")) << r.err;

  r = As("nobody", {"loan", "show", "L000001"});
  EXPECT_EQ(r.code, 4) << r.Show();
  EXPECT_TRUE(Contains(r.err, "no token for \"nobody\"")) << r.err;

  const std::string wrong = WriteFile("wrong-token", "gd_officer_0000\n");
  r = RunCli({"--server", server_->address(), "--token-file", wrong, "loan", "show", "L000001"},
             home_);
  EXPECT_EQ(r.code, 4) << r.Show();
  EXPECT_TRUE(Contains(r.err, "not authenticated")) << r.err;
  EXPECT_FALSE(Contains(r.err + r.out, "gd_officer_0000")) << r.err;
}

TEST_F(CliTest, UnreachableServerExitsFiveAndGivesTheRequestId) {
  CliResult r = Unreachable({"loan", "show", "L000001"});
  EXPECT_EQ(r.code, 5) << r.Show();
  EXPECT_TRUE(Contains(r.err, "cannot reach the ledger")) << r.err;
  EXPECT_TRUE(Contains(r.err, "5 attempts")) << r.err;

  r = Unreachable(
      {"--as", "cashier", "loan", "repay", "L000001", "--amount", "100", "--request-id", "pay-42"});
  EXPECT_EQ(r.code, 5) << r.Show();
  EXPECT_TRUE(Contains(r.err, "retrying with the same request id pay-42")) << r.err;
  EXPECT_TRUE(Contains(r.err, "--request-id pay-42")) << r.err;
}

TEST_F(CliTest, RerunWithTheSameRequestIdDoesNotDoublePost) {
  ActiveLoan();
  const std::vector<std::string> repay = {"loan", "repay",        "L000001", "--amount",
                                          "800",  "--request-id", "pay-once"};
  CliResult first = As("cashier", repay);
  ASSERT_EQ(first.code, 0) << first.Show();
  EXPECT_TRUE(Contains(first.out, "Repayment of 800.00 on L000001 recorded: entry 7")) << first.out;
  CliResult again = As("cashier", repay);
  ASSERT_EQ(again.code, 0) << again.Show();
  EXPECT_TRUE(Contains(again.out, "already recorded (replayed): entry 7 (2020-06-30)"))
      << again.out;
  EXPECT_TRUE(Contains(again.out, "nothing new was written")) << again.out;

  EXPECT_EQ(LoanNow().principal_outstanding(), "11200.00");
  EXPECT_EQ(Balance("union:fund:cash"), "988800.00");
  EXPECT_EQ(Balance("loan:L000001:principal"), "11200.00");
  EXPECT_EQ(JournalLength(), 7u);

  // The same id for a different request is refused, not recorded.
  CliResult different =
      As("cashier", {"loan", "repay", "L000001", "--amount", "900", "--request-id", "pay-once"});
  EXPECT_EQ(different.code, 3) << different.Show();
  EXPECT_TRUE(Contains(different.err, "REQUEST_ID_REUSED")) << different.err;
  EXPECT_EQ(JournalLength(), 7u);
}

// Forwards RecordRepayment to the real server, and loses the first answer: the client sees
// UNAVAILABLE although the repayment was recorded, as when a connection drops.
class AnswerLosingProxy final : public v1::LoanLedger::Service {
 public:
  explicit AnswerLosingProxy(const std::string& target)
      : stub_(v1::LoanLedger::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))) {}

  grpc::Status RecordRepayment(grpc::ServerContext* context,
                               const v1::RecordRepaymentRequest* request,
                               v1::LoanResponse* response) override {
    grpc::ClientContext forward;
    auto authorization = context->client_metadata().find("authorization");
    if (authorization != context->client_metadata().end()) {
      forward.AddMetadata("authorization",
                          std::string(authorization->second.data(), authorization->second.size()));
    }
    const grpc::Status status = stub_->RecordRepayment(&forward, *request, response);
    std::lock_guard<std::mutex> lock(mutex_);
    request_ids_.push_back(request->request_id());
    if (request_ids_.size() == 1) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "connection lost before the answer arrived");
    }
    return status;
  }

  std::vector<std::string> request_ids() {
    std::lock_guard<std::mutex> lock(mutex_);
    return request_ids_;
  }

 private:
  std::unique_ptr<v1::LoanLedger::Stub> stub_;
  std::mutex mutex_;
  std::vector<std::string> request_ids_;
};

TEST_F(CliTest, AutomaticRetryAfterALostAnswerDoesNotDoublePost) {
  ActiveLoan();
  AnswerLosingProxy proxy(server_->address());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&proxy);
  std::unique_ptr<grpc::Server> proxy_server = builder.BuildAndStart();
  ASSERT_NE(proxy_server, nullptr);
  ASSERT_GT(port, 0);

  const CliResult r =
      RunCli({"--server", "127.0.0.1:" + std::to_string(port), "--token-file", tokens_, "--as",
              "cashier", "loan", "repay", "L000001", "--amount", "1000"},
             home_);
  proxy_server->Shutdown();
  ASSERT_EQ(r.code, 0) << r.Show();
  const std::vector<std::string> ids = proxy.request_ids();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], ids[1]) << "a retry carries the same request id";
  EXPECT_TRUE(ids[0].starts_with("cli-")) << ids[0];
  EXPECT_EQ(ids[0].size(), 4u + 32u) << ids[0];
  EXPECT_TRUE(Contains(r.err, "retrying with the same request id " + ids[0])) << r.err;
  EXPECT_TRUE(Contains(r.out, "already recorded (replayed): entry 7")) << r.out;

  // One repayment only.
  EXPECT_EQ(LoanNow().principal_outstanding(), "11000.00");
  EXPECT_EQ(Balance("union:fund:cash"), "989000.00");
  EXPECT_EQ(JournalLength(), 7u);
}

TEST_F(CliTest, DangerousCommandsNeedConfirmation) {
  ActiveLoan();
  ASSERT_EQ(As("cashier", {"loan", "repay", "L000001", "--amount", "1500"}).code, 0);
  const uint64_t before = JournalLength();

  // stdin is a pipe, not a terminal: no --yes, no write.
  CliResult r =
      As("supervisor", {"entry", "reverse", "7", "--reason", "重复录入"}, WithStdin("yes\n"));
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--yes")) << r.err;
  r = As("supervisor", {"loan", "write-off", "L000001", "--reason", "催收无果"});
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--yes")) << r.err;
  EXPECT_EQ(JournalLength(), before);
  EXPECT_EQ(LoanNow().principal_outstanding(), "10500.00");

  r = As("supervisor", {"entry", "reverse", "7", "--reason", "重复录入", "--yes"});
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "Reversal of entry 7 recorded: entry 8")) << r.out;
  EXPECT_EQ(LoanNow().principal_outstanding(), "12000.00");
}

TEST_F(CliTest, EveryCommandsHelpHasAnExample) {
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"loan", "repay", "--help"},
                                             {"loan", "statement", "--help"},
                                             {"borrower", "register", "--help"},
                                             {"application", "submit", "--help"},
                                             {"entry", "reverse", "--help"},
                                             {"product", "define", "--help"},
                                             {"portfolio", "--help"},
                                             {"loan", "--help"}}) {
    const CliResult r = RunCli(command, home_);
    EXPECT_EQ(r.code, 0) << r.Show();
    EXPECT_TRUE(Contains(r.out, "Example")) << r.out;
  }
  EXPECT_TRUE(Contains(RunCli({"--help"}, home_).out, "Exit codes"))
      << "the root help documents exit codes";
  EXPECT_TRUE(Contains(RunCli({"product", "define", "--help"}, home_).out, "[[limits]]"));
}

TEST_F(CliTest, TheTokenIsNeverPrinted) {
  ActiveLoan();
  std::string everything;
  const auto run = [&](const CliResult& r) { everything += r.out + r.err; };
  run(As("cashier", {"loan", "repay", "L000001", "--amount", "100"}));
  run(As("cashier", {"--json", "loan", "repay", "L000001", "--amount", "100"}));
  run(As("officer", {"loan", "repay", "L000001", "--amount", "100"}));
  run(As("cashier", {"loan", "repay", "L000001", "--amount", "99999"}));
  run(As("auditor", {"entry", "list", "--all"}));
  run(As("nobody", {"loan", "show", "L000001"}));
  run(As("officer", {"--server", "127.0.0.1:" + std::to_string(ClosedPort()), "--timeout", "2",
                     "loan", "show", "L000001"}));
  // A file holding just the cashier's token works as well.
  const std::string cashier = WriteFile("cashier-token", server_->Token("cashier") + "\n");
  const CliResult plain = RunCli(
      {"--server", server_->address(), "--token-file", cashier, "loan", "show", "L000001"}, home_);
  EXPECT_EQ(plain.code, 0) << plain.Show();
  run(plain);
  // A plain token file with --as is a mistake the client explains without the token.
  run(RunCli({"--server", server_->address(), "--token-file", cashier, "--as", "cashier", "loan",
              "show", "L000001"},
             home_));
  for (const char* role : {"officer", "approver", "approver2", "cashier", "supervisor", "auditor",
                           "portal", "admin"}) {
    const std::string token = server_->Token(role);
    ASSERT_FALSE(token.empty()) << role;
    EXPECT_FALSE(Contains(everything, token)) << role << "'s token was printed";
  }
}

TEST_F(CliTest, SettingsComeFromTheEnvironmentAndTheProfile) {
  ActiveLoan();
  CliResult r = RunCli({"--json", "loan", "show", "L000001"}, home_,
                       WithEnv({"GONGDAI_SERVER=" + server_->address(),
                                "GONGDAI_TOKEN_FILE=" + tokens_, "GONGDAI_AS=auditor"}));
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_EQ(FromJson<v1::Loan>(r.out).loan_id(), "L000001");

  // The standard profile under $HOME, with a path relative to the profile.
  std::filesystem::create_directories(home_ + "/.config/gongdai");
  std::filesystem::copy_file(tokens_, home_ + "/.config/gongdai/tokens.toml");
  std::ofstream(home_ + "/.config/gongdai/profile.toml")
      << "server = \"" << server_->address()
      << "\"\ntoken_file = \"tokens.toml\"\nas = \"cashier\"\n";
  r = RunCli({"loan", "repay", "L000001", "--amount", "100"}, home_);
  ASSERT_EQ(r.code, 0) << r.Show();
  // A flag beats the environment, which beats the profile.
  r = RunCli({"--as", "officer", "loan", "repay", "L000001", "--amount", "100"}, home_,
             WithEnv({"GONGDAI_AS=supervisor"}));
  EXPECT_EQ(r.code, 4) << r.Show();
  r = RunCli({"loan", "repay", "L000001", "--amount", "100"}, home_,
             WithEnv({"GONGDAI_AS=officer"}));
  EXPECT_EQ(r.code, 4) << r.Show();

  // A profile with a misspelt key is a usage error naming it.
  const std::string bad = WriteFile("bad-profile.toml", "sever = \"127.0.0.1:1\"\n");
  r = RunCli({"--profile", bad, "loan", "show", "L000001"}, home_);
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "unknown setting \"sever\"")) << r.err;
}

TEST_F(CliTest, TlsWithACaFileAndAServerName) {
  server_->Stop();
  const std::string key = dir_.Sub("key.pem");
  const std::string cert = dir_.Sub("cert.pem");
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
      " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const std::string config =
      WriteFile("server.toml", "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"" + cert +
                                   "\"\nkey_file = \"" + key + "\"\n");
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(dir_.Sub("tls-data"), {"--config", config})) << server_->startup();
  const std::string tokens = dir_.Sub("tls-data") + "/dev-tokens.toml";
  // 127.0.0.1 is not the certificate's name: --tls-server-name says which name to expect.
  CliResult r = RunCli({"--server", server_->address(), "--token-file", tokens, "--ca-file", cert,
                        "--tls-server-name", "localhost", "product", "list"},
                       home_);
  EXPECT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "No products are defined.")) << r.out;
  r = RunCli({"--server", server_->address(), "--token-file", tokens, "product", "list"}, home_,
             WithEnv({"GONGDAI_CA_FILE=" + cert, "GONGDAI_TLS_SERVER_NAME=localhost"}));
  EXPECT_EQ(r.code, 0) << r.Show();
  // Plaintext to a TLS port does not get through.
  r = RunCli(
      {"--server", server_->address(), "--token-file", tokens, "--timeout", "2", "product", "list"},
      home_);
  EXPECT_EQ(r.code, 5) << r.Show();
  // A CA file that cannot be read is a usage error.
  r = RunCli({"--server", server_->address(), "--token-file", tokens, "--ca-file",
              dir_.Sub("missing.pem"), "product", "list"},
             home_);
  EXPECT_EQ(r.code, 2) << r.Show();
  EXPECT_TRUE(Contains(r.err, "missing.pem")) << r.err;
}

TEST(CliWorkingDirectoryTest, FindsTheDevelopmentTokensOfAServerInTheSameDirectory) {
  TempDir dir;
  const std::string home = dir.Sub("home");
  std::filesystem::create_directories(home);
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.Sub("gongdai-data"), {"--business-date", "2020-06-30"}))
      << server.startup();
  // No --token-file, no --as, no GONGDAI_* variables, no profile: ./gongdai-data/dev-tokens.toml.
  CliResult r =
      RunCli({"--server", server.address(), "product", "list"}, home, InDirectory(dir.path()));
  ASSERT_EQ(r.code, 0) << r.Show();
  EXPECT_TRUE(Contains(r.out, "No products are defined.")) << r.out;
  // The default role is the officer's: registering a borrower works, recording money not.
  r = RunCli(
      {"--server", server.address(), "fund", "contribute", "--amount", "100", "--source", "x"},
      home, InDirectory(dir.path()));
  EXPECT_EQ(r.code, 4) << r.Show();
  r = RunCli({"--server", server.address(), "--as", "cashier", "fund", "contribute", "--amount",
              "100", "--source", "吉安市总工会"},
             home, InDirectory(dir.path()));
  EXPECT_EQ(r.code, 0) << r.Show();
  // Elsewhere, with no token file, the client says how to give one.
  r = RunCli({"--server", server.address(), "product", "list"}, home, InDirectory(home));
  EXPECT_EQ(r.code, 4) << r.Show();
  EXPECT_TRUE(Contains(r.err, "--token-file")) << r.err;
}

}  // namespace
}  // namespace gongdai
