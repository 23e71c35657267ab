#include "engine/ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <numeric>
#include <set>
#include <thread>

#include "engine/journal_format.h"
#include "engine/rules.h"
#include "engine/sha256.h"
#include "engine/status.h"
#include "engine/strings.h"
#include "tests/fault_fs.h"
#include "tests/raw_db.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::FaultEnv;
using testing::FixedDayOptions;
using testing::RawDb;
using testing::TempDir;
using testing::Transfer;

// The fixed business day, on a file system whose syncs a test can delay or fail.
LedgerOptions FixedDayOptionsOn(const FaultEnv& fault) {
  LedgerOptions options = FixedDayOptions();
  options.env = fault.env.get();
  return options;
}

std::unique_ptr<Ledger> OpenOrDie(const std::string& path,
                                  LedgerOptions options = FixedDayOptions()) {
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(path, std::move(options));
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  return ledger.ok() ? *std::move(ledger) : nullptr;
}

// `count` transfers from outside ("e0", "e1", ...) of 5 + i fen each, into the cash
// accounts of members m0 .. m<members - 1> in turn.
void SubmitTransfers(Ledger& ledger, int count, int members) {
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(
        ledger
            .SubmitAndWait(Transfer("e" + std::to_string(i), "external:a:b",
                                    "member:m" + std::to_string(i % members) + ":cash", 5 + i))
            .status.ok());
  }
}

int64_t Balance(const Ledger& ledger, std::string_view account) {
  absl::StatusOr<Money> balance = ledger.GetBalance(account);
  EXPECT_TRUE(balance.ok()) << balance.status();
  return static_cast<int64_t>(balance->fen());
}

TEST(Ledger, AppendsGapFreeHashChainedEntries) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  std::string previous = GenesisHash();
  for (int i = 1; i <= 5; ++i) {
    CommandResult result = ledger->SubmitAndWait(
        Transfer("r" + std::to_string(i), "external:bank:psbc", "union:fund:cash", 1000 * i));
    ASSERT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(result.entry.sequence(), static_cast<uint64_t>(i));
    EXPECT_EQ(result.entry.previous_hash(), previous);
    EXPECT_EQ(result.entry.business_date(), "2020-06-30");
    EXPECT_EQ(result.entry.actor().principal_id(), "officer.liu");
    ASSERT_EQ(result.entry.postings_size(), 2);
    previous = result.entry.hash();
    absl::StatusOr<v1::Entry> stored = ledger->GetEntry(i);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->SerializeAsString(), result.entry.SerializeAsString());
  }
  EXPECT_EQ(ledger->Head().sequence, 5u);
  EXPECT_EQ(ledger->Head().hash, previous);
  EXPECT_EQ(Balance(*ledger, "union:fund:cash"), 15000);
  EXPECT_EQ(Balance(*ledger, "external:bank:psbc"), -15000);
  EXPECT_TRUE(ledger->VerifyJournal().ok());
  EXPECT_EQ(ledger->GetEntry(6).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger->GetEntry(0).status().code(), absl::StatusCode::kNotFound);
}

// The known-answer vector of docs/journal-format.md: if this changes, every stored
// journal's hashes change, so the format document and its version must change with it.
TEST(JournalFormat, EntryHashMatchesDocumentedEncoding) {
  v1::Entry entry;
  entry.set_sequence(1);
  entry.set_previous_hash(GenesisHash());
  entry.set_recorded_at_us(1593500000000000);
  entry.set_business_date("2020-06-30");
  entry.mutable_actor()->set_principal_id("officer.liu");
  entry.mutable_actor()->set_role("officer");
  entry.set_request_id("r1");
  v1::InternalTransfer* transfer = entry.mutable_event()->mutable_internal_transfer();
  transfer->set_from_account("external:bank:psbc");
  transfer->set_to_account("union:fund:cash");
  transfer->set_amount_fen(100000);
  v1::Posting* debit = entry.add_postings();
  debit->set_account("union:fund:cash");
  debit->set_side(v1::POSTING_SIDE_DEBIT);
  debit->set_amount_fen(100000);
  v1::Posting* credit = entry.add_postings();
  credit->set_account("external:bank:psbc");
  credit->set_side(v1::POSTING_SIDE_CREDIT);
  credit->set_amount_fen(100000);

  const std::string canonical = CanonicalBytes(entry);
  // Worked out independently of protobuf (docs/journal-format.md, "Worked example").
  EXPECT_EQ(ToHex(canonical),
            "080112200000000000000000000000000000000000000000000000000000000000000000"
            "1880b0cc8bfaa8ea02220a323032302d30362d33302a160a0b6f6666696365722e6c6975"
            "12076f666669636572320272313a2b0a290a1265787465726e616c3a62616e6b3a707362"
            "63120f756e696f6e3a66756e643a6361736818a08d0642170a0f756e696f6e3a66756e64"
            "3a63617368100118a08d06421a0a1265787465726e616c3a62616e6b3a70736263100218"
            "a08d06");
  EXPECT_EQ(canonical.size(), 183u);
  const std::string stored = SealEntry(&entry);
  EXPECT_EQ(ToHex(entry.hash()),
            "fdf1eacb0b390d02465c5b5dff7f50c4e4779fa87cd022f62ac797752ecc6532");
  EXPECT_EQ(stored, canonical + std::string("\x7a\x20", 2) + entry.hash());
  // The hash is SHA-256 over 0x00 || canonical bytes (an RFC 6962 leaf).
  EXPECT_EQ(entry.hash(), ThreadSha256().Digest({std::string(1, '\0'), canonical}));
  absl::StatusOr<v1::Entry> opened = OpenEntry(stored, 1);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->hash(), entry.hash());
}

