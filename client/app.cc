#include "client/app.h"

#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cstdint>

#include "client/cli.h"
#include "engine/date.h"
#include "engine/money.h"
#include "engine/status.h"

namespace gongdai::client {
namespace {

constexpr int64_t kApiAmountFenMax = 10'000'000'000;  // the API's limit: 100 million yuan

constexpr char kRootFooter[] =
    R"(Connection (a flag, else the environment variable, else the profile, else the default):
  --server           GONGDAI_SERVER           default 127.0.0.1:50051
  --ca-file          GONGDAI_CA_FILE          TLS, trusting this CA certificate (PEM)
  --tls-server-name  GONGDAI_TLS_SERVER_NAME  the name to expect in the server's certificate
  --token-file       GONGDAI_TOKEN_FILE       a file holding your token, or a server's dev-tokens.toml
  --as               GONGDAI_AS               the role whose token dev-tokens.toml gives (default officer)
  --profile          GONGDAI_PROFILE          default ~/.config/gongdai/profile.toml, with the keys
                                              server, ca_file, token_file, as, tls_server_name
  With no token file configured, ./gongdai-data/dev-tokens.toml (a development server's
  tokens) is used when it exists. The token is never given on the command line.

Output: tables for people; --json prints the ledger's answer, one JSON document per
command. Writes send a request id (--request-id, or a new random one) and are retried
with the same id when the ledger is unavailable or busy, so a retry never records twice.

Exit codes:
  0  success
  1  any other failure
  2  usage: bad flags or values (checked locally, or refused by the ledger as invalid)
  3  refused by a business rule (FAILED_PRECONDITION, NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE),
     or a borrower changed by someone else between the update's read and its write
  4  authentication or permission (no usable token, UNAUTHENTICATED, PERMISSION_DENIED)
  5  the ledger is unreachable, unavailable or busy after retries (UNAVAILABLE,
     DEADLINE_EXCEEDED, a full writer queue, a loan that kept changing while read)

Example:
  gongdai --as cashier loan repay L000001 --amount 1500 --channel cash
  gongdai loan statement L000001 --as-of 2020-09-30)";

std::string CommandPath(const CLI::App* app) {
  std::string path;
  for (; app != nullptr; app = app->get_parent()) {
    path = app->get_name() + (path.empty() ? "" : " " + path);
  }
  return path;
}

int ReportParseError(CLI::App& app, const CLI::ParseError& e, Io& io) {
  CLI::App* deepest = &app;
  while (!deepest->get_subcommands().empty()) deepest = deepest->get_subcommands().front();
  const bool verb_missing = !deepest->get_subcommands({}).empty();
  const std::vector<std::string> extras = app.remaining(/*recurse=*/true);
  if (verb_missing && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    // A word where a command belongs is a mistyped command (`loan shw`), not a missing one.
    if (!extras.empty() && !extras.front().starts_with("-")) {
      io.err << "gongdai: unknown command " << extras.front() << " for " << CommandPath(deepest)
             << "\nRun '" << CommandPath(deepest) << " --help' for its commands.\n";
      return kExitUsage;
    }
    io.err << CommandPath(deepest) << ": choose a command\n\n" << deepest->help();
    return kExitUsage;
  }
  // An unknown option is what went wrong first, even when a required one is also missing
  // (CLI11 checks requirements before it reports what it did not recognise).
  if (!extras.empty()) {
    io.err << "gongdai: "
           << (extras.front().starts_with("-") ? "unknown option " : "unexpected argument ")
           << extras.front() << " for " << CommandPath(deepest) << "\n";
  } else {
    io.err << "gongdai: " << e.what() << "\n";
  }
  io.err << "Run '" << CommandPath(deepest) << " --help' for the options and an example.\n";
  return kExitUsage;
}

std::string FirstDescription(const absl::Status& status) {
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  return violations.empty() ? std::string(status.message()) : violations.front().description;
}

// What is wrong with an amount, and, when it is its form, how to write one.
std::string AmountProblem(const absl::Status& status) {
  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (violations.empty()) return std::string(status.message());
  const FieldViolation& v = violations.front();
  if (v.reason == "AMOUNT_EMPTY" || v.reason == "AMOUNT_ZERO" ||
      v.reason == "AMOUNT_ABOVE_MAXIMUM") {
    return v.description;
  }
  return v.description +
         "; write yuan with at most two decimals and no separators, such as 1500 or 1234.50";
}

}  // namespace

