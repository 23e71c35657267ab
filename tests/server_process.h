// Starts the real gongdai-server binary on a free loopback port with its own data
// directory, for end-to-end tests, and stops it with SIGTERM.
#ifndef GONGDAI_TESTS_SERVER_PROCESS_H_
#define GONGDAI_TESTS_SERVER_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/sha256.h"
#include "gongdai/v1/ledger_service.grpc.pb.h"

namespace gongdai::testing {

// Forks and executes `argv` (argv[0] is the binary) with its standard output on a pipe,
// its standard error appended to `stderr_path` and `env` ("NAME=value") added to its
// environment. Returns the child's pid (-1 on failure) and sets `*stdout_fd` to the
// pipe's reading end.
inline pid_t SpawnWithPipedStdout(std::vector<std::string> argv, const std::string& stderr_path,
                                  const std::vector<std::string>& env, int* stdout_fd) {
  int out[2];
  if (::pipe(out) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    FILE* err = std::fopen(stderr_path.c_str(), "a");
    if (err != nullptr) ::dup2(::fileno(err), STDERR_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    std::_Exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return -1;
  }
  *stdout_fd = out[0];
  return pid;
}

class ServerProcess {
 public:
  // `args` are passed after the binary; `--listen 127.0.0.1:0` and `--data-dir` are
  // added unless given. `env` entries ("NAME=value") are added to the environment.
  // `wrapper`, when given, is the command (an absolute path and its arguments) that runs
  // the server binary in the same process, as `setpriv ... --` does.
  bool Start(const std::string& data_dir, std::vector<std::string> args = {},
             std::vector<std::string> env = {}, std::vector<std::string> wrapper = {}) {
    data_dir_ = data_dir;
    stderr_path_ = data_dir + ".stderr";
    std::vector<std::string> argv = std::move(wrapper);
    argv.insert(argv.end(), {GONGDAI_SERVER_BINARY, "--data-dir", data_dir});
    bool has_listen = false;
    for (const std::string& a : args) has_listen |= a == "--listen" || a == "--config";
    if (!has_listen) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    argv.insert(argv.end(), args.begin(), args.end());
    int out = -1;
    pid_ = SpawnWithPipedStdout(std::move(argv), stderr_path_, env, &out);
    if (pid_ < 0) return false;
    stdout_ = ::fdopen(out, "r");
    char line[1024];
    while (std::fgets(line, sizeof(line), stdout_) != nullptr) {
      startup_ += line;
      const std::string text = line;
      const std::string marker = "listening on ";
      if (auto at = text.find(marker); at != std::string::npos) {
        address_ = text.substr(at + marker.size());
        address_ = address_.substr(0, address_.find(' '));
      }
      if (text.starts_with("ledger:")) break;  // the last line of the startup banner
    }
    if (address_.empty()) return false;
    ReadTokens();
    return true;
  }

  // SIGTERM, then wait; returns the exit status.
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    return Wait();
  }
  // Stop in two steps, to look at the server while it stops: SIGTERM, then the wait.
  void BeginStop() const {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
  }
  int Wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (stdout_ != nullptr) std::fclose(stdout_);
    stdout_ = nullptr;
    return status;
  }

  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ != nullptr) std::fclose(stdout_);
  }

  const std::string& address() const { return address_; }
  const std::string& startup() const { return startup_; }
  std::string Token(const std::string& who) const {
    auto it = tokens_.find(who);
    return it == tokens_.end() ? "" : it->second;
  }
  std::string StderrText() const {
    std::ifstream in(stderr_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // A client of the server at the address it reported, or at `via` (another address it
  // listens on).
  std::unique_ptr<v1::LoanLedger::Stub> Stub(const std::string& via = "") const {
    return v1::LoanLedger::NewStub(
        grpc::CreateChannel(via.empty() ? address_ : via, grpc::InsecureChannelCredentials()));
  }

 private:
  void ReadTokens() {
    std::ifstream in(data_dir_ + "/dev-tokens.toml");
    std::string line;
    while (std::getline(in, line)) {
      const size_t eq = line.find(" = \"");
      if (eq == std::string::npos || line.starts_with("#")) continue;
      tokens_[line.substr(0, eq)] = line.substr(eq + 4, line.size() - eq - 5);
    }
  }

  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string data_dir_;
  std::string stderr_path_;
  std::string address_;
  std::string startup_;
  std::map<std::string, std::string> tokens_;
};

// What a run of the server binary that ends by itself (a print flag, a usage error) left.
struct ServerExit {
  int code = -1;    // its exit status; -1 if it did not exit normally
  std::string out;  // its standard output
  std::string err;  // its standard error
};

// Writes to `path` a server configuration that listens on a free loopback port and keeps
// the development tokens that a server on `data_dir` created, plus `token` for
// `principal` with `roles` (TOML array items, e.g. "\"auditor\", \"supervisor\"").
inline void WriteConfigAddingAToken(const std::string& path, const std::string& data_dir,
                                    const std::string& token, const std::string& principal,
                                    const std::string& roles) {
  std::ifstream hashes(data_dir + "/dev-token-hashes.toml");
  std::ofstream(path) << "listen = \"127.0.0.1:0\"\n"
                      << hashes.rdbuf() << "\n[[tokens]]\nsha256 = \""
                      << ToHex(ThreadSha256().Digest({token})) << "\"\nprincipal = \"" << principal
                      << "\"\nroles = [" << roles << "]\n";
}

// Runs the server binary with `--data-dir data_dir` and `args` until it exits. Its
// standard error goes where ServerProcess puts it (`data_dir` + ".stderr"), and what this
// run added there is returned.
inline ServerExit RunServerToExit(const std::string& data_dir, std::vector<std::string> args) {
  const std::string err_path = data_dir + ".stderr";
  std::vector<std::string> argv = {GONGDAI_SERVER_BINARY, "--data-dir", data_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  ServerExit result;
  std::ifstream before(err_path, std::ios::ate | std::ios::binary);
  const std::streamoff err_start = before ? static_cast<std::streamoff>(before.tellg()) : 0;
  int out = -1;
  const pid_t pid = SpawnWithPipedStdout(std::move(argv), err_path, {}, &out);
  if (pid < 0) return result;
  char chunk[1024];
  for (ssize_t n; (n = ::read(out, chunk, sizeof chunk)) > 0;) result.out.append(chunk, n);
  ::close(out);
  int status = 0;
  if (::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.code = WEXITSTATUS(status);
  }
  std::ifstream err(err_path, std::ios::binary);
  err.seekg(err_start);
  result.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return result;
}

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_SERVER_PROCESS_H_