// Versions of derived state that earlier engines wrote (a copy from them is replayed
// without comparing projections) against names no engine wrote.
TEST(JournalFormat, EarlierProjectionsVersionsAreThoseBeforeThisOne) {
  const std::string_view prefix = "gongdai-projections-";
  ASSERT_TRUE(kProjectionsVersion.starts_with(prefix));
  const int current = std::stoi(std::string(kProjectionsVersion.substr(prefix.size())));
  ASSERT_GE(current, 8);  // the version of this change
  for (int n = 2; n < current; ++n) {
    EXPECT_TRUE(IsEarlierProjectionsVersion(Cat(prefix, n))) << n;
  }
  EXPECT_FALSE(IsEarlierProjectionsVersion(kProjectionsVersion));
  EXPECT_FALSE(IsEarlierProjectionsVersion(Cat(prefix, current + 1)));
  for (std::string_view named :
       {"gongdai-projections-1", "gongdai-projections-0", "gongdai-projections-05",
        "gongdai-projections-", "", "gongdai-projections-5 ", "gongdai-projections-4x",
        "gongdai-journal-1", "gongdai-projections-99999999999999999999"}) {
    EXPECT_FALSE(IsEarlierProjectionsVersion(named)) << named;
  }
}

TEST(JournalFormat, TamperedBytesAreDetectedOnRead) {
  v1::Entry entry;
  entry.set_sequence(7);
  entry.set_business_date("2020-06-30");
  std::string stored = SealEntry(&entry);
  std::string flipped = stored;
  flipped[3] ^= 0x01;
  EXPECT_EQ(OpenEntry(flipped, 7).status().code(), absl::StatusCode::kDataLoss);
  std::string truncated = stored.substr(0, stored.size() - 1);
  EXPECT_EQ(OpenEntry(truncated, 7).status().code(), absl::StatusCode::kDataLoss);
}

TEST(JournalFormat, UnbalancedPostingsAreRejected) {
  v1::Entry entry;
  entry.set_sequence(3);
  auto add = [&](const char* account, v1::PostingSide side, int64_t fen) {
    v1::Posting* p = entry.add_postings();
    p->set_account(account);
    p->set_side(side);
    p->set_amount_fen(fen);
  };
  add("a:b", v1::POSTING_SIDE_DEBIT, 100);
  add("c:d", v1::POSTING_SIDE_CREDIT, 60);
  add("e:f", v1::POSTING_SIDE_CREDIT, 40);
  EXPECT_TRUE(CheckBalanced(entry).ok());
  entry.mutable_postings(2)->set_amount_fen(41);
  absl::Status unbalanced = CheckBalanced(entry);
  EXPECT_EQ(unbalanced.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(unbalanced.message().find("entry 3"), absl::string_view::npos);
  entry.mutable_postings(2)->set_amount_fen(0);
  EXPECT_FALSE(CheckBalanced(entry).ok());
  entry.mutable_postings(2)->set_amount_fen(40);
  entry.mutable_postings(1)->set_side(v1::POSTING_SIDE_UNSPECIFIED);
  EXPECT_FALSE(CheckBalanced(entry).ok());

  // The sums are exact beyond the range of one amount.
  v1::Entry large;
  large.set_sequence(4);
  for (v1::PostingSide side : {v1::POSTING_SIDE_DEBIT, v1::POSTING_SIDE_DEBIT,
                               v1::POSTING_SIDE_CREDIT, v1::POSTING_SIDE_CREDIT}) {
    v1::Posting* p = large.add_postings();
    p->set_account("a:b");
    p->set_side(side);
    p->set_amount_fen(std::numeric_limits<int64_t>::max());
  }
  EXPECT_TRUE(CheckBalanced(large).ok());
  large.mutable_postings(3)->set_amount_fen(std::numeric_limits<int64_t>::max() - 1);
  EXPECT_EQ(CheckBalanced(large).message(),
            "entry 4: postings do not balance: debits 184467440737095516.14, credits "
            "184467440737095516.13");
}

TEST(Ledger, RetryWithSameRequestIdReturnsOriginalEntry) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  CommandResult first = ledger->SubmitAndWait(
      Transfer("loan-42-pay-1", "external:bank:psbc", "union:fund:cash", 500));
  ASSERT_TRUE(first.status.ok());
  CommandResult again = ledger->SubmitAndWait(
      Transfer("loan-42-pay-1", "external:bank:psbc", "union:fund:cash", 500));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.entry.sequence(), first.entry.sequence());
  EXPECT_EQ(again.entry.hash(), first.entry.hash());
  EXPECT_EQ(ledger->Head().sequence, 1u);
  EXPECT_EQ(Balance(*ledger, "union:fund:cash"), 500);
}

TEST(Ledger, RetryAnswersOriginalEvenWhenStateChanged) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  ASSERT_TRUE(
      ledger->SubmitAndWait(Transfer("in", "external:x:y", "union:fund:cash", 500)).status.ok());
  ASSERT_TRUE(
      ledger->SubmitAndWait(Transfer("out", "union:fund:cash", "member:m1:cash", 500)).status.ok());
  // Funds are gone now, but the retry must still answer with the original entry.
  CommandResult retry =
      ledger->SubmitAndWait(Transfer("out", "union:fund:cash", "member:m1:cash", 500));
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.entry.sequence(), 2u);
}

