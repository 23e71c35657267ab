// Thousands of random commands, valid and invalid, through the engine and through a
// model simple enough to be obviously right; balances compared after every batch and
// after every reopen. The seed is printed; GONGDAI_SEED=<n> replays a failure exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <map>
#include <random>

#include "engine/ledger.h"
#include "engine/status.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::FixedDayOptions;
using testing::TempDir;
using testing::Transfer;

uint64_t SeedFromEnvironment() {
  const char* text = std::getenv("GONGDAI_SEED");
  if (text != nullptr) return std::strtoull(text, nullptr, 10);
  return std::random_device()();
}

// The model: balances in a map, request ids remembered with their commands.
class Model {
 public:
  struct Expected {
    absl::StatusCode code;
    std::string reason;
    uint64_t sequence = 0;
  };

  Expected Apply(const Command& command) {
    const v1::InternalTransfer& t = command.event.internal_transfer();
    // As the engine: a malformed command is refused as such before its request id is
    // looked up, so an invalid retry under a used request id is INVALID_ARGUMENT.
    if (!ValidAccount(t.from_account()) || !ValidAccount(t.to_account()) ||
        t.from_account() == t.to_account() || t.amount_fen() <= 0) {
      return {absl::StatusCode::kInvalidArgument, ""};
    }
    auto seen = by_request_id_.find(command.request_id);
    if (seen != by_request_id_.end()) {
      const v1::InternalTransfer& o = seen->second.first.event.internal_transfer();
      const bool same = o.from_account() == t.from_account() && o.to_account() == t.to_account() &&
                        o.amount_fen() == t.amount_fen() && o.memo() == t.memo() &&
                        (command.business_date.empty() ||
                         command.business_date == seen->second.first.business_date);
      if (same) return {absl::StatusCode::kOk, "", seen->second.second};
      return {absl::StatusCode::kAlreadyExists, "REQUEST_ID_REUSED"};
    }
    if (command.business_date > "2020-06-30") {
      return {absl::StatusCode::kFailedPrecondition, "BUSINESS_DATE_IN_FUTURE"};
    }
    if (!t.from_account().starts_with("external:") &&
        balances_[t.from_account()] < t.amount_fen()) {
      return {absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_FUNDS"};
    }
    balances_[t.from_account()] -= t.amount_fen();
    balances_[t.to_account()] += t.amount_fen();
    ++sequence_;
    by_request_id_[command.request_id] = {command, sequence_};
    return {absl::StatusCode::kOk, "", sequence_};
  }

  const std::map<std::string, int64_t>& balances() const { return balances_; }
  uint64_t sequence() const { return sequence_; }

 private:
  static bool ValidAccount(const std::string& account) {
    // The generator's invalid accounts are exactly these shapes.
    return !account.empty() && account.find(' ') == std::string::npos &&
           account.find("::") == std::string::npos && account.find(':') != std::string::npos &&
           std::none_of(account.begin(), account.end(),
                        [](char c) { return c >= 'A' && c <= 'Z'; });
  }

  std::map<std::string, int64_t> balances_;
  std::map<std::string, std::pair<Command, uint64_t>> by_request_id_;
  uint64_t sequence_ = 0;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : random_(seed) {}

  Command Next() {
    const int kind = Pick(100);
    if (kind < 8 && !issued_.empty()) {
      // A retry: usually identical, sometimes with a different amount.
      Command retry = issued_[Pick(static_cast<int>(issued_.size()))];
      if (Pick(3) == 0) {
        retry.event.mutable_internal_transfer()->set_amount_fen(
            retry.event.internal_transfer().amount_fen() + 1);
      }
      return retry;
    }
    std::string from = Account();
    std::string to = Account();
    int64_t amount = 1 + Pick(5000);
    std::string date = Pick(10) == 0 ? "2020-07-0" + std::to_string(1 + Pick(9)) : "";
    if (kind < 11) from = kBadAccounts[Pick(4)];
    if (kind >= 11 && kind < 13) amount = -Pick(3);
    if (kind >= 13 && kind < 15) to = from;
    if (kind >= 15 && kind < 45) from = kExternal[Pick(2)];
    Command command = Transfer("req-" + std::to_string(counter_++), from, to, amount, date);
    issued_.push_back(command);
    return command;
  }

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }

 private:
  std::string Account() {
    static const char* const kAccounts[] = {"union:fund:cash",   "member:m1:cash",
                                            "member:m2:cash",    "member:m3:cash",
                                            "loan:l1:principal", "external:bank:psbc"};
    return kAccounts[Pick(6)];
  }
  static constexpr const char* kBadAccounts[] = {"", "Union:fund", "union::cash", "no segments"};
  static constexpr const char* kExternal[] = {"external:bank:psbc", "external:donor:city"};

  std::mt19937_64 random_;
  std::vector<Command> issued_;
  uint64_t counter_ = 0;
};

void ExpectBalancesMatch(const Ledger& ledger, const Model& model, const std::string& when) {
  int64_t sum = 0;
  for (const auto& [account, balance] : model.balances()) {
    absl::StatusOr<Money> stored = ledger.GetBalance(account);
    ASSERT_TRUE(stored.ok()) << stored.status();
    ASSERT_EQ(stored->fen(), balance) << account << " " << when;
    sum += balance;
  }
  ASSERT_EQ(sum, 0) << "balances must sum to zero " << when;
  ASSERT_EQ(ledger.Head().sequence, model.sequence()) << when;
}

TEST(LedgerRandomized, EngineAgreesWithModelThroughBatchesAndReopens) {
  const uint64_t seed = SeedFromEnvironment();
  std::printf("GONGDAI_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("GONGDAI_SEED=" + std::to_string(seed));
  TempDir dir;
  Generator generator(seed);
  Model model;
  constexpr int kCommands = 6000;
  int issued = 0;
  while (issued < kCommands) {
    LedgerOptions options = FixedDayOptions("2020-06-30");
    options.batch_commands_max = 1 + generator.Pick(64);
    // The writer's recent projections: none, a few (evicted all the time), or plenty.
    const size_t recent_bytes[] = {0, 2048, size_t{64} << 20};
    options.recent_projection_bytes = recent_bytes[generator.Pick(3)];
    absl::StatusOr<std::unique_ptr<Ledger>> opened = Ledger::Open(dir.path(), options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<Ledger> ledger = *std::move(opened);
    ExpectBalancesMatch(*ledger, model, "after reopen at command " + std::to_string(issued));
    const int session = 200 + generator.Pick(800);
    for (int done = 0; done < session && issued < kCommands;) {
      // A group submitted together from one thread lands in the writer in this order,
      // possibly split over several batches.
      const int group = 1 + generator.Pick(80);
      std::vector<Command> commands;
      std::vector<std::future<CommandResult>> futures;
      for (int i = 0; i < group; ++i) {
        commands.push_back(generator.Next());
        auto promise = std::make_shared<std::promise<CommandResult>>();
        futures.push_back(promise->get_future());
        ledger->Submit(commands.back(),
                       [promise](CommandResult r) { promise->set_value(std::move(r)); });
      }
      for (int i = 0; i < group; ++i) {
        CommandResult result = futures[i].get();
        Model::Expected expected = model.Apply(commands[i]);
        ASSERT_EQ(result.status.code(), expected.code)
            << "command " << commands[i].request_id << ": " << result.status;
        if (!expected.reason.empty()) {
          ASSERT_EQ(ReasonOf(result.status), expected.reason);
        }
        if (expected.code == absl::StatusCode::kOk) {
          ASSERT_EQ(result.entry.sequence(), expected.sequence);
        }
      }
      ExpectBalancesMatch(*ledger, model, "after command " + std::to_string(issued + group));
      done += group;
      issued += group;
    }
    ASSERT_TRUE(ledger->VerifyJournal().ok());
  }
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(dir.path(), FixedDayOptions());
  ASSERT_TRUE(ledger.ok());
  ExpectBalancesMatch(**ledger, model, "at the end");
  absl::StatusOr<std::optional<ProjectionMismatch>> mismatch =
      (*ledger)->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->key;
}

}  // namespace
}  // namespace gongdai
