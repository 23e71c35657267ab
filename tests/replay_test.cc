// The replay's building blocks: the in-memory derived state (logs that turn into hash
// tables when first read) against a plain ordered map, and the reading thread that opens
// a database's entries ahead of the replay.
#include "engine/replay.h"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <tuple>

#include "engine/date.h"
#include "engine/journal_format.h"
#include "engine/programme.h"
#include "engine/strings.h"
#include "tests/raw_db.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::TempDir;

// Keys of every kind the tables split on: "x/" forms of several leading bytes, keys with
// no such form (which sort among them), and the shortest keys.
std::string RandomKey(std::mt19937_64& random) {
  // The last form is longer than a hash table keeps in its slot.
  static const char* const kForms[] = {
      "a/", "m/", "t/",   "b/", "",
      "a",  "/",  "m/x/", "zz", "a/member:m0000000000000000000000000000000000:"};
  std::string key = kForms[random() % std::size(kForms)];
  const int tail = static_cast<int>(random() % 4);
  for (int i = 0; i < tail; ++i) key += static_cast<char>('0' + random() % 3);
  return key;
}

TEST(MemoryState, AgreesWithAnOrderedMapThroughPutsDeletesReadsAndWalks) {
  const Space spaces[] = {Space::kProjections, Space::kIndexes, Space::kRequestIds};
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    // Odd seeds never read a key, so every table stays a log and only walks see it.
    std::mt19937_64 random(seed);
    MemoryState state;
    std::map<std::string, std::string> model[std::size(spaces)];
    for (int op = 0; op < 2'000; ++op) {
      const size_t s = random() % std::size(spaces);
      const std::string key = RandomKey(random);
      const int kind = static_cast<int>(random() % 10);
      if (kind < 5) {
        const std::string value = "v" + std::to_string(op);
        state.Put(spaces[s], key, value);
        model[s][key] = value;
      } else if (kind < 8) {
        state.Delete(spaces[s], key);
        model[s].erase(key);
      } else if (kind < 9 && seed % 2 == 0) {
        // A read turns the key's table from a log into a hash table.
        absl::StatusOr<std::optional<std::string>> got = state.Get(spaces[s], key);
        ASSERT_TRUE(got.ok());
        auto want = model[s].find(key);
        if (want == model[s].end()) {
          EXPECT_FALSE(got->has_value()) << "seed " << seed << " key " << key;
        } else {
          ASSERT_TRUE(got->has_value()) << "seed " << seed << " key " << key;
          EXPECT_EQ(**got, want->second) << "seed " << seed << " key " << key;
        }
        // Read, change, write back (as an account's balance is), at times with another
        // key's put, which may grow the table, in between.
        if (random() % 2 == 0) {
          if (random() % 2 == 0) {
            const std::string other = RandomKey(random);
            state.Put(spaces[s], other, "w" + std::to_string(op));
            model[s][other] = "w" + std::to_string(op);
          }
          const std::string value = got->value_or("") + "+";
          state.Put(spaces[s], key, value);
          model[s][key] = value;
        }
      } else {
        const std::string prefix = random() % 2 == 0 ? "" : RandomKey(random).substr(0, 2);
        std::vector<std::pair<std::string, std::string>> want;
        for (const auto& [k, v] : model[s]) {
          if (k.starts_with(prefix)) want.emplace_back(k, v);
        }
        std::vector<std::pair<std::string, std::string>> got;
        for (const auto& [k, v] : state.Sorted(spaces[s], prefix)) got.emplace_back(k, v);
        ASSERT_EQ(got, want) << "seed " << seed << " op " << op << " prefix " << prefix;
      }
    }
  }
}

// A state over an ordered map that posts the default way: reads the account's projection,
// changes it and puts it back.
class MapState final : public StateWriter {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override {
    auto it = spaces_[static_cast<size_t>(space)].find(std::string(key));
    if (it == spaces_[static_cast<size_t>(space)].end()) return std::nullopt;
    return it->second;
  }
  void Put(Space space, std::string_view key, std::string_view value) override {
    spaces_[static_cast<size_t>(space)][std::string(key)] = std::string(value);
  }
  void Delete(Space space, std::string_view key) override {
    spaces_[static_cast<size_t>(space)].erase(std::string(key));
  }
  const std::map<std::string, std::string>& space(Space space) const {
    return spaces_[static_cast<size_t>(space)];
  }