TEST(Ledger, ReusedRequestIdWithDifferentCommandIsAlreadyExists) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  ASSERT_TRUE(ledger->SubmitAndWait(Transfer("dup", "external:bank:psbc", "union:fund:cash", 500))
                  .status.ok());
  CommandResult different =
      ledger->SubmitAndWait(Transfer("dup", "external:bank:psbc", "union:fund:cash", 700));
  EXPECT_EQ(different.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReasonOf(different.status), "REQUEST_ID_REUSED");
  // The message names the field that differs, as the API names it, not the original's
  // value: an original may hold personal data.
  EXPECT_NE(different.status.message().find("fields that differ: amount"), absl::string_view::npos)
      << different.status;
  EXPECT_EQ(different.status.message().find("500"), absl::string_view::npos) << different.status;
  EXPECT_NE(different.status.message().find("entry 1"), absl::string_view::npos);
  Command other_actor = Transfer("dup", "external:bank:psbc", "union:fund:cash", 500);
  other_actor.actor.set_principal_id("officer.wang");
  CommandResult by_other = ledger->SubmitAndWait(other_actor);
  EXPECT_EQ(by_other.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(by_other.status.message().find("another caller or role than officer.wang/officer"),
            absl::string_view::npos)
      << by_other.status;
  EXPECT_EQ(by_other.status.message().find("officer.liu"), absl::string_view::npos)
      << by_other.status;
  // Another caller learns nothing of the original, not even which fields its guess missed.
  Command guessing = Transfer("dup", "external:bank:psbc", "union:fund:cash", 700);
  guessing.actor.set_principal_id("officer.wang");
  CommandResult guessed = ledger->SubmitAndWait(guessing);
  EXPECT_EQ(ReasonOf(guessed.status), "REQUEST_ID_REUSED");
  EXPECT_EQ(guessed.status.message().find("amount"), absl::string_view::npos) << guessed.status;
  EXPECT_EQ(guessed.status.message(), by_other.status.message());
  EXPECT_EQ(ledger->Head().sequence, 1u);
}

TEST(Ledger, SameRequestIdTwiceInOneBatchWritesOneEntry) {
  TempDir dir;
  FaultEnv fault;
  LedgerOptions options = FixedDayOptionsOn(fault);
  auto ledger = OpenOrDie(dir.path(), options);
  // Hold the writer in a sync so that the next commands queue up into one batch.
  ASSERT_TRUE(ledger->SubmitAndWait(Transfer("warm", "external:a:b", "c:d", 1)).status.ok());
  fault.fs->sync_delay_ms = 200;
  std::promise<CommandResult> first_done, second_done, blocker_done;
  ledger->Submit(Transfer("blocker", "external:a:b", "c:d", 1),
                 [&](CommandResult r) { blocker_done.set_value(std::move(r)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ledger->Submit(Transfer("twice", "external:a:b", "c:d", 5),
                 [&](CommandResult r) { first_done.set_value(std::move(r)); });
  ledger->Submit(Transfer("twice", "external:a:b", "c:d", 5),
                 [&](CommandResult r) { second_done.set_value(std::move(r)); });
  CommandResult first = first_done.get_future().get();
  CommandResult second = second_done.get_future().get();
  ASSERT_TRUE(blocker_done.get_future().get().status.ok());
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_FALSE(first.replayed);
  EXPECT_TRUE(second.replayed);
  EXPECT_EQ(first.entry.sequence(), second.entry.sequence());
  EXPECT_EQ(ledger->Head().sequence, 3u);
  EXPECT_EQ(Balance(*ledger, "c:d"), 7);
}

TEST(Ledger, IdempotencyHoldsAfterReopen) {
  TempDir dir;
  uint64_t sequence = 0;
  {
    auto ledger = OpenOrDie(dir.path());
    CommandResult first =
        ledger->SubmitAndWait(Transfer("persist", "external:bank:psbc", "union:fund:cash", 900));
    ASSERT_TRUE(first.status.ok());
    sequence = first.entry.sequence();
  }
  auto ledger = OpenOrDie(dir.path());
  CommandResult retry =
      ledger->SubmitAndWait(Transfer("persist", "external:bank:psbc", "union:fund:cash", 900));
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.entry.sequence(), sequence);
  CommandResult different =
      ledger->SubmitAndWait(Transfer("persist", "external:bank:psbc", "union:fund:cash", 901));
  EXPECT_EQ(different.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger->Head().sequence, 1u);
}

TEST(Ledger, SequenceNumbersStayGapFreeAcrossRestarts) {
  TempDir dir;
  for (int round = 0; round < 3; ++round) {
    auto ledger = OpenOrDie(dir.path());
    for (int i = 0; i < 4; ++i) {
      CommandResult result = ledger->SubmitAndWait(
          Transfer(std::to_string(round) + "-" + std::to_string(i), "external:a:b", "c:d", 1));
      ASSERT_TRUE(result.status.ok());
      EXPECT_EQ(result.entry.sequence(), static_cast<uint64_t>(round * 4 + i + 1));
    }
    // A refused command uses no sequence number.
    EXPECT_FALSE(ledger->SubmitAndWait(Transfer("bad" + std::to_string(round), "c:d", "c:d", 1))
                     .status.ok());
  }
  auto ledger = OpenOrDie(dir.path());
  EXPECT_EQ(ledger->Head().sequence, 12u);
  EXPECT_TRUE(ledger->VerifyJournal().ok());
  absl::StatusOr<std::vector<v1::Entry>> entries = ledger->ListEntries(1, 100);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 12u);
  for (size_t i = 0; i < entries->size(); ++i) EXPECT_EQ((*entries)[i].sequence(), i + 1);
}

TEST(Ledger, InsufficientFundsIsRefusedAndWritesNothing) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  ASSERT_TRUE(ledger->SubmitAndWait(Transfer("in", "external:bank:psbc", "union:fund:cash", 1000))
                  .status.ok());
  CommandResult refused =
      ledger->SubmitAndWait(Transfer("out", "union:fund:cash", "member:m1:cash", 1001));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(refused.status), "INSUFFICIENT_FUNDS");
  EXPECT_NE(refused.status.message().find("10.00"), absl::string_view::npos) << refused.status;
  EXPECT_EQ(ledger->Head().sequence, 1u);
  EXPECT_EQ(Balance(*ledger, "union:fund:cash"), 1000);
  EXPECT_EQ(Balance(*ledger, "member:m1:cash"), 0);
  // The refused request id is not burnt: a corrected command may use it.
  EXPECT_TRUE(ledger->SubmitAndWait(Transfer("out", "union:fund:cash", "member:m1:cash", 1000))
                  .status.ok());
}