void Cli::AddGlobalOptions(CLI::App& app) {
  // An option given twice takes its last value, so a script can override an alias.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  const std::string group = "Connection and output";
  app.add_option("--server", connection_.server, "the ledger's address")
      ->type_name("HOST:PORT")
      ->group(group);
  app.add_option("--ca-file", connection_.ca_file,
                 "connect with TLS, trusting this CA certificate (PEM)")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--tls-server-name", connection_.tls_server_name,
                 "the server name to expect in the ledger's certificate")
      ->type_name("NAME")
      ->group(group);
  app.add_option("--token-file", connection_.token_file,
                 "file holding your token, or a server's development tokens file")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--as", connection_.as,
                 "with a development tokens file: whose token to use (default officer)")
      ->type_name("ROLE")
      ->group(group);
  app.add_option("--profile", connection_.profile,
                 "profile file (default ~/.config/gongdai/profile.toml)")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--timeout", timeout_seconds_, "seconds to wait for each call (default 30)")
      ->check(CLI::Range(1, 3600))
      ->type_name("SECONDS")
      ->group(group);
  app.add_flag("--json", json_, "print the ledger's answer as JSON instead of tables")
      ->group(group);
  app.set_version_flag("--version", std::string("gongdai ") + GONGDAI_VERSION);
  // Global options may also come after the command: `gongdai loan show L000001 --json`.
  app.fallthrough();
  app.require_subcommand(1);
}

CLI::App* Cli::Command(CLI::App& parent, const std::string& name, const std::string& description,
                       const std::string& example) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->footer(
      "Example:\n  " + example +
      "\n\nConnection and output options (--server, --token-file, --as, --json, --timeout, "
      "...) go before or after the command; see gongdai --help.");
  return command;
}

void Cli::Action(CLI::App* command, std::function<void()> action) {
  command->callback([this, action = std::move(action)] { action_ = action; });
}

void Cli::AddWriteFlags(CLI::App* command, WriteFlags& flags) {
  command
      ->add_option(
          "--request-id", flags.request_id,
          "this write's id; the same command with the same id is never recorded twice (default: "
          "a new random id)")
      ->type_name("ID")
      ->check(CLI::Validator(
          [](std::string& id) -> std::string {
            return IsValidRequestId(id) ? ""
                                        : "must be 1-128 printable ASCII characters without spaces";
          },
          ""));
  AddDate(command, "--business-date", flags.business_date,
          "the date the event takes effect (default: today's business date)");
}

void Cli::AddPageFlags(CLI::App* command, PageFlags& flags) {
  command->add_option("--page-size", flags.page_size, "how many to show (default 50, at most 500)")
      ->check(CLI::Range(1, kPageSizeLargest));
  command->add_option("--page-token", flags.page_token,
                      "continue after the previous page (printed under it)");
  command->add_flag("--all", flags.all, "every page, not just the first");
}

CLI::Validator Cli::WholeNumber(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        uint64_t value = 0;
        const char* end = text.data() + text.size();
        const bool digits =
            !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        const std::from_chars_result parsed = std::from_chars(text.data(), end, value);
        if (!digits) return "\"" + text + "\" is not a whole number";
        if (parsed.ec == std::errc::result_out_of_range || value > max)
          return "must be at most " + std::to_string(max);
        if (value < min) return "must be at least " + std::to_string(min);
        return "";
      },
      "");
}

CLI::Option* Cli::AddAmount(CLI::App* command, const std::string& name, std::string& target,
                            const std::string& description) {
  return command->add_option(name, target, description + ", in yuan (such as 1500 or 1234.50)")
      ->type_name("YUAN")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            AmountRules rules;
            rules.allow_zero = false;
            rules.max_fen = kApiAmountFenMax;
            absl::StatusOr<Money> amount = ParseAmount(text, "amount", rules);
            if (amount.ok()) return "";
            return AmountProblem(amount.status());
          },
          ""));
}

CLI::Option* Cli::AddDate(CLI::App* command, const std::string& name, std::string& target,
                          const std::string& description) {
  return command->add_option(name, target, description)
      ->type_name("YYYY-MM-DD")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            absl::StatusOr<Date> date = ParseDate(text, "date");
            return date.ok() ? "" : FirstDescription(date.status()) + " (such as 2020-06-30)";
          },
          ""));
}