 private:
  std::map<std::string, std::string> spaces_[kSpaceCount];
};

// MemoryState keeps the accounts that postings change decoded. Through postings (some out
// of range), puts of encoded accounts, deletes, reads and walks, in any order, it must
// hold what posting the default way holds, byte for byte, and refuse the same postings.
TEST(MemoryState, PostsToAccountsAsReadingAndRewritingTheirProjectionsDoes) {
  const std::string accounts[] = {"member:m1:cash", "member:m2:cash", "union:fund:cash",
                                  "external:bank:psbc", "loan:l000001:principal"};
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 random(seed);
    MemoryState state;
    MapState model;
    for (int op = 0; op < 1'000; ++op) {
      const std::string& account = accounts[random() % std::size(accounts)];
      const std::string key = AccountKey(account);
      const int kind = static_cast<int>(random() % 20);
      if (kind < 12) {
        v1::Posting posting;
        posting.set_account(account);
        posting.set_side(random() % 2 == 0 ? v1::POSTING_SIDE_DEBIT : v1::POSTING_SIDE_CREDIT);
        // Now and then an amount that takes a balance out of range.
        posting.set_amount_fen(random() % 50 == 0 ? std::numeric_limits<int64_t>::max() - 5
                                                  : static_cast<int64_t>(1 + random() % 100'000));
        const absl::Status posted = state.Post(posting, static_cast<uint64_t>(op + 1));
        const absl::Status expected = model.Post(posting, static_cast<uint64_t>(op + 1));
        ASSERT_EQ(posted, expected) << "seed " << seed << " op " << op;
      } else if (kind < 14) {
        v1::AccountState put;
        put.set_balance_fen(static_cast<int64_t>(random() % 1'000'000) - 500'000);
        put.set_last_sequence(random() % 1'000);
        put.set_posting_count(random() % 10);
        state.Put(Space::kProjections, key, put.SerializeAsString());
        model.Put(Space::kProjections, key, put.SerializeAsString());
      } else if (kind < 15) {
        state.Delete(Space::kProjections, key);
        model.Delete(Space::kProjections, key);
      } else if (kind < 16) {
        const std::string other = "l/" + std::to_string(random() % 5);  // not an account
        state.Put(Space::kProjections, other, "loan " + std::to_string(op));
        model.Put(Space::kProjections, other, "loan " + std::to_string(op));
      } else if (kind < 18) {
        absl::StatusOr<std::optional<std::string>> got = state.Get(Space::kProjections, key);
        absl::StatusOr<std::optional<std::string>> want = model.Get(Space::kProjections, key);
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(*got, *want) << "seed " << seed << " op " << op << " " << key;
      } else {
        const std::string prefix = random() % 2 == 0 ? "" : std::string(kAccountPrefix);
        std::vector<std::pair<std::string, std::string>> want;
        for (const auto& [k, v] : model.space(Space::kProjections)) {
          if (k.starts_with(prefix)) want.emplace_back(k, v);
        }
        std::vector<std::pair<std::string, std::string>> got;
        for (const auto& [k, v] : state.Sorted(Space::kProjections, prefix)) got.emplace_back(k, v);
        ASSERT_EQ(got, want) << "seed " << seed << " op " << op << " prefix " << prefix;
      }
    }
  }
}

TEST(MemoryState, KeepingWhatApplyReadsDropsTheRestAndRefusesToReadIt) {
  MemoryState state(ReplayKeeps::kWhatApplyReads);
  state.Put(Space::kProjections, AccountKey("member:m1:cash"), "balance");
  state.Put(Space::kProjections, TreeNodeKey(1, 0), std::string(32, 'h'));
  state.Put(Space::kIndexes, DateIndexKey(Date::FromDays(18'000), 1), "");
  state.Put(Space::kRequestIds, "r1", SequenceKey(1));
  state.Delete(Space::kIndexes, "s/approved/L1");
  state.Put(Space::kProjections, LoanSummaryKey("L000001"), "summary");

  absl::StatusOr<std::optional<std::string>> account =
      state.Get(Space::kProjections, AccountKey("member:m1:cash"));
  ASSERT_TRUE(account.ok()) << account.status();
  EXPECT_EQ(account->value_or("<absent>"), "balance");
  for (const auto& [space, key] : std::vector<std::pair<Space, std::string>>{
           {Space::kProjections, TreeNodeKey(1, 0)},
           {Space::kIndexes, DateIndexKey(Date::FromDays(18'000), 1)},
           {Space::kRequestIds, "r1"},
           {Space::kRequestIds, "never-put"},
           {Space::kProjections, LoanSummaryKey("L000001")}}) {
    absl::StatusOr<std::optional<std::string>> got = state.Get(space, key);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition) << key;
    EXPECT_NE(got.status().message().find("keeps only what apply reads"), std::string_view::npos)
        << got.status();
  }
  const std::vector<MemoryState::KeyValue> projections = state.Sorted(Space::kProjections);
  ASSERT_EQ(projections.size(), 1u);
  EXPECT_EQ(projections[0].first, AccountKey("member:m1:cash"));
  EXPECT_TRUE(state.Sorted(Space::kIndexes).empty());
  EXPECT_TRUE(state.Sorted(Space::kRequestIds).empty());

  // The same writes, everything kept.
  MemoryState everything;
  everything.Put(Space::kProjections, TreeNodeKey(1, 0), std::string(32, 'h'));
  everything.Put(Space::kRequestIds, "r1", SequenceKey(1));
  absl::StatusOr<std::optional<std::string>> request = everything.Get(Space::kRequestIds, "r1");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->value_or("<absent>"), SequenceKey(1));
  EXPECT_EQ(everything.Sorted(Space::kProjections).size(), 1u);
  // Loan summaries, rewritten by every entry on their loan and never read back, are held in
  // a map from their first write rather than logged: they read back once each, as last
  // written. (That the map spares memory shows in gongdai-replay-bench, not here: a log
  // reads back the same.)
  for (int i = 0; i < 3; ++i) {
    everything.Put(Space::kProjections, LoanSummaryKey("L000001"), Cat("summary ", i));
  }
  const std::vector<MemoryState::KeyValue> summaries =
      everything.Sorted(Space::kProjections, kLoanSummaryPrefix);
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0].second, "summary 2");
}

// A journal longer than the batches the reading thread hands over and the number of them
// it may hold ahead of the replay.
class OpenedEntriesTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kEntries = 6'000;

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Ledger>> ledger =
        Ledger::Open(dir_.Sub("ledger"), testing::FixedDayOptions());
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    std::vector<std::future<CommandResult>> pending;
    for (uint64_t i = 0; i < kEntries; ++i) {
      auto promise = std::make_shared<std::promise<CommandResult>>();
      pending.push_back(promise->get_future());
      (*ledger)->Submit(testing::Transfer("r" + std::to_string(i), "external:bank:psbc",
                                          "member:m" + std::to_string(i % 97) + ":cash", 100),
                        [promise](CommandResult r) { promise->set_value(std::move(r)); });
      if (pending.size() == 500 || i + 1 == kEntries) {
        for (auto& f : pending) ASSERT_TRUE(f.get().status.ok());
        pending.clear();
      }
    }
    head_hash_ = (*ledger)->Head().hash;
  }

  TempDir dir_;
  std::string head_hash_;
};

TEST_F(OpenedEntriesTest, EveryEntryArrivesOpenedAndInOrder) {
  absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(dir_.Sub("ledger"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  uint64_t next = 1;
  Replayer replay;
  absl::Status visited = (*copy)->ForEachOpenedEntry([&](const OpenedEntry& opened) {
    EXPECT_EQ(opened.key_sequence, next);
    EXPECT_TRUE(opened.status.ok()) << opened.status;
    EXPECT_EQ(opened.entry.sequence(), next);
    ++next;
    return replay.AddOpened(opened);
  });
  ASSERT_TRUE(visited.ok()) << visited;
  EXPECT_EQ(next, kEntries + 1);
  EXPECT_EQ(replay.last_hash(), head_hash_);
  absl::StatusOr<std::optional<ProjectionMismatch>> mismatch = (*copy)->CompareWith(replay);
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->key;
}

// The checks of an entry's bytes and hash run on whichever thread has less to do: the
// reading thread checks the first batch, and the replay's thread the second (it has none
// in hand yet). A changed hash is caught, at its entry, in either.
TEST_F(OpenedEntriesTest, AnEntryWithAWrongHashIsCaughtWhicheverThreadChecksIt) {
  for (const uint64_t changed : {400u, 100u}) {  // the second batch, then also the first
    {
      testing::RawDb raw(dir_.Sub("ledger"));
      std::string stored = *raw.Get("journal", SequenceKey(changed));
      stored.back() = static_cast<char>(stored.back() ^ 0x01);  // the hash's last byte
      raw.Put("journal", SequenceKey(changed), stored);
    }
    absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(dir_.Sub("ledger"));
    ASSERT_TRUE(copy.ok()) << copy.status();
    Replayer replay;
    absl::Status verified = (*copy)->ForEachOpenedEntry(
        [&](const OpenedEntry& opened) { return replay.AddOpened(opened); });
    EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss) << verified;
    EXPECT_TRUE(std::string_view(verified.message().data(), verified.message().size())
                    .starts_with("entry " + std::to_string(changed) + ": field hash: expected "))
        << verified;
    EXPECT_EQ(replay.size(), changed - 1);
  }
}

TEST_F(OpenedEntriesTest, AFailingVisitStopsTheReadingAndIsReturned) {
  absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(dir_.Sub("ledger"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  uint64_t visits = 0;
  absl::Status visited = (*copy)->ForEachOpenedEntry([&](const OpenedEntry& opened) {
    ++visits;
    if (opened.key_sequence == 3'000) return absl::DataLossError("entry 3000: stop here");
    return absl::OkStatus();
  });
  EXPECT_EQ(visited.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(visited.message(), "entry 3000: stop here");
  EXPECT_EQ(visits, 3'000u);
}

TEST_F(OpenedEntriesTest, AJournalThatCannotBeReadEndsTheVisitWithTheStorageError) {
  // A failing disk: a byte flipped in the middle of the journal's largest table file,
  // inside a data block, whose checksum then fails when the scan reaches it.
  std::string table;
  uint64_t size = 0;
  {
    testing::RawDb raw(dir_.Sub("ledger"));
    const auto files = raw.TableFiles("journal");
    ASSERT_FALSE(files.empty());
    std::tie(table, size) = files.front();
  }
  {
    std::fstream file(table, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good()) << table;
    file.seekg(static_cast<std::streamoff>(size / 2));
    char byte = 0;
    file.read(&byte, 1);
    file.seekp(static_cast<std::streamoff>(size / 2));
    byte = static_cast<char>(byte ^ 0x5a);
    file.write(&byte, 1);
  }
  absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(dir_.Sub("ledger"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  uint64_t visits = 0;
  absl::Status visited = (*copy)->ForEachOpenedEntry([&](const OpenedEntry& opened) {
    EXPECT_EQ(opened.key_sequence, visits + 1);
    ++visits;
    return opened.status;
  });
  EXPECT_EQ(visited.code(), absl::StatusCode::kDataLoss) << visited;
  EXPECT_NE(visited.message().find("scanning journal"), std::string_view::npos) << visited;
  // The entries before the damaged block were all visited, in order; none after it.
  EXPECT_GT(visits, 0u);
  EXPECT_LT(visits, kEntries);
}

}  // namespace
}  // namespace gongdai