TEST(Ledger, EveryInvalidFieldIsReportedAtOnce) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  CommandResult result = ledger->SubmitAndWait(Transfer("x", "Bad Account", "union::cash", 0));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  std::set<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(result.status)) fields.insert(v.field);
  EXPECT_EQ(fields, (std::set<std::string>{"event.internal_transfer.from_account",
                                           "event.internal_transfer.to_account",
                                           "event.internal_transfer.amount_fen"}));
  Command no_id = Transfer("", "external:a:b", "c:d", 1);
  no_id.actor.clear_principal_id();
  std::set<std::string> envelope;
  for (const FieldViolation& v : FieldViolationsOf(ledger->SubmitAndWait(no_id).status)) {
    envelope.insert(v.field);
  }
  EXPECT_EQ(envelope, (std::set<std::string>{"request_id", "actor.principal_id"}));
  EXPECT_EQ(ledger->Head().sequence, 0u);
}

TEST(Ledger, BusinessDateRules) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path(), FixedDayOptions("2020-06-30"));
  CommandResult future =
      ledger->SubmitAndWait(Transfer("f", "external:a:b", "c:d", 1, "2020-07-01"));
  EXPECT_EQ(future.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(future.status), "BUSINESS_DATE_IN_FUTURE");
  CommandResult malformed =
      ledger->SubmitAndWait(Transfer("m", "external:a:b", "c:d", 1, "2020-02-30"));
  EXPECT_EQ(malformed.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FieldViolationsOf(malformed.status)[0].field, "business_date");
  CommandResult past = ledger->SubmitAndWait(Transfer("p", "external:a:b", "c:d", 1, "2020-01-15"));
  ASSERT_TRUE(past.status.ok());
  EXPECT_EQ(past.entry.business_date(), "2020-01-15");
}

TEST(Ledger, ManyThreadsSubmittingConcurrentlyAreAllAccountedFor) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  std::vector<std::vector<CommandResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<CommandResult>> pending;
      for (int i = 0; i < kPerThread; ++i) {
        auto promise = std::make_shared<std::promise<CommandResult>>();
        pending.push_back(promise->get_future());
        ledger->Submit(Transfer("t" + std::to_string(t) + "-" + std::to_string(i), "external:a:b",
                                "member:m" + std::to_string(t) + ":cash", i + 1),
                       [promise](CommandResult r) { promise->set_value(std::move(r)); });
      }
      for (auto& f : pending) results[t].push_back(f.get());
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> sequences;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(results[t].size(), static_cast<size_t>(kPerThread));
    for (const CommandResult& r : results[t]) {
      ASSERT_TRUE(r.status.ok()) << r.status;
      sequences.insert(r.entry.sequence());
    }
    EXPECT_EQ(Balance(*ledger, "member:m" + std::to_string(t) + ":cash"),
              kPerThread * (kPerThread + 1) / 2);
  }
  ASSERT_EQ(sequences.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*sequences.begin(), 1u);
  EXPECT_EQ(*sequences.rbegin(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_TRUE(ledger->VerifyJournal().ok());
  absl::StatusOr<std::optional<ProjectionMismatch>> mismatch =
      ledger->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value());
}

