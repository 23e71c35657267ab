// gongdai-audit against real databases: it passes an untouched copy and catches every
// kind of tampering, naming the entry; and an auditor streaming from a live server while
// officers write gets a journal that verifies against the final checkpoint.
#include "client/audit/audit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/checkpoint.h"
#include "engine/journal_format.h"
#include "engine/money.h"
#include "engine/national_id.h"
#include "engine/programme.h"
#include "engine/replay.h"
#include "engine/sha256.h"
#include "gongdai/v1/state.pb.h"
#include "server/demo.h"
#include "tests/programme_fixture.h"
#include "tests/raw_db.h"
#include "tests/server_process.h"

namespace gongdai {
namespace {

namespace fs = std::filesystem;
using testing::RawDb;
using testing::TempDir;

struct RunResult {
  int code;
  std::string out;
  std::string err;
};

// The lines of an export file, and a file written from lines (a tampered export).
std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
void WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
}

RunResult Audit(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = audit::Run(args, out, err);
  return {code, out.str(), err.str()};
}

// A lifecycle's database: products, borrowers, loans approved, disbursed and repaid, a
// reversal; then closed. Also a signed checkpoint of it and the verifier key.
class AuditTest : public testing::ProgrammeTest {
 protected:
  void SetUp() override {
    ProgrammeTest::SetUp();
    DefineProduct("fund-2020", testing::UnionFundTerms());
    DefineProduct("psbc-2020", testing::BankTerms());
    Ok(testing::kCashier, Contribute(50'000'000));
    SetToday("2020-01-15");
    std::vector<std::string> loans;
    for (int i = 0; i < 4; ++i)
      loans.push_back(ActiveLoan(Register("借款人" + std::to_string(i)),
                                 i % 2 ? "psbc-2020" : "fund-2020", 1'200'000, 12));
    SetToday("2020-03-20");
    for (const std::string& loan : loans) Ok(testing::kCashier, Repay(loan, 200'000));
    v1::Entry wrong = Ok(testing::kCashier, Repay(loans[0], 300'000));
    Ok(testing::kSupervisor, Reverse(wrong.sequence()));
    Ok(testing::kCashier, Accrue(loans[1]));
    size_ = ledger_->Head().sequence;
    cash_before_ = Balance("union:fund:cash");
    signer_ = std::make_unique<CheckpointSigner>(
        *CheckpointSigner::LoadOrCreate(copies_.Sub("key.pem"), "test.ledger"));
    TreeHead head = *ledger_->GetTreeHead();
    checkpoint_ = copies_.Sub("cp.txt");
    std::ofstream(checkpoint_) << signer_->Sign(
        Checkpoint{"test.ledger", head.size, head.root, 1600000000});
    ledger_.reset();
  }

  // A copy of the database to tamper with.
  std::string Copy(const std::string& name) {
    const std::string copy = copies_.Sub(name);
    fs::copy(dir_.path(), copy, fs::copy_options::recursive);
    return copy;
  }

  RunResult Verify(const std::string& db, const std::string& checkpoint = "") {
    std::vector<std::string> args = {"verify", "--db", db, "--public-key", signer_->VerifierKey()};
    if (!checkpoint.empty()) args.insert(args.end(), {"--checkpoint", checkpoint});
    return Audit(args);
  }

  TempDir copies_;
  uint64_t size_ = 0;
  int64_t cash_before_ = 0;  // the union fund's cash balance
  std::unique_ptr<CheckpointSigner> signer_;
  std::string checkpoint_;
};

TEST_F(AuditTest, UntouchedCopyVerifies) {
  RunResult r = Verify(Copy("clean"), checkpoint_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("verified " + std::to_string(size_) + " entries"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("every stored projection"), std::string::npos);
  EXPECT_NE(r.out.find("signature good"), std::string::npos);
}

TEST_F(AuditTest, ChangedByteOfAnEntryIsCaughtAtThatEntry) {
  const std::string db = Copy("flip");
  {
    RawDb raw(db);
    std::string value = *raw.Get("journal", SequenceKey(5));
    value[value.size() / 2] ^= 0x01;
    raw.Put("journal", SequenceKey(5), value);
  }
  RunResult r = Verify(db, checkpoint_);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("FAILED: entry 5:"), std::string::npos) << r.err;
}

TEST_F(AuditTest, DeletedEntryIsCaught) {
  const std::string db = Copy("delete");
  { RawDb(db).Delete("journal", SequenceKey(7)); }
  RunResult r = Verify(db);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("FAILED: entry 7: missing"), std::string::npos) << r.err;
}

TEST_F(AuditTest, ReorderedEntriesAreCaught) {
  const std::string db = Copy("reorder");
  {
    RawDb raw(db);
    std::string eight = *raw.Get("journal", SequenceKey(8));
    std::string nine = *raw.Get("journal", SequenceKey(9));
    raw.Put("journal", SequenceKey(8), nine);
    raw.Put("journal", SequenceKey(9), eight);
  }
  RunResult r = Verify(db);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("FAILED: entry 8:"), std::string::npos) << r.err;
}

TEST_F(AuditTest, AlteredProjectionIsCaught) {
  const std::string db = Copy("projection");
  {
    RawDb raw(db);
    v1::AccountState cash;
    ASSERT_TRUE(cash.ParseFromString(*raw.Get("projections", "a/union:fund:cash")));
    cash.set_balance_fen(cash.balance_fen() + 100);  // someone helps themselves to 1 yuan
    raw.Put("projections", "a/union:fund:cash", cash.SerializeAsString());
  }
  RunResult r = Verify(db);
  EXPECT_EQ(r.code, 1);
  const std::string cash = Money::FromFen(cash_before_ + 100).ToString();
  const std::string replayed = Money::FromFen(cash_before_).ToString();
  EXPECT_NE(r.err.find("projections key a/union:fund:cash: stored balance " + cash),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("the replay gives balance " + replayed), std::string::npos) << r.err;
}

// A copy whose derived state an earlier engine wrote (another projections version) is not
// compared with this replay, which differs from it by design: the journal is verified,
// and the output says what was left out and why. A ledger opening it rebuilds that state.
TEST_F(AuditTest, DerivedStateOfAnEarlierVersionIsNotComparedAndSaysSo) {
  const std::string db = Copy("earlier");
  {
    RawDb raw(db);
    v1::AccountState cash;  // would be a difference at this version
    ASSERT_TRUE(cash.ParseFromString(*raw.Get("projections", "a/union:fund:cash")));
    cash.set_balance_fen(cash.balance_fen() + 100);
    raw.Put("projections", "a/union:fund:cash", cash.SerializeAsString());
    raw.Put("meta", "projections", "gongdai-projections-5");
  }
  RunResult r = Verify(db, checkpoint_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("verified " + std::to_string(size_) + " entries"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("not compared: written by an earlier version (gongdai-projections-5, "
                       "this one writes " +
                       std::string(kProjectionsVersion) + ")"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("every stored projection"), std::string::npos) << r.out;

  // A version no gongdai wrote would hide the derived state from the comparison: a fault.
  const std::string unknown = Copy("unknown-version");
  RawDb(unknown).Put("meta", "projections", "gongdai-projections-99");
  r = Verify(unknown, checkpoint_);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("derived state names version \"gongdai-projections-99\", which no "
                       "version of gongdai up to " +
                       std::string(kProjectionsVersion) + " wrote"),
            std::string::npos)
      << r.err;
}

// A difference in a borrower's projection or in the identity index is named without the
// personal data it holds: values by size and first differing byte, the ID number masked.
TEST_F(AuditTest, AlteredBorrowerAndIdentityIndexAreNamedWithoutPersonalData) {
  const std::string national_id = testing::NationalId("19850612", 1);
  const std::string borrowers = Copy("borrower");
  std::string borrower_id;
  std::string phone;
  {
    RawDb raw(borrowers);
    borrower_id = *raw.Get("indexes", "nid/" + national_id);
    v1::BorrowerState borrower;
    ASSERT_TRUE(borrower.ParseFromString(*raw.Get("projections", "b/" + borrower_id)));
    phone = borrower.details().phone();
    ASSERT_FALSE(phone.empty());
    borrower.mutable_details()->set_phone("13800000000");
    raw.Put("projections", "b/" + borrower_id, borrower.SerializeAsString());
  }
  RunResult r = Verify(borrowers);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("projections key b/" + borrower_id + ": stored "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("first different at byte "), std::string::npos) << r.err;
  for (const std::string& secret :
       {phone, std::string("13800000000"), national_id, std::string("借款人0")}) {
    EXPECT_EQ(r.err.find(secret), std::string::npos) << secret << " shown in: " << r.err;
    EXPECT_EQ(r.out.find(secret), std::string::npos) << secret << " shown in: " << r.out;
  }

  const std::string index = Copy("index");
  { RawDb(index).Delete("indexes", "nid/" + national_id); }
  r = Verify(index);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.err.find("indexes key nid/" + MaskNationalId(national_id) +
                 ": not stored, the replay gives " + std::to_string(borrower_id.size()) + " bytes"),
      std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(national_id), std::string::npos) << r.err;
}

// --journal-only checks the journal and its replay and leaves the copy's derived state
// alone, and says so: a changed entry is still caught, a changed projection is not.
TEST_F(AuditTest, JournalOnlyChecksTheJournalAndSaysWhatItLeftOut) {
  const std::vector<std::string> journal_only = {
      "verify",       "--journal-only",       "--checkpoint", checkpoint_,
      "--public-key", signer_->VerifierKey(), "--db"};
  auto run = [&](const std::string& db) {
    std::vector<std::string> args = journal_only;
    args.push_back(db);
    return Audit(args);
  };
  RunResult clean = run(Copy("journal-only-clean"));
  EXPECT_EQ(clean.code, 0) << clean.err;
  EXPECT_NE(clean.out.find("verified " + std::to_string(size_) + " entries"), std::string::npos)
      << clean.out;
  EXPECT_NE(clean.out.find("signature good"), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("projections, indexes and request ids not compared (--journal-only)"),
            std::string::npos)
      << clean.out;
  EXPECT_EQ(clean.out.find("every stored projection"), std::string::npos) << clean.out;

  const std::string flipped = Copy("journal-only-flip");
  {
    RawDb raw(flipped);
    std::string value = *raw.Get("journal", SequenceKey(5));
    value[value.size() / 2] ^= 0x01;
    raw.Put("journal", SequenceKey(5), value);
  }
  RunResult caught = run(flipped);
  EXPECT_EQ(caught.code, 1);
  EXPECT_NE(caught.err.find("FAILED: entry 5:"), std::string::npos) << caught.err;

  const std::string projection = Copy("journal-only-projection");
  { RawDb(projection).Put("projections", "a/union:fund:cash", "not an account"); }
  RunResult left_alone = run(projection);
  EXPECT_EQ(left_alone.code, 0) << left_alone.err;
  EXPECT_EQ(Verify(projection).code, 1);  // the full verify catches it

  RunResult misused = Audit({"verify", "--journal-only", "--export", copies_.Sub("none.jsonl")});
  EXPECT_EQ(misused.code, 2);
  EXPECT_NE(misused.err.find("--journal-only goes with --db"), std::string::npos) << misused.err;
  RunResult sourceless = Audit({"verify", "--journal-only"});
  EXPECT_EQ(sourceless.code, 2);
  EXPECT_NE(sourceless.err.find("give exactly one source"), std::string::npos) << sourceless.err;
}

TEST_F(AuditTest, TruncatedJournalIsCaught) {
  const std::string db = Copy("truncate");
  {
    RawDb raw(db);
    for (uint64_t s = size_ - 2; s <= size_; ++s) raw.Delete("journal", SequenceKey(s));
  }
  RunResult r = Verify(db);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("FAILED: entry " + std::to_string(size_ - 2) + ": missing"),
            std::string::npos)
      << r.err;

  // Even with the chain head and projections rewritten to match, the signed checkpoint
  // still covers the missing entries.
  const std::string rewritten = Copy("truncate-rewritten");
  {
    RawDb raw(rewritten);
    for (uint64_t s = size_ - 2; s <= size_; ++s) raw.Delete("journal", SequenceKey(s));
  }
  Replayer replay;
  {
    RawDb raw(rewritten);
    for (const auto& [key, value] : raw.All("journal"))
      ASSERT_TRUE(replay.AddStored(value, DecodeSequenceKey(key)).ok());
    for (const char* space : {"projections", "indexes", "request_ids"}) {
      for (const auto& [key, value] : raw.All(space)) raw.Delete(space, key);
    }
    const Space spaces[] = {Space::kProjections, Space::kIndexes, Space::kRequestIds};
    const char* names[] = {"projections", "indexes", "request_ids"};
    for (int i = 0; i < 3; ++i) {
      for (const auto& [key, value] : replay.state().Sorted(spaces[i]))
        raw.Put(names[i], std::string(key), std::string(value));
    }
    v1::JournalHead head;
    head.set_sequence(replay.size());
    head.set_hash(replay.last_hash());
    raw.Put("meta", "head", head.SerializeAsString());
  }
  EXPECT_EQ(Verify(rewritten).code, 0);  // consistent on its own...
  r = Verify(rewritten, checkpoint_);    // ...but not with what was signed
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.err.find("FAILED: entry " + std::to_string(size_ - 2) + ": missing (the checkpoint covers"),
      std::string::npos)
      << r.err;
}

// The chain head is written with every batch of entries. One that does not parse, or
// names no entry or a hash of the wrong size, is damage, which both the auditor and the
// ledger opening the database report (ParseStoredHead).
TEST_F(AuditTest, DamagedChainHeadIsDataLoss) {
  v1::JournalHead short_hash;
  short_hash.set_sequence(size_);
  short_hash.set_hash("0123456789");
  v1::JournalHead no_entry;
  no_entry.set_hash(GenesisHash());
  const std::pair<std::string, std::string> damages[] = {
      {std::string("\xff\xff\xff", 3), "chain head does not parse"},
      {short_hash.SerializeAsString(), "chain head's hash is 10 bytes, not 32"},
      {no_entry.SerializeAsString(), "chain head names no entry"},
  };
  int i = 0;
  for (const auto& [stored, message] : damages) {
    const std::string db = Copy("head-damaged-" + std::to_string(i++));
    { RawDb(db).Put("meta", "head", stored); }
    RunResult r = Verify(db);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(db, testing::FixedDayOptions());
    ASSERT_FALSE(ledger.ok());
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(ledger.status().message().find(message), std::string::npos) << ledger.status();
  }
}

TEST_F(AuditTest, CheckpointSignedByAnotherKeyIsRefused) {
  CheckpointSigner other = *CheckpointSigner::LoadOrCreate(copies_.Sub("other.pem"), "test.ledger");
  const std::string forged = copies_.Sub("forged.txt");
  std::ifstream in(checkpoint_);
  std::stringstream note;
  note << in.rdbuf();
  absl::StatusOr<Checkpoint> parsed = VerifyCheckpoint(note.str(), signer_->VerifierKey());
  ASSERT_TRUE(parsed.ok());
  std::ofstream(forged) << other.Sign(*parsed);
  RunResult r = Verify(Copy("forged"), forged);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not signed by test.ledger"), std::string::npos) << r.err;
}

TEST_F(AuditTest, ExportThenVerifyTheExportAndReplayAsOfADate) {
  const std::string db = Copy("export");
  const std::string jsonl = copies_.Sub("journal.jsonl");
  const std::string csv = copies_.Sub("postings.csv");
  RunResult exported = Audit({"export", "--db", db, "--jsonl", jsonl, "--csv", csv});
  ASSERT_EQ(exported.code, 0) << exported.err;
  std::ifstream csv_in(csv);
  std::string header;
  std::getline(csv_in, header);
  EXPECT_EQ(header.substr(0, 3), "\xef\xbb\xbf");  // a spreadsheet sees UTF-8
  EXPECT_NE(header.find("seq,date,actor,role,event,loan,account,debit,credit"), std::string::npos);
  RunResult verified = Audit({"verify", "--export", jsonl, "--checkpoint", checkpoint_,
                              "--public-key", signer_->VerifierKey()});
  EXPECT_EQ(verified.code, 0) << verified.err;
  // A changed amount in the export breaks that entry's hash.
  std::vector<std::string> lines = ReadLines(jsonl);
  size_t target = 0;
  while (target < lines.size() && lines[target].find("\"amount_fen\":\"") == std::string::npos)
    ++target;
  ASSERT_LT(target, lines.size());
  lines[target].insert(lines[target].find("\"amount_fen\":\"") + 14, "1");
  const std::string tampered = copies_.Sub("tampered.jsonl");
  WriteLines(tampered, lines);
  RunResult caught = Audit({"verify", "--export", tampered});
  EXPECT_EQ(caught.code, 1);
  EXPECT_NE(caught.err.find("FAILED: entry " + std::to_string(target + 1) + ": field hash"),
            std::string::npos)
      << caught.err;
  // A line that is not JSON of an export line is named by its number.
  lines[target].erase(lines[target].find("\"amount_fen\":\"") + 14, 1);  // untampered
  lines[6] = "{\"entry\": 12";
  const std::string broken = copies_.Sub("broken.jsonl");
  WriteLines(broken, lines);
  RunResult unreadable = Audit({"verify", "--export", broken});
  EXPECT_EQ(unreadable.code, 1);
  EXPECT_NE(unreadable.err.find("line 7 of " + broken + " is not an export line"),
            std::string::npos)
      << unreadable.err;

  RunResult then =
      Audit({"replay", "--export", jsonl, "--as-of", "2020-01-31", "--loan", "L000001"});
  EXPECT_EQ(then.code, 0) << then.err;
  EXPECT_NE(then.out.find("outstanding 12,000.00"), std::string::npos) << then.out;
  RunResult now = Audit({"replay", "--export", jsonl, "--loan", "L000001"});
  EXPECT_NE(now.out.find("outstanding 10,000.00"), std::string::npos) << now.out;
  RunResult proved = Audit({"prove", "--export", jsonl, "--sequence", "12", "--checkpoint",
                            checkpoint_, "--public-key", signer_->VerifierKey()});
  EXPECT_EQ(proved.code, 0) << proved.err;
  EXPECT_NE(proved.out.find("entry 12"), std::string::npos);
}

// What a ledger refuses to open, the auditor does not pass: a chain head whose hash is not
// the last entry's, a format marker of another format.
TEST_F(AuditTest, ChainHeadHashAndFormatMarkerAreChecked) {
  const std::string db = Copy("head-hash");
  {
    RawDb raw(db);
    v1::JournalHead head;
    ASSERT_TRUE(head.ParseFromString(raw.Get("meta", "head").value_or("")));
    std::string hash = head.hash();
    hash[0] = static_cast<char>(hash[0] ^ 1);
    head.set_hash(hash);
    raw.Put("meta", "head", head.SerializeAsString());
  }
  RunResult r = Verify(db);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("meta key head: names entry " + std::to_string(size_) + " with hash"),
            std::string::npos)
      << r.err;

