#include "engine/replay.h"

#include <filesystem>

#include "engine/journal_format.h"
#include "engine/programme.h"
#include "engine/sha256.h"
#include "engine/strings.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {
namespace {

std::string Printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kDigits[] = "0123456789abcdef";
      out += "\\x";
      out += kDigits[c >> 4];
      out += kDigits[c & 0xf];
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::optional<std::string>> MemoryState::Get(Space space, std::string_view key) {
  const auto& map = spaces_[static_cast<size_t>(space)];
  auto it = map.find(std::string(key));
  if (it == map.end()) return std::nullopt;
  return it->second;
}

void MemoryState::Put(Space space, std::string_view key, std::string_view value) {
  spaces_[static_cast<size_t>(space)][std::string(key)] = std::string(value);
}

void MemoryState::Delete(Space space, std::string_view key) {
  spaces_[static_cast<size_t>(space)].erase(std::string(key));
}

absl::StatusOr<std::optional<ProjectionMismatch>> CompareDerivedSpaces(
    const Storage& storage, const StorageSnapshot* snapshot, const MemoryState& expected_state) {
  for (Space space : kDerivedSpaces) {
    const std::map<std::string, std::string>& expected = expected_state.space(space);
    auto next = expected.begin();
    std::optional<ProjectionMismatch> mismatch;
    auto report = [&](std::string_view key, std::string stored, std::string want) {
      mismatch = ProjectionMismatch{std::string(SpaceName(space)), Printable(key),
                                    std::move(stored), std::move(want)};
    };
    absl::Status scanned = storage.Scan(
        space, "",
        [&](std::string_view key, std::string_view value) {
          if (next != expected.end() && next->first < key) {
            report(next->first, "<absent>", Printable(next->second));
            return false;
          }
          if (next == expected.end() || next->first != key) {
            report(key, Printable(value), "<absent>");
            return false;
          }
          if (next->second != value) {
            report(key, Printable(value), Printable(next->second));
            return false;
          }
          ++next;
          return true;
        },
        snapshot);
    if (!scanned.ok()) return scanned;
    if (!mismatch.has_value() && next != expected.end())
      report(next->first, "<absent>", Printable(next->second));
    if (mismatch.has_value()) return mismatch;
  }
  return std::nullopt;
}

absl::Status Replayer::Check(const v1::Entry& entry) {
  const uint64_t expected = tree_.size() + 1;
  if (entry.sequence() != expected) {
    return absl::DataLossError(
        entry.sequence() > expected
            ? Cat("entry ", expected, ": missing (the next entry is ", entry.sequence(), ")")
            : Cat("entry ", expected, ": field sequence: expected ", expected, ", found ",
                  entry.sequence()));
  }
  if (entry.previous_hash() != last_hash_) {
    return absl::DataLossError(Cat("entry ", expected, ": field previous_hash: expected ",
                                   ToHex(last_hash_), " (the hash of entry ", expected - 1,
                                   "), found ", ToHex(entry.previous_hash())));
  }
  absl::Status balanced = CheckBalanced(entry);
  if (!balanced.ok()) return balanced;
  absl::Status applied = Apply(entry, state_);
  if (!applied.ok()) {
    return absl::DataLossError(
        Cat("entry ", expected, ": replay through apply failed: ",
            std::string_view(applied.message().data(), applied.message().size())));
  }
  tree_.Append(entry.hash(), [](int, uint64_t, const std::string&) {});
  last_hash_ = entry.hash();
  return absl::OkStatus();
}

absl::Status Replayer::AddStored(std::string_view bytes, uint64_t key_sequence) {
  if (key_sequence != tree_.size() + 1) {
    return absl::DataLossError(
        key_sequence > tree_.size() + 1
            ? Cat("entry ", tree_.size() + 1, ": missing (the next key is ", key_sequence, ")")
            : Cat("entry ", key_sequence, ": stored twice"));
  }
  absl::StatusOr<v1::Entry> entry = OpenEntry(bytes, key_sequence);
  if (!entry.ok()) return entry.status();
  return Check(*entry);
}

absl::Status Replayer::AddParsed(const v1::Entry& entry) {
  const std::string canonical = CanonicalBytes(entry);
  const std::string hash = ThreadSha256().Digest({std::string_view("\x00", 1), canonical});
  if (hash != entry.hash()) {
    return absl::DataLossError(Cat("entry ", entry.sequence(),
                                   ": field hash: the entry's bytes hash to ", ToHex(hash),
                                   ", the export says ", ToHex(entry.hash())));
  }
  return Check(entry);
}

absl::Status Replayer::ApplyOnly(const v1::Entry& entry) {
  absl::Status applied = ApplyWithoutTree(entry, state_);
  if (!applied.ok()) {
    return absl::DataLossError(
        Cat("entry ", entry.sequence(), ": replay through apply failed: ",
            std::string_view(applied.message().data(), applied.message().size())));
  }
  last_hash_ = entry.hash();
  return absl::OkStatus();
}

std::optional<v1::LoanState> Replayer::Loan(std::string_view loan_id) {
  absl::StatusOr<std::optional<v1::LoanState>> loan = ReadLoan(state_, loan_id);
  if (!loan.ok()) return std::nullopt;
  return *loan;
}

std::optional<v1::BorrowerState> Replayer::Borrower(std::string_view borrower_id) {
  absl::StatusOr<std::optional<v1::BorrowerState>> borrower = ReadBorrower(state_, borrower_id);
  if (!borrower.ok()) return std::nullopt;
  return *borrower;
}

Money Replayer::Balance(std::string_view account) {
  absl::StatusOr<std::optional<std::string>> raw =
      state_.Get(Space::kProjections, AccountKey(account));
  v1::AccountState state;
  if (!raw.ok() || !raw->has_value() || !state.ParseFromString(**raw)) return Money();
  return Money::FromFen(state.balance_fen());
}

std::vector<v1::LoanState> Replayer::Loans() const {
  std::vector<v1::LoanState> loans;
  const auto& projections = state_.space(Space::kProjections);
  for (auto it = projections.lower_bound(std::string(kLoanPrefix));
       it != projections.end() && it->first.starts_with(kLoanPrefix); ++it) {
    v1::LoanState loan;
    if (loan.ParseFromString(it->second)) loans.push_back(std::move(loan));
  }
  return loans;
}

std::vector<std::pair<std::string, int64_t>> Replayer::Balances() const {
  std::vector<std::pair<std::string, int64_t>> balances;
  const auto& projections = state_.space(Space::kProjections);
  for (auto it = projections.lower_bound(std::string(kAccountPrefix));
       it != projections.end() && it->first.starts_with(kAccountPrefix); ++it) {
    v1::AccountState state;
    if (state.ParseFromString(it->second))
      balances.emplace_back(it->first.substr(kAccountPrefix.size()), state.balance_fen());
  }
  return balances;
}

DatabaseCopy::DatabaseCopy(std::unique_ptr<Storage> storage)
    : storage_(std::move(storage)), snapshot_(storage_->Snapshot()) {}

absl::StatusOr<std::unique_ptr<DatabaseCopy>> DatabaseCopy::Open(const std::string& path) {
  std::string db = path;
  if (std::filesystem::exists(std::filesystem::path(path) / "ledger" / "CURRENT")) {
    db = (std::filesystem::path(path) / "ledger").string();
  }
  if (!std::filesystem::exists(std::filesystem::path(db) / "CURRENT")) {
    return absl::NotFoundError(Cat(path, " holds no ledger database"));
  }
  LedgerOptions options;
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<Storage>> storage =
      Storage::Open(db, options, OpenMode::kReadOnly);
  if (!storage.ok()) return storage.status();
  return std::unique_ptr<DatabaseCopy>(new DatabaseCopy(*std::move(storage)));
}

absl::Status DatabaseCopy::ForEachEntry(
    const std::function<absl::Status(std::string_view bytes, uint64_t key_sequence)>& visit) const {
  absl::Status failure;
  absl::Status scanned = storage_->Scan(
      Space::kJournal, "",
      [&](std::string_view key, std::string_view value) {
        failure = visit(value, DecodeSequenceKey(key));
        return failure.ok();
      },
      snapshot_.get());
  if (!scanned.ok()) return scanned;
  return failure;
}

absl::StatusOr<uint64_t> DatabaseCopy::HeadSequence() const {
  absl::StatusOr<std::optional<std::string>> head =
      storage_->Get(Space::kMeta, kMetaHeadKey, snapshot_.get());
  if (!head.ok()) return head.status();
  if (!head->has_value()) return 0;
  v1::JournalHead parsed;
  if (!parsed.ParseFromString(**head))
    return absl::DataLossError("the stored chain head does not parse");
  return parsed.sequence();
}

absl::StatusOr<std::optional<ProjectionMismatch>> DatabaseCopy::CompareWith(
    const Replayer& replay) const {
  return CompareDerivedSpaces(*storage_, snapshot_.get(), replay.state());
}

std::string LoanIdOfEvent(const v1::Event& event) { return ProgrammeLoanId(event); }

std::string EventKindName(const v1::Event& event) {
  const google::protobuf::FieldDescriptor* field =
      v1::Event::descriptor()->FindFieldByNumber(event.kind_case());
  return field == nullptr ? "none" : field->name();
}

}  // namespace gongdai