// A follower's wait for more entries says how it ended: OK once the journal is beyond the
// sequence it named (answered at once when it already is), UNAVAILABLE with reason
// LEDGER_CLOSING when the ledger closes first. Told only "called", a follower would list
// nothing and wait again, and again, while the ledger closed.
TEST(Ledger, AWaitForMoreEntriesSaysWhetherThereAreMoreOrTheLedgerClosed) {
  TempDir dir;
  auto ledger = OpenOrDie(dir.path());
  SubmitTransfers(*ledger, 1, 1);
  bool called_at_once = false;
  std::optional<absl::Status> already =
      ledger->NotifyWhenBeyond(0, [&](absl::Status) { called_at_once = true; });
  ASSERT_TRUE(already.has_value());
  EXPECT_TRUE(already->ok()) << *already;
  EXPECT_FALSE(called_at_once);

  std::promise<absl::Status> next, closing;
  ASSERT_FALSE(ledger->NotifyWhenBeyond(1, [&](absl::Status s) { next.set_value(std::move(s)); })
                   .has_value());
  std::future<absl::Status> next_done = next.get_future();
  EXPECT_EQ(next_done.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  SubmitTransfers(*ledger, 2, 1);  // "e0" again (answered with the original), then "e1"
  ASSERT_EQ(next_done.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(next_done.get().ok());

  ASSERT_FALSE(ledger->NotifyWhenBeyond(2, [&](absl::Status s) { closing.set_value(std::move(s)); })
                   .has_value());
  std::future<absl::Status> closing_done = closing.get_future();
  ledger.reset();
  ASSERT_EQ(closing_done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  absl::Status closed = closing_done.get();
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable) << closed;
  EXPECT_EQ(ReasonOf(closed), "LEDGER_CLOSING");
}

TEST(Ledger, FullQueueIsRefusedAtOnce) {
  TempDir dir;
  FaultEnv fault;
  LedgerOptions options = FixedDayOptionsOn(fault);
  options.queue_commands_max = 4;
  options.batch_commands_max = 2;
  auto ledger = OpenOrDie(dir.path(), options);
  fault.fs->sync_delay_ms = 100;
  std::atomic<int> exhausted{0};
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 40; ++i) {
    ledger->Submit(Transfer("q" + std::to_string(i), "external:a:b", "c:d", 1),
                   [&](CommandResult r) {
                     if (r.status.ok()) ++ok;
                     if (r.status.code() == absl::StatusCode::kResourceExhausted) {
                       EXPECT_EQ(ReasonOf(r.status), "QUEUE_FULL");
                       ++exhausted;
                     }
                     ++answered;
                   });
  }
  // The refusals were answered while submitting, not after waiting for the disk.
  EXPECT_GT(exhausted.load(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  while (answered.load() < 40) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(ok.load() + exhausted.load(), 40);
  EXPECT_EQ(ledger->Head().sequence, static_cast<uint64_t>(ok.load()));
}

TEST(Ledger, AnswersComeInJournalOrderAndOnlyOnceTheirEntriesAreDurable) {
  // Answers are given on their own thread while the next batches are written: they must
  // still follow the journal's order, each after its entry's synced write.
  TempDir dir;
  FaultEnv fault;
  LedgerOptions options = FixedDayOptionsOn(fault);
  options.batch_commands_max = 3;
  auto ledger = OpenOrDie(dir.path(), options);
  fault.fs->sync_delay_ms = 2;
  constexpr int kCommands = 60;
  std::mutex mutex;
  std::vector<uint64_t> answered;
  std::vector<std::string> problems;
  std::promise<void> all_answered;
  for (int i = 0; i < kCommands; ++i) {
    ledger->Submit(Transfer("o" + std::to_string(i), "external:a:b", "c:d", 1),
                   [&](CommandResult r) {
                     const uint64_t durable = ledger->Head().sequence;
                     // A slow answer, so that later batches are written meanwhile.
                     std::this_thread::sleep_for(std::chrono::milliseconds(1));
                     std::lock_guard<std::mutex> lock(mutex);
                     if (!r.status.ok()) problems.push_back(std::string(r.status.message()));
                     if (durable < r.entry.sequence())
                       problems.push_back("entry " + std::to_string(r.entry.sequence()) +
                                          " answered before it was durable");
                     answered.push_back(r.entry.sequence());
                     if (answered.size() == kCommands) all_answered.set_value();
                   });
  }
  all_answered.get_future().wait();
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_TRUE(problems.empty()) << problems.front();
  std::vector<uint64_t> in_order(kCommands);
  std::iota(in_order.begin(), in_order.end(), 1);
  EXPECT_EQ(answered, in_order);
}

TEST(Ledger, ReadsNeverSeeAnEntryBeforeItIsDurable) {
  TempDir dir;
  FaultEnv fault;
  LedgerOptions options = FixedDayOptionsOn(fault);
  auto ledger = OpenOrDie(dir.path(), options);
  ASSERT_TRUE(ledger->SubmitAndWait(Transfer("one", "external:a:b", "c:d", 10)).status.ok());
  std::atomic<int> checks{0};
  fault.fs->SetBeforeSync([&] {
    // Inside the sync of entry 2's batch: nothing of it may be visible yet.
    EXPECT_EQ(ledger->GetEntry(2).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(ledger->Head().sequence, 1u);
    EXPECT_EQ(ledger->GetBalance("c:d")->fen(), 10);
    ++checks;
  });
  ASSERT_TRUE(ledger->SubmitAndWait(Transfer("two", "external:a:b", "c:d", 5)).status.ok());
  fault.fs->SetBeforeSync(nullptr);
  EXPECT_GT(checks.load(), 0);
  EXPECT_EQ(ledger->GetBalance("c:d")->fen(), 15);
  EXPECT_TRUE(ledger->GetEntry(2).ok());
}

// The committer hands a written batch's buffer back, cleared, for a later batch. Pipelined
// batches show whether it was cleared. Batch 1 is held in its sync; batch 2 executes
// meanwhile, into a second buffer, and waits for the disk; batch 3 executes once batch 1
// is durable, into batch 1's buffer. Batches 1 and 2 change an account that batch 3 does
// not touch: had batch 1's writes stayed in the buffer, batch 3 would write them again,
// over batch 2's.
TEST(Ledger, AReusedWriteBatchCarriesNothingOfTheBatchBefore) {
  TempDir dir;
  FaultEnv fault;
  // Declared before the ledger, so that they outlive it however the test ends.
  std::promise<void> syncing;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> syncs{0};
  std::promise<CommandResult> answers[3];
  auto ledger = OpenOrDie(dir.path(), FixedDayOptionsOn(fault));
  ASSERT_NE(ledger, nullptr);
  fault.fs->SetBeforeSync([&] {
    if (syncs++ > 0) return;
    syncing.set_value();
    released.wait();
  });
  auto submit = [&](int i, const char* id, const char* to, int64_t fen) {
    ledger->Submit(Transfer(id, "external:a:b", to, fen),
                   [&answers, i](CommandResult r) { answers[i].set_value(std::move(r)); });
  };
  submit(0, "one", "c:x", 10);
  syncing.get_future().wait();
  submit(1, "two", "c:x", 5);
  // Batch 2 is taken at once, and executed while batch 1 syncs; then the writer waits
  // for the disk, and the third transfer waits in the queue for a batch of its own.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  submit(2, "three", "c:y", 1);
  release.set_value();
  for (std::promise<CommandResult>& answer : answers) {
    CommandResult result = answer.get_future().get();
    ASSERT_TRUE(result.status.ok()) << result.status;
  }
  fault.fs->SetBeforeSync(nullptr);
  // One sync per batch: the three transfers went in three batches.
  ASSERT_EQ(syncs.load(), 3);
  EXPECT_EQ(Balance(*ledger, "c:x"), 15);
  EXPECT_EQ(Balance(*ledger, "c:y"), 1);
  absl::StatusOr<std::optional<ProjectionMismatch>> mismatch =
      ledger->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_FALSE(mismatch->has_value());
  ledger.reset();
  ledger = OpenOrDie(dir.path());
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(Balance(*ledger, "c:x"), 15);
}

TEST(Ledger, FailedSyncStopsTheWriterAndLosesNothingAcknowledged) {
  TempDir dir;
  std::vector<v1::Entry> acknowledged;
  {
    FaultEnv fault;
    LedgerOptions options = FixedDayOptionsOn(fault);
    auto ledger = OpenOrDie(dir.path(), options);
    for (int i = 0; i < 10; ++i) {
      CommandResult r =
          ledger->SubmitAndWait(Transfer("ok" + std::to_string(i), "external:a:b", "c:d", 100));
      ASSERT_TRUE(r.status.ok());
      acknowledged.push_back(r.entry);
    }
    fault.fs->fail_sync = true;
    CommandResult failed = ledger->SubmitAndWait(Transfer("lost", "external:a:b", "c:d", 7));
    EXPECT_EQ(failed.status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ReasonOf(failed.status), "LEDGER_STOPPED");
    EXPECT_FALSE(ledger->WriterStatus().ok());
    // Fail-stop: even with the disk healthy again, no further write is accepted.
    fault.fs->fail_sync = false;
    CommandResult after = ledger->SubmitAndWait(Transfer("after", "external:a:b", "c:d", 1));
    EXPECT_EQ(after.status.code(), absl::StatusCode::kUnavailable);
    // Reads go on and show exactly the acknowledged state.
    EXPECT_EQ(ledger->Head().sequence, 10u);
    EXPECT_EQ(ledger->GetBalance("c:d")->fen(), 1000);
    EXPECT_TRUE(ledger->GetEntry(10).ok());
    EXPECT_EQ(ledger->GetEntry(11).status().code(), absl::StatusCode::kNotFound);
  }
  auto ledger = OpenOrDie(dir.path());
  ASSERT_NE(ledger, nullptr);
  for (const v1::Entry& entry : acknowledged) {
    absl::StatusOr<v1::Entry> stored = ledger->GetEntry(entry.sequence());
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->hash(), entry.hash());
  }
  // The unacknowledged entry may or may not have reached the disk; either way the
  // ledger is whole, and a retry with its request id gives one answer.
  EXPECT_GE(ledger->Head().sequence, 10u);
  EXPECT_TRUE(ledger->VerifyJournal().ok());
  auto mismatch = ledger->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value());
  CommandResult retry = ledger->SubmitAndWait(Transfer("lost", "external:a:b", "c:d", 7));
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_EQ(retry.entry.sequence(), 11u);
}

TEST(Ledger, VerifyJournalNamesATamperedEntry) {
  TempDir dir;
  {
    auto ledger = OpenOrDie(dir.path());
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(ledger->SubmitAndWait(Transfer("e" + std::to_string(i), "external:a:b", "c:d", 5))
                      .status.ok());
    }
  }
  {
    RawDb raw(dir.path());
    std::string value = *raw.Get("journal", SequenceKey(5));
    value[value.size() / 2] ^= 0x20;
    raw.Put("journal", SequenceKey(5), value);
  }
  // Opening checks only the head, not the whole journal: it still opens.
  auto ledger = OpenOrDie(dir.path());
  absl::Status verified = ledger->VerifyJournal();
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(verified.message().find("entry 5"), absl::string_view::npos) << verified;
  EXPECT_EQ(ledger->GetEntry(5).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Ledger, VerifyJournalAndListingsNameADeletedEntry) {
  TempDir dir;
  {
    auto ledger = OpenOrDie(dir.path());
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(ledger->SubmitAndWait(Transfer("e" + std::to_string(i), "external:a:b", "c:d", 5))
                      .status.ok());
    }
  }
  { RawDb(dir.path()).Delete("journal", SequenceKey(3)); }
  auto ledger = OpenOrDie(dir.path());
  absl::Status verified = ledger->VerifyJournal();
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(verified.message().find("entry 3"), absl::string_view::npos) << verified;
  // A listing (what an entry stream sends) names the gap rather than skip it: from before
  // it, and from the missing entry itself, which is durable.
  EXPECT_EQ(ledger->ListEntries(1, 2)->size(), 2u);
  for (uint64_t first : {1, 3}) {
    absl::StatusOr<std::vector<v1::Entry>> listed = ledger->ListEntries(first, 10);
    ASSERT_FALSE(listed.ok()) << first;
    EXPECT_EQ(listed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(listed.status().message().find("entry 3 is missing from the journal"),
              absl::string_view::npos)
        << listed.status();
  }
  EXPECT_EQ(ledger->ListEntries(4, 10)->size(), 3u);
}

TEST(Ledger, OpenRefusesAJournalWhoseLastEntryDisagreesWithTheHead) {
  TempDir dir;
  {
    auto ledger = OpenOrDie(dir.path());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(ledger->SubmitAndWait(Transfer("e" + std::to_string(i), "external:a:b", "c:d", 5))
                      .status.ok());
    }
  }
  { RawDb(dir.path()).Delete("journal", SequenceKey(3)); }
  absl::StatusOr<std::unique_ptr<Ledger>> reopened = Ledger::Open(dir.path(), FixedDayOptions());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
}

std::vector<std::string> ColumnFamilies(const std::string& path) {
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  return names;
}

// Opening the ledger at `path` fails with `code`, in a message that says `says`.
void ExpectOpenRefused(const std::string& path, absl::StatusCode code, const std::string& says) {
  absl::StatusOr<std::unique_ptr<Ledger>> opened = Ledger::Open(path, FixedDayOptions());
  EXPECT_EQ(opened.status().code(), code) << opened.status();
  EXPECT_NE(opened.status().message().find(says), std::string::npos) << opened.status();
}

// Another program's RocksDB database at the ledger's path: RocksDB alone would add the
// ledger's column families to it and the ledger would write its marker and entries there.
std::vector<std::string> CreateForeignDatabase(const std::string& path,
                                               const std::vector<std::string>& families,
                                               const std::string& family_with_data) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families) descriptors.emplace_back(name, options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  EXPECT_TRUE(rocksdb::DB::Open(options, path, descriptors, &handles, &db).ok());
  if (db == nullptr) return {};
  for (size_t i = 0; i < families.size(); ++i) {
    if (families[i] == family_with_data) {
      rocksdb::WriteOptions sync;
      sync.sync = true;
      EXPECT_TRUE(db->Put(sync, handles[i], "member:42", "their data").ok());
    }
    EXPECT_TRUE(db->DestroyColumnFamilyHandle(handles[i]).ok());
  }
  EXPECT_TRUE(db->Close().ok());
  delete db;
  return ColumnFamilies(path);
}