CLI::Option* Cli::AddWord(CLI::App* command, const std::string& name, int& target,
                          const EnumWords& words, const std::string& description) {
  return command
      ->add_option_function<std::string>(
          name,
          [&target, &words](const std::string& text) { target = words.Parse(text).value_or(0); },
          description)
      ->type_name(words.Choices())
      ->check(CLI::Validator(
          [&words](std::string& text) -> std::string {
            return words.Parse(text).has_value()
                       ? ""
                       : "\"" + text + "\" is not one of " + words.Choices();
          },
          ""));
}

Session& Cli::Connect() {
  if (session_ != nullptr) return *session_;
  absl::StatusOr<ConnectionSettings> settings = ResolveSettings(connection_, io_.getenv);
  if (!settings.ok()) {
    io_.err << "gongdai: " << settings.status().message() << "\n";
    throw Exit(ExitCodeFor(settings.status()));
  }
  absl::StatusOr<Credentials> credentials = LoadCredentials(*settings);
  if (!credentials.ok()) {
    io_.err << "gongdai: " << credentials.status().message() << "\n";
    throw Exit(ExitCodeFor(credentials.status()));
  }
  const std::string token_file =
      settings->token_file.empty() ? kDefaultTokensFile : settings->token_file;
  if (std::optional<std::string> warning = TokenFilePermissionWarning(token_file)) {
    io_.err << "gongdai: " << *warning << "\n";
  }
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Open(
      *settings, *std::move(credentials), std::chrono::seconds(timeout_seconds_), io_.err);
  if (!session.ok()) {
    io_.err << "gongdai: " << session.status().message() << "\n";
    throw Exit(ExitCodeFor(session.status()));
  }
  session_ = *std::move(session);
  return *session_;
}

void Cli::Fail(const grpc::Status& status, const std::string& request_id, int attempts) {
  FailureContext context;
  context.server = session_->settings().server;
  context.request_id = request_id;
  context.credentials = session_->credentials().source;
  context.attempts = attempts;
  throw Exit(ReportFailure(status, context, io_.err));
}

void Cli::PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  const auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    io_.err << "gongdai: cannot print the answer as JSON: " << status.ToString() << "\n";
    throw Exit(kExitFailure);
  }
  io_.out << text << "\n";
}

void Cli::Print(const google::protobuf::Message& message,
                const std::function<std::string()>& text) {
  if (json_) {
    PrintJson(message);
  } else {
    io_.out << text();
  }
}

void Cli::NeedsConfirmation(const std::string& command, bool yes) {
  if (yes || io_.stdin_is_terminal) return;
  UsageError(command +
             " needs confirmation, and stdin is not a terminal where someone could type yes: pass "
             "--yes to "
             "confirm (nothing was sent to the ledger)");
}

void Cli::Confirm(bool yes, const std::string& action,
                  const std::function<std::string()>& describe) {
  if (yes) return;
  io_.err << describe() << "Type yes to " << action << ": " << std::flush;
  std::string answer;
  std::getline(io_.in, answer);
  while (!answer.empty() && (answer.back() == ' ' || answer.back() == '\r')) answer.pop_back();
  if (answer != "yes") {
    io_.err << "Not confirmed; nothing was written.\n";
    throw Exit(kExitFailure);
  }
}

void Cli::UsageError(const std::string& message) {
  io_.err << "gongdai: " << message << "\n";
  throw Exit(kExitUsage);
}

int Run(int argc, const char* const* argv, Io& io) {
  Cli cli(io);
  CLI::App app("gongdai: the loan officers' client of the Gongdai micro-loan ledger", "gongdai");
  cli.AddGlobalOptions(app);
  AddBorrowerCommands(cli, app);
  AddApplicationCommands(cli, app);
  AddLoanCommands(cli, app);
  AddLedgerCommands(cli, app);
  app.footer(kRootFooter);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e, io.out, io.err);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e, io);
  }
  if (!cli.chosen_action()) {
    io.err << app.help();
    return kExitUsage;
  }
  try {
    cli.chosen_action()();
  } catch (const Exit& e) {
    return e.code();
  }
  return kExitOk;
}

}  // namespace gongdai::client