  const std::string other = Copy("format");
  { RawDb(other).Put("meta", "format", "gongdai-journal-9"); }
  r = Verify(other);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("has format \"gongdai-journal-9\""), std::string::npos) << r.err;

  // Entries without the marker are damage, as the ledger opening the copy says.
  const std::string unmarked = Copy("unmarked");
  { RawDb(unmarked).Delete("meta", "format"); }
  r = Verify(unmarked);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("the journal has entries but no format marker"), std::string::npos) << r.err;

  const std::string headless = Copy("headless");
  { RawDb(headless).Delete("meta", "head"); }
  r = Verify(headless);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("meta key head: missing, but the journal holds"), std::string::npos)
      << r.err;
}

// A replay as of a date gives no figures from a journal that does not verify, and an
// export's hex hashes must be its entries'.
TEST_F(AuditTest, ReplayAsOfADateAndExportsAreChecked) {
  const std::string jsonl = copies_.Sub("journal.jsonl");
  ASSERT_EQ(Audit({"export", "--db", Copy("source"), "--jsonl", jsonl}).code, 0);
  std::vector<std::string> lines = ReadLines(jsonl);
  size_t target = 0;
  while (target < lines.size() && lines[target].find("\"amount_fen\":\"") == std::string::npos)
    ++target;
  ASSERT_LT(target, lines.size());
  std::vector<std::string> changed = lines;
  changed[target].insert(changed[target].find("\"amount_fen\":\"") + 14, "1");
  const std::string tampered = copies_.Sub("tampered.jsonl");
  WriteLines(tampered, changed);
  RunResult r = Audit(
      {"replay", "--export", tampered, "--as-of", "2020-12-31", "--account", "union:fund:cash"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("entry " + std::to_string(target + 1) + ": field hash"), std::string::npos)
      << r.err;
  std::vector<std::string> gap = lines;
  gap.erase(gap.begin() + 5);
  WriteLines(tampered, gap);
  r = Audit({"replay", "--export", tampered, "--as-of", "2020-12-31"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("entry 6: missing or out of order (the next entry is 7)"), std::string::npos)
      << r.err;
  std::vector<std::string> swapped = lines;
  std::swap(swapped[5], swapped[6]);
  WriteLines(tampered, swapped);
  r = Audit({"replay", "--export", tampered, "--as-of", "2020-12-31"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("entry 6: missing or out of order (the next entry is 7)"), std::string::npos)
      << r.err;
  r = Audit({"replay", "--export", jsonl, "--as-of", "2020-12-31"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(" + std::to_string(size_) + " entries verified)"), std::string::npos)
      << r.out;

  std::vector<std::string> hex = lines;
  const size_t at = hex[3].rfind("\"hash\":\"") + 8;
  hex[3][at] = hex[3][at] == 'a' ? 'b' : 'a';
  WriteLines(tampered, hex);
  r = Audit({"verify", "--export", tampered});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("entry 4 (line 4): field hash: the hex copy differs"), std::string::npos)
      << r.err;

  // A directory is no export.
  r = Audit({"verify", "--export", copies_.path()});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find(": a directory"), std::string::npos) << r.err;
}

// An export replaces its files only once it is complete: a refused export leaves an
// earlier one as it was, and an export may be its own source.
TEST_F(AuditTest, AnExportReplacesItsFileOnlyWhenComplete) {
  const std::string jsonl = copies_.Sub("kept.jsonl");
  ASSERT_EQ(Audit({"export", "--db", Copy("source"), "--jsonl", jsonl}).code, 0);
  const std::vector<std::string> lines = ReadLines(jsonl);
  ASSERT_EQ(lines.size(), size_);
  EXPECT_EQ(Audit({"export", "--jsonl", jsonl}).code, 2);  // no source
  EXPECT_EQ(ReadLines(jsonl), lines);
  RunResult r = Audit({"export", "--export", jsonl, "--jsonl", jsonl});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadLines(jsonl), lines);
  EXPECT_EQ(Audit({"export", "--db", copies_.Sub("none"), "--jsonl", jsonl}).code, 2);
  EXPECT_EQ(ReadLines(jsonl), lines);
  for (const auto& entry : fs::directory_iterator(copies_.path()))
    EXPECT_EQ(entry.path().filename().string().find(".partial-"), std::string::npos)
        << entry.path();

  // The file replaced keeps its permissions (an export holds personal data), and a link
  // to it stays a link.
  fs::permissions(jsonl, fs::perms::owner_read | fs::perms::owner_write);
  const std::string link = copies_.Sub("link.jsonl");
  fs::create_symlink(jsonl, link);
  r = Audit({"export", "--export", jsonl, "--jsonl", link});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(ReadLines(link), lines);
  EXPECT_EQ(fs::status(jsonl).permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

// An earlier checkpoint of the empty ledger is consistent with every later one; a key
// that is not a verifier key is the command's error, not the checkpoint's.
TEST_F(AuditTest, CheckpointsOfTheEmptyLedgerAndBadKeys) {
  const std::string empty = copies_.Sub("cp0.txt");
  std::ofstream(empty) << signer_->Sign(
      Checkpoint{"test.ledger", 0, MerkleEmptyRoot(), 1500000000});
  RunResult r =
      Audit({"verify", "--db", Copy("empty-previous"), "--public-key", signer_->VerifierKey(),
             "--checkpoint", checkpoint_, "--previous-checkpoint", empty});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("consistent with the earlier checkpoint of 0 entries"), std::string::npos)
      << r.out;

  r = Audit(
      {"verify", "--db", Copy("bad-key"), "--public-key", "xyz", "--checkpoint", checkpoint_});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--public-key: verifier key must look like"), std::string::npos) << r.err;
  r = Audit({"prove", "--db", Copy("prove-missing"), "--sequence", "3", "--checkpoint",
             copies_.Sub("missing.txt"), "--public-key", signer_->VerifierKey()});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
}

// The demo book passes gongdai-audit verify, as a database and as an export.
TEST(AuditDemo, DemoBookPassesVerify) {
  TempDir dir, out;
  {
    absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(
        dir.path(), testing::FixedDayOptions(std::string(server::kDemoBusinessDate).c_str()));
    ASSERT_TRUE(ledger.ok());
    ASSERT_TRUE(server::LoadDemoBook(**ledger).ok());
  }
  RunResult db = Audit({"verify", "--db", dir.path()});
  EXPECT_EQ(db.code, 0) << db.err;
  EXPECT_NE(db.out.find("disbursed 62,470,000.00"), std::string::npos) << db.out;
  const std::string jsonl = out.Sub("demo.jsonl");
  ASSERT_EQ(Audit({"export", "--db", dir.path(), "--jsonl", jsonl}).code, 0);
  RunResult exported = Audit({"verify", "--export", jsonl});
  EXPECT_EQ(exported.code, 0) << exported.err;
  EXPECT_NE(exported.out.find("disbursed 62,470,000.00"), std::string::npos) << exported.out;
  // The export is many batches long. The reading thread parses the first batch, and the
  // replay's thread the second (it has none in hand yet): a broken line in either is
  // named by number.
  const std::vector<std::string> lines = ReadLines(jsonl);
  ASSERT_GT(lines.size(), 600u);
  for (size_t bad : {10, 300}) {
    const std::string broken = out.Sub("broken-" + std::to_string(bad) + ".jsonl");
    std::vector<std::string> with_bad_line = lines;
    with_bad_line[bad] = "{\"entry\": 12";
    WriteLines(broken, with_bad_line);
    RunResult unreadable = Audit({"verify", "--export", broken});
    EXPECT_EQ(unreadable.code, 1);
    EXPECT_NE(unreadable.err.find("line " + std::to_string(bad + 1) + " of " + broken +
                                  " is not an export line"),
              std::string::npos)
        << unreadable.err;
  }
}

// An export or a server is verified with a replay that keeps only what apply reads. Over
// the demo book (every kind of entry a programme makes), it must hold every projection
// that a full replay holds but the tree's nodes and the loans' summaries, byte for byte,
// and the same tree; what it leaves out it refuses to answer for, and it cannot be
// compared with a database.
TEST(AuditDemo, AReplayKeepingWhatApplyReadsHoldsTheSameProjections) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(
        dir.path(), testing::FixedDayOptions(std::string(server::kDemoBusinessDate).c_str()));
    ASSERT_TRUE(ledger.ok());
    ASSERT_TRUE(server::LoadDemoBook(**ledger).ok());
  }
  absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(dir.path());
  ASSERT_TRUE(copy.ok()) << copy.status();
  Replayer full(ReplayKeeps::kEverything);
  Replayer light(ReplayKeeps::kWhatApplyReads);
  ASSERT_TRUE((*copy)
                  ->ForEachOpenedEntry([&](const OpenedEntry& opened) {
                    absl::Status added = full.AddOpened(opened);
                    return added.ok() ? light.AddOpened(opened) : added;
                  })
                  .ok());
  ASSERT_GT(light.size(), 600u);
  EXPECT_EQ(light.last_hash(), full.last_hash());
  EXPECT_EQ(light.root(), full.root());

  // Apply reads neither the tree's nodes nor the loans' summaries back.
  std::vector<std::pair<std::string, std::string>> expected, kept;
  for (const auto& [key, value] : full.state().Sorted(Space::kProjections)) {
    if (!key.starts_with(kTreeNodePrefix) && !key.starts_with(kLoanSummaryPrefix))
      expected.emplace_back(key, value);
  }
  EXPECT_FALSE(full.state().Sorted(Space::kProjections, kLoanSummaryPrefix).empty());
  EXPECT_TRUE(light.state().Sorted(Space::kProjections, kLoanSummaryPrefix).empty());
  for (const auto& [key, value] : light.state().Sorted(Space::kProjections))
    kept.emplace_back(key, value);
  EXPECT_GT(expected.size(), 1'000u);
  EXPECT_TRUE(kept == expected) << kept.size() << " projections kept, " << expected.size()
                                << " in the full replay";
  EXPECT_FALSE(full.state().Sorted(Space::kIndexes).empty());
  EXPECT_TRUE(light.state().Sorted(Space::kIndexes).empty());
  EXPECT_TRUE(light.state().Sorted(Space::kRequestIds).empty());

  absl::StatusOr<std::optional<ProjectionMismatch>> compared = (*copy)->CompareWith(light);
  EXPECT_EQ(compared.status().code(), absl::StatusCode::kFailedPrecondition) << compared.status();
  compared = (*copy)->CompareWith(full);
  ASSERT_TRUE(compared.ok()) << compared.status();
  EXPECT_FALSE(compared->has_value());
}

// ---- A live server ----------------------------------------------------------------------

TEST(AuditLive, AuditorStreamingWhileOfficersWriteVerifiesAgainstTheFinalCheckpoint) {
  TempDir dir;
  testing::ServerProcess server;
  ASSERT_TRUE(server.Start(dir.Sub("data"), {"--business-date", "2020-06-30"})) << server.startup();
  auto stub = server.Stub();
  auto call = [&](const char* who) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", "Bearer " + server.Token(who));
    return context;
  };
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 0; writing.load() || i < 50; ++i) {
      v1::RecordFundContributionRequest request;
      request.set_request_id("live-" + std::to_string(i));
      request.set_amount(std::to_string(100 + i));
      request.set_source("吉安市总工会");
      v1::EntryResponse response;
      auto context = call("cashier");
      ASSERT_TRUE(stub->RecordFundContribution(context.get(), request, &response).ok());
      if (i > 400) break;
    }
  });
  // The auditor follows the journal from the start while it grows.
  std::vector<v1::Entry> streamed;
  v1::StreamEntriesRequest follow;
  follow.set_follow(true);
  auto stream_context = call("auditor");
  auto reader = stub->StreamEntries(stream_context.get(), follow);
  v1::Entry entry;
  while (streamed.size() < 20 && reader->Read(&entry)) streamed.push_back(entry);
  writing = false;
  writer.join();
  v1::SignedCheckpoint checkpoint;
  auto checkpoint_context = call("auditor");
  ASSERT_TRUE(
      stub->GetCheckpoint(checkpoint_context.get(), v1::GetCheckpointRequest(), &checkpoint).ok());
  while (streamed.size() < checkpoint.tree_size() && reader->Read(&entry))
    streamed.push_back(entry);
  stream_context->TryCancel();
  reader->Finish().IgnoreError();
  ASSERT_EQ(streamed.size(), checkpoint.tree_size());
  ASSERT_GE(streamed.size(), 50u);

  // The key comes from the server's own command, not from the server's answers.
  const testing::ServerExit printed =
      testing::RunServerToExit(dir.Sub("data"), {"--print-public-key"});
  ASSERT_EQ(printed.code, 0) << printed.err;
  std::string key = printed.out.substr(0, printed.out.find('\n'));
  absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(checkpoint.note(), key);
  ASSERT_TRUE(verified.ok()) << verified.status();
  Replayer replay;
  for (const v1::Entry& e : streamed) ASSERT_TRUE(replay.AddParsed(e).ok()) << e.sequence();
  EXPECT_EQ(replay.root(), verified->root);

  // A borrower joins: an entry with personal data, given as stored to the auditor.
  v1::RegisterBorrowerRequest borrower;
  borrower.set_request_id("live-borrower");
  const std::string first17 = "36080219850612101";
  borrower.set_national_id(first17 + NationalIdCheckCharacter(first17));
  borrower.mutable_details()->set_name("刘秀英");
  borrower.mutable_details()->set_phone("13907961234");
  borrower.mutable_details()->set_union_member_number("JA-0001");
  borrower.mutable_details()->set_category(v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
  borrower.mutable_details()->set_county("吉州区");
  borrower.mutable_details()->set_enterprise_name("秀英农家乐");
  borrower.mutable_details()->set_sector("乡村旅游");
  v1::BorrowerResponse registered;
  auto register_context = call("officer");
  grpc::Status joined = stub->RegisterBorrower(register_context.get(), borrower, &registered);
  ASSERT_TRUE(joined.ok()) << joined.error_message();

  // And the tool says the same.
  RunResult tool = Audit({"verify", "--server", server.address(), "--token-file",
                          dir.Sub("data") + "/dev-tokens.toml", "--public-key", key});
  EXPECT_EQ(tool.code, 0) << tool.err;
  EXPECT_NE(tool.out.find("every account balance the server reports equals the replay"),
            std::string::npos)
      << tool.out;
  RunResult wrong_role =
      Audit({"verify", "--server", server.address(), "--token-file",
             dir.Sub("data") + "/dev-tokens.toml", "--as", "portal", "--public-key", key});
  EXPECT_EQ(wrong_role.code, 4) << wrong_role.err;
  // The cashier may read the journal, but with personal data masked: not a verification.
  RunResult masked =
      Audit({"verify", "--server", server.address(), "--token-file",
             dir.Sub("data") + "/dev-tokens.toml", "--as", "cashier", "--public-key", key});
  EXPECT_EQ(masked.code, 4) << masked.err;
  EXPECT_NE(masked.err.find("personal data masked"), std::string::npos) << masked.err;
  EXPECT_NE(masked.err.find("auditor's token"), std::string::npos) << masked.err;

  // An update of the borrower's details holds a phone number too: a proof of it fetched
  // with the cashier's token is refused the same way, not reported as tampering.
  v1::UpdateBorrowerRequest update;
  update.set_request_id("live-update");
  update.set_borrower_id(registered.borrower().borrower_id());
  *update.mutable_details() = borrower.details();
  update.mutable_details()->set_phone("13607960000");
  update.set_expected_version(registered.borrower().version());
  v1::BorrowerResponse updated;
  auto update_context = call("officer");
  grpc::Status changed = stub->UpdateBorrower(update_context.get(), update, &updated);
  ASSERT_TRUE(changed.ok()) << changed.error_message();
  v1::SignedCheckpoint latest;
  auto latest_context = call("auditor");
  ASSERT_TRUE(stub->GetCheckpoint(latest_context.get(), v1::GetCheckpointRequest(), &latest).ok());
  const std::string note = dir.Sub("latest-checkpoint.txt");
  std::ofstream(note) << latest.note();
  const std::string sequence = std::to_string(updated.entry().sequence());
  auto prove_as = [&](const char* role) {
    return Audit({"prove", "--server", server.address(), "--token-file",
                  dir.Sub("data") + "/dev-tokens.toml", "--as", role, "--sequence", sequence,
                  "--checkpoint", note, "--public-key", key});
  };
  RunResult proved = prove_as("auditor");
  EXPECT_EQ(proved.code, 0) << proved.err;
  RunResult masked_proof = prove_as("cashier");
  EXPECT_EQ(masked_proof.code, 4) << masked_proof.err;
  EXPECT_NE(masked_proof.err.find("entry " + sequence + " has its personal data masked"),
            std::string::npos)
      << masked_proof.err;

  // The cashier may still export (its postings hold no personal data), but an export so
  // taken cannot be verified, and says why.
  const std::string exported = dir.Sub("cashier.jsonl");
  RunResult export_run =
      Audit({"export", "--server", server.address(), "--token-file",
             dir.Sub("data") + "/dev-tokens.toml", "--as", "cashier", "--jsonl", exported});
  EXPECT_EQ(export_run.code, 0) << export_run.err;
  RunResult verify_export = Audit({"verify", "--export", exported});
  EXPECT_EQ(verify_export.code, 2) << verify_export.err;
  EXPECT_NE(verify_export.err.find("export was taken with a role"), std::string::npos)
      << verify_export.err;

  // A malformed key is the auditor's flag, not the server's checkpoint's fault.
  RunResult bad_key =
      Audit({"verify", "--server", server.address(), "--token-file",
             dir.Sub("data") + "/dev-tokens.toml", "--as", "auditor", "--public-key", "xyz"});
  EXPECT_EQ(bad_key.code, 2) << bad_key.out;
  EXPECT_NE(bad_key.err.find("--public-key: verifier key must look like"), std::string::npos)
      << bad_key.err;

  // A checkpoint that cannot be saved is not reported saved.
  RunResult unsaved = Audit({"checkpoint", "--server", server.address(), "--token-file",
                             dir.Sub("data") + "/dev-tokens.toml", "--as", "auditor", "--out",
                             dir.Sub("no-such-dir") + "/cp.txt"});
  EXPECT_EQ(unsaved.code, 2) << unsaved.out;
  EXPECT_NE(unsaved.err.find("cannot write"), std::string::npos) << unsaved.err;
}

}  // namespace
}  // namespace gongdai