TEST(Ledger, OpenRefusesAnotherProgramsDatabaseAndLeavesItAsItWas) {
  struct Case {
    std::vector<std::string> families;
    std::string with_data;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"default"}, "default", "column family \"default\""},
      {{"default", "users"}, "users", "column family \"users\""},
      // A column family named like one of the ledger's, with someone else's data.
      {{"default", "projections"}, "projections", "column family \"projections\""},
  };
  for (const Case& c : cases) {
    TempDir dir;
    const std::vector<std::string> before =
        CreateForeignDatabase(dir.path(), c.families, c.with_data);
    ExpectOpenRefused(dir.path(), absl::StatusCode::kFailedPrecondition, "is not a ledger's");
    ExpectOpenRefused(dir.path(), absl::StatusCode::kFailedPrecondition, c.named);
    EXPECT_EQ(ColumnFamilies(dir.path()), before) << c.named;
    RawDb raw(dir.path());
    EXPECT_EQ(raw.Get(c.with_data, "member:42"), "their data");
  }
}

// A ledger's database has nothing in RocksDB's default column family; data there is
// someone else's even when every ledger column family is present.
TEST(Ledger, OpenRefusesDataInTheDefaultColumnFamily) {
  TempDir dir;
  { OpenOrDie(dir.path()); }
  { RawDb(dir.path()).Put("default", "member:42", "their data"); }
  ExpectOpenRefused(dir.path(), absl::StatusCode::kFailedPrecondition, "column family \"default\"");
}

