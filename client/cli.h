// What the commands share: the global options, helpers to declare options the same way
// everywhere (amounts, dates, enum words, write options), and helpers to call the ledger
// and print its answer as a table or as JSON. Internal to the client.
#ifndef GONGDAI_CLIENT_CLI_H_
#define GONGDAI_CLIENT_CLI_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "client/app.h"
#include "client/enums.h"
#include "client/rpc.h"
#include "client/settings.h"

namespace gongdai::client {

// Thrown by a command to end with an exit code once it has said why.
class Exit : public std::exception {
 public:
  explicit Exit(int code) : code_(code) {}
  int code() const { return code_; }
  const char* what() const noexcept override { return "gongdai exit"; }

 private:
  int code_;
};

// The options every write takes.
struct WriteFlags {
  std::string request_id;
  std::string business_date;
};

// List paging options.
// The largest page the ledger gives.
inline constexpr int kPageSizeLargest = 500;

struct PageFlags {
  int page_size = 0;
  std::string page_token;
  bool all = false;
};

class Cli {
 public:
  explicit Cli(Io& io) : io_(io) {}

  std::ostream& out() { return io_.out; }
  std::ostream& err() { return io_.err; }
  Io& io() { return io_; }
  bool json() const { return json_; }

  // ---- Declaring commands ---------------------------------------------------------------

  void AddGlobalOptions(CLI::App& app);
  // A command (a noun such as "loan", or a verb under it) with its footer example.
  CLI::App* Command(CLI::App& parent, const std::string& name, const std::string& description,
                    const std::string& example);
  // What runs when the command is the one chosen.
  void Action(CLI::App* command, std::function<void()> action);
  // The chosen command's action (empty before parsing, or when no command was chosen).
  const std::function<void()>& chosen_action() const { return action_; }
  // --request-id and --business-date.
  void AddWriteFlags(CLI::App* command, WriteFlags& flags);
  // --page-size, --page-token, --all.
  void AddPageFlags(CLI::App* command, PageFlags& flags);
  // An amount in yuan, checked locally: a bad one is a usage error naming the flag.
  CLI::Option* AddAmount(CLI::App* command, const std::string& name, std::string& target,
                         const std::string& description);
  // A date YYYY-MM-DD, checked locally.
  CLI::Option* AddDate(CLI::App* command, const std::string& name, std::string& target,
                       const std::string& description);
  // A whole number from `min` to `max`, checked locally ("abc" and "0" for a count that
  // starts at 1 are usage errors that say so).
  static CLI::Validator WholeNumber(uint64_t min, uint64_t max);
  // One of an enum's words; `target` receives the enum value.
  CLI::Option* AddWord(CLI::App* command, const std::string& name, int& target,
                       const EnumWords& words, const std::string& description);

  // ---- Running commands -----------------------------------------------------------------

  // Connects on first use; reports and throws Exit when the settings or the token are not
  // usable.
  Session& Connect();

  // A read: reports and throws Exit on failure.
  template <typename Request, typename Response>
  void Read(Session::Method<Request, Response> method, const Request& request, Response* response) {
    Session& session = Connect();
    int attempts = 1;
    grpc::Status status = session.Call(method, request, response, {}, &attempts);
    if (!status.ok()) Fail(status, "", attempts);
  }

  // A read whose failure is not worth stopping for (a name to decorate a statement).
  template <typename Request, typename Response>
  bool TryRead(Session::Method<Request, Response> method, const Request& request,
               Response* response) {
    return Connect().Call(method, request, response).ok();
  }

  // A write: sets the request id (--request-id or a new one, the same on every retry) and
  // the business date, then calls; reports and throws Exit on failure.
  template <typename Request, typename Response>
  void Write(Session::Method<Request, Response> method, const WriteFlags& flags, Request& request,
             Response* response) {
    request.set_request_id(flags.request_id.empty() ? NewRequestId() : flags.request_id);
    request.set_business_date(flags.business_date);
    Session& session = Connect();
    int attempts = 1;
    grpc::Status status = session.Call(method, request, response, request.request_id(), &attempts);
    if (!status.ok()) Fail(status, request.request_id(), attempts);
  }

  // Prints `message` as JSON (the proto JSON mapping, proto field names, every field).
  void PrintJson(const google::protobuf::Message& message);
  // In JSON mode the message, otherwise `text()`.
  void Print(const google::protobuf::Message& message, const std::function<std::string()>& text);

  // For dangerous commands: proceeds with --yes; otherwise asks on a terminal ("Type yes to
  // <action>") after showing `describe()`, and refuses (usage error) when stdin is not a
  // terminal. Call NeedsConfirmation before contacting the ledger.
  void NeedsConfirmation(const std::string& command, bool yes);
  void Confirm(bool yes, const std::string& action, const std::function<std::string()>& describe);

  // Prints "gongdai: <message>" and throws Exit(kExitUsage).
  [[noreturn]] void UsageError(const std::string& message);

 private:
  [[noreturn]] void Fail(const grpc::Status& status, const std::string& request_id, int attempts);

  Io& io_;
  ConnectionFlags connection_;
  int timeout_seconds_ = 30;
  bool json_ = false;
  std::unique_ptr<Session> session_;
  std::function<void()> action_;
};

// Reads one page of a list (or, with --all, every page from --page-token on) into
// `result`: the first page as it came (with whatever else the response says, such as its
// date), then the items of each further page; `items` gives a response's repeated field.
// `carry(first_page, request)` may fix in the request, for the pages after the first, what
// the first page settled (the date of a list "as of today").
template <typename Request, typename Response, typename Items, typename Carry>
void ReadPages(Cli& cli, Session::Method<Request, Response> method, Request request,
               const PageFlags& flags, Response* result, Items items, Carry carry) {
  request.set_page_size(flags.page_size);
  request.set_page_token(flags.page_token);
  for (bool first = true;; first = false) {
    Response page;
    cli.Read(method, request, &page);
    if (first) {
      *result = std::move(page);
      carry(*result, request);
    } else {
      for (auto& item : *items(page)) *items(*result)->Add() = std::move(item);
      result->set_next_page_token(page.next_page_token());
    }
    if (!flags.all || result->next_page_token().empty()) return;
    request.set_page_token(result->next_page_token());
  }
}

template <typename Request, typename Response, typename Items>
void ReadPages(Cli& cli, Session::Method<Request, Response> method, Request request,
               const PageFlags& flags, Response* result, Items items) {
  ReadPages(cli, method, std::move(request), flags, result, items,
            [](const Response&, Request&) {});
}

// The line under a list that has more pages.
inline std::string MorePages(const std::string& next_page_token) {
  if (next_page_token.empty()) return "";
  return "\nMore: add --page-token " + next_page_token +
         " for the next page, or --all for every page.\n";
}

void AddBorrowerCommands(Cli& cli, CLI::App& app);
void AddApplicationCommands(Cli& cli, CLI::App& app);
void AddLoanCommands(Cli& cli, CLI::App& app);
void AddLedgerCommands(Cli& cli, CLI::App& app);

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_CLI_H_