// A first open that stopped after RocksDB created its database but before the ledger's
// column families and marker: empty, so it is the ledger's to finish.
TEST(Ledger, OpenFinishesAnEmptyDatabaseAFirstOpenLeft) {
  TempDir dir;
  CreateForeignDatabase(dir.path(), {"default", "journal"}, "");
  auto ledger = OpenOrDie(dir.path());
  ASSERT_NE(ledger, nullptr);
  EXPECT_TRUE(ledger->SubmitAndWait(Transfer("e0", "external:a:b", "c:d", 5)).status.ok());
}

// The format marker is the first thing a new ledger writes: with every column family
// present, data without the marker is refused, not taken for a new ledger.
TEST(Ledger, OpenRefusesDataWithoutAFormatMarker) {
  TempDir dir;
  { OpenOrDie(dir.path()); }
  {
    RawDb raw(dir.path());
    raw.Delete("meta", std::string(kMetaFormatKey));
    raw.Put("projections", "a/member:m1:cash", "x");
  }
  ExpectOpenRefused(dir.path(), absl::StatusCode::kDataLoss, "no format marker");
}

// The operator's rebuild: one replay, compared with what is stored, written only when
// they differ; the difference is returned as it was before the rebuild.
TEST(Ledger, RebuildIfDifferingWritesOnlyWhenTheStoredStateDiffers) {
  TempDir dir;
  {
    auto ledger = OpenOrDie(dir.path());
    ASSERT_NO_FATAL_FAILURE(SubmitTransfers(*ledger, 20, 5));
    auto untouched = ledger->RebuildProjectionsIfDiffering();
    ASSERT_TRUE(untouched.ok()) << untouched.status();
    EXPECT_FALSE(untouched->has_value());
  }
  std::string right;
  std::vector<std::pair<std::string, std::string>> before;
  {
    RawDb raw(dir.path());
    before = raw.All("projections");
    right = *raw.Get("projections", "a/member:m3:cash");
    raw.Put("projections", "a/member:m3:cash", "garbage");
  }
  auto ledger = OpenOrDie(dir.path());
  auto rebuilt = ledger->RebuildProjectionsIfDiffering();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ASSERT_TRUE(rebuilt->has_value());
  EXPECT_EQ((*rebuilt)->key, "a/member:m3:cash");
  EXPECT_EQ((*rebuilt)->stored, "garbage");
  EXPECT_EQ((*rebuilt)->rebuilt, right);
  EXPECT_EQ(DescribeProjectionMismatch(**rebuilt),
            "projections key a/member:m3:cash: stored 7 bytes, the replay gives " +
                std::to_string(right.size()) + " bytes, first different at byte 0");
  auto again = ledger->RebuildProjectionsIfDiffering();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  ledger.reset();
  EXPECT_EQ(RawDb(dir.path()).All("projections"), before);

  // With nothing to put right it writes nothing: a ledger opened, asked and closed moves
  // RocksDB's sequence number no further than one only opened and closed.
  const uint64_t at_start = RawDb(dir.path()).LatestSequence();
  OpenOrDie(dir.path()).reset();
  const uint64_t after_open = RawDb(dir.path()).LatestSequence();
  {
    auto asked = OpenOrDie(dir.path());
    auto nothing = asked->RebuildProjectionsIfDiffering();
    ASSERT_TRUE(nothing.ok());
    EXPECT_FALSE(nothing->has_value());
  }
  EXPECT_EQ(RawDb(dir.path()).LatestSequence() - after_open, after_open - at_start);
  // And the rebuild above did write: damaged again, the same steps move it further.
  { RawDb(dir.path()).Put("projections", "a/member:m3:cash", "garbage"); }
  const uint64_t damaged = RawDb(dir.path()).LatestSequence();
  {
    auto asked = OpenOrDie(dir.path());
    ASSERT_TRUE(asked->RebuildProjectionsIfDiffering().ok());
  }
  EXPECT_GT(RawDb(dir.path()).LatestSequence() - damaged, after_open - at_start);
}

// What an operator or auditor is shown of a difference: an account's fields when they
// differ, its bytes when only the bytes do, and never a request id.
TEST(Ledger, DescribedDifferencesShowAccountsAndHideRequestIds) {
  v1::AccountState account;
  account.set_balance_fen(12'345);
  account.set_posting_count(3);
  account.set_last_sequence(9);
  v1::AccountState more = account;
  more.set_balance_fen(12'445);
  ProjectionMismatch m{"projections", "a/union:fund:cash", more.SerializeAsString(),
                       account.SerializeAsString()};
  EXPECT_EQ(DescribeProjectionMismatch(m),
            "projections key a/union:fund:cash: stored balance 124.45 after 3 postings (last "
            "entry 9), the replay gives balance 123.45 after 3 postings (last entry 9)");
  // The same fields in other bytes (an unknown field 15, varint 1): by the bytes.
  m.stored = account.SerializeAsString() + std::string("\x78\x01", 2);
  EXPECT_EQ(DescribeProjectionMismatch(m),
            "projections key a/union:fund:cash: stored " + std::to_string(m.stored->size()) +
                " bytes, the replay gives " + std::to_string(m.rebuilt->size()) +
                " bytes, first different at byte " + std::to_string(m.rebuilt->size()));
  ProjectionMismatch request{"request_ids", "pay-13907961234", std::nullopt, "x"};
  EXPECT_EQ(DescribeProjectionMismatch(request),
            "request_ids key (a request id, not shown): not stored, the replay gives 1 byte");
}

TEST(Ledger, RebuildProducesByteIdenticalProjections) {
  TempDir dir;
  {
    auto ledger = OpenOrDie(dir.path());
    ASSERT_NO_FATAL_FAILURE(SubmitTransfers(*ledger, 50, 7));
    auto mismatch = ledger->CompareProjectionsWithRebuild();
    ASSERT_TRUE(mismatch.ok());
    EXPECT_FALSE(mismatch->has_value());
  }
  std::vector<std::pair<std::string, std::string>> before;
  {
    RawDb raw(dir.path());
    before = raw.All("projections");
    raw.Put("projections", "a/member:m3:cash", "garbage");
    raw.Delete("projections", "a/member:m4:cash");
    raw.Put("projections", "a/member:m9:cash", "");
  }
  auto ledger = OpenOrDie(dir.path());
  auto mismatch = ledger->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  ASSERT_TRUE(mismatch->has_value());
  EXPECT_EQ((*mismatch)->space, "projections");
  EXPECT_EQ((*mismatch)->key, "a/member:m3:cash");
  auto rebuilt = ledger->RebuildProjectionsIfDiffering();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ASSERT_TRUE(rebuilt->has_value());
  EXPECT_EQ((*rebuilt)->key, "a/member:m3:cash") << "the rebuild names what it put right";
  mismatch = ledger->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value());
  ledger.reset();
  EXPECT_EQ(RawDb(dir.path()).All("projections"), before);
}

// A stored tree with more leaves than the journal has entries is damage, reported at once:
// a tree head read waits for the journal to catch up only with what storage holds.
TEST(Ledger, ATreeAheadOfItsJournalIsDataLossNotAWait) {
  TempDir longer;
  SubmitTransfers(*OpenOrDie(longer.path()), 7, 1);
  std::optional<std::string> edge =
      RawDb(longer.path()).Get("projections", std::string(kTreeEdgeKey));
  ASSERT_TRUE(edge.has_value());
  TempDir dir;
  SubmitTransfers(*OpenOrDie(dir.path()), 5, 1);
  RawDb(dir.path()).Put("projections", std::string(kTreeEdgeKey), *edge);
  auto ledger = OpenOrDie(dir.path());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TreeHead> head = ledger->GetTreeHead();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  ASSERT_EQ(head.status().code(), absl::StatusCode::kDataLoss) << head.status();
  EXPECT_NE(head.status().message().find("holds 7 leaves but the journal ends at entry 5"),
            std::string_view::npos)
      << head.status();
}

// The writer keeps the Merkle tree's edge decoded, loaded when the ledger opens. A stored
// edge that is damaged, or that does not match the journal, refuses every write, naming
// the projection, until a rebuild puts it right; then writes go on from the right tree.
TEST(Ledger, ADamagedTreeEdgeRefusesWritesUntilARebuild) {
  for (const std::string& damaged : {std::string("garbage"), std::string()}) {
    TempDir dir;
    {
      auto ledger = OpenOrDie(dir.path());
      for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(ledger
                        ->SubmitAndWait(
                            Transfer("e" + std::to_string(i), "external:a:b", "member:m1:cash", 5))
                        .status.ok());
      }
    }
    {
      RawDb raw(dir.path());
      if (damaged.empty()) {
        raw.Delete("projections", std::string(kTreeEdgeKey));  // an empty tree: 0 leaves
      } else {
        raw.Put("projections", std::string(kTreeEdgeKey), damaged);
      }
    }
    auto ledger = OpenOrDie(dir.path());
    CommandResult refused =
        ledger->SubmitAndWait(Transfer("e5", "external:a:b", "member:m1:cash", 5));
    EXPECT_EQ(refused.status.code(), absl::StatusCode::kDataLoss) << refused.status;
    EXPECT_NE(refused.status.message().find("projection t/edge: "), std::string_view::npos)
        << refused.status;
    if (damaged.empty()) {
      EXPECT_NE(refused.status.message().find("holds 0 leaves but the journal ends at entry 5"),
                std::string_view::npos)
          << refused.status;
    }
    EXPECT_EQ(ledger->Head().sequence, 5u);

    auto rebuilt = ledger->RebuildProjectionsIfDiffering();
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    ASSERT_TRUE(rebuilt->has_value()) << "the damaged edge differs from the replay";
    EXPECT_EQ((*rebuilt)->key, kTreeEdgeKey);
    ASSERT_TRUE(
        ledger->SubmitAndWait(Transfer("e5", "external:a:b", "member:m1:cash", 5)).status.ok());
    EXPECT_EQ(ledger->GetTreeHead()->size, 6u);
    auto mismatch = ledger->CompareProjectionsWithRebuild();
    ASSERT_TRUE(mismatch.ok());
    EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->key;
  }
}

}  // namespace
}  // namespace gongdai
