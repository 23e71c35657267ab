#include "engine/replay.h"

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "engine/journal_format.h"
#include "engine/pipeline.h"
#include "engine/programme.h"
#include "engine/sha256.h"
#include "engine/strings.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {
namespace {

// A hash table's key, held in the table's own slot when it is short (account paths, loan
// ids, most keys), so that a lookup reads the slot's cache line and not a second one.
class SlotKey {
 public:
  explicit SlotKey(std::string_view key) : size_(static_cast<uint32_t>(key.size())) {
    if (size_ <= kInline) {
      std::memcpy(inline_, key.data(), size_);
    } else {
      heap_ = new char[size_];
      std::memcpy(heap_, key.data(), size_);
    }
  }
  SlotKey(const SlotKey& other) : SlotKey(other.view()) {}
  SlotKey(SlotKey&& other) noexcept : size_(other.size_) {
    std::memcpy(inline_, other.inline_, sizeof(inline_));
    other.size_ = 0;
  }
  SlotKey& operator=(const SlotKey&) = delete;
  SlotKey& operator=(SlotKey&&) = delete;
  ~SlotKey() {
    if (size_ > kInline) delete[] heap_;
  }
  std::string_view view() const { return {size_ <= kInline ? inline_ : heap_, size_}; }

 private:
  static constexpr uint32_t kInline = 36;
  uint32_t size_;
  union {
    char inline_[kInline];
    char* heap_;
  };
};

struct SlotKeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const {
    return absl::Hash<absl::string_view>()(AbslView(key));
  }
  size_t operator()(const SlotKey& key) const { return (*this)(key.view()); }
};

struct SlotKeyEq {
  using is_transparent = void;
  static std::string_view View(std::string_view key) { return key; }
  static std::string_view View(const SlotKey& key) { return key.view(); }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

}  // namespace

struct MemoryState::Table {
  // A put or a delete: this header, then its key and its value, in one of `blocks`.
  struct Change {
    uint32_t key_size;
    uint32_t value_size;
    bool erase;
    const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
    std::string_view key() const { return {bytes(), key_size}; }
    std::string_view value() const { return {bytes() + key_size, value_size}; }
    size_t footprint() const { return Footprint(key_size + value_size); }
    static size_t Footprint(size_t bytes) {
      return (sizeof(Change) + bytes + alignof(Change) - 1) & ~(alignof(Change) - 1);
    }
  };
  struct Block {
    std::unique_ptr<char[]> bytes;
    size_t used = 0;
  };
  // Until the table is first read: every put and delete, in order, end to end in blocks
  // that never move, so that a change costs no allocation of its own (most keys and
  // values are a few dozen bytes). The blocks grow with the table from 4 KiB to 1 MiB.
  std::vector<Block> blocks;
  size_t block_size = 0;
  size_t changes = 0;
  // From then on: the keys and their values.
  bool indexed = false;
  using Map = absl::flat_hash_map<SlotKey, std::string, SlotKeyHash, SlotKeyEq>;
  Map map;
  // What Find returned last, until the map next changes shape: a Put of the same key (an
  // account read, changed and written back) then needs no second lookup.
  Map::value_type* found = nullptr;

  const std::string* Find(std::string_view key) {
    Index();
    auto it = map.find(key);
    found = it == map.end() ? nullptr : &*it;
    return found == nullptr ? nullptr : &found->second;
  }

  void Put(std::string_view key, std::string_view value) {
    if (!indexed) return Log(key, value, /*erase=*/false);
    if (found == nullptr || found->first.view() != key) {
      auto [it, inserted] = map.try_emplace(key);
      found = inserted ? nullptr : &*it;  // an insert may have moved every slot
      it->second.assign(value.data(), value.size());
      return;
    }
    found->second.assign(value.data(), value.size());
  }

  void Delete(std::string_view key) {
    if (!indexed) return Log(key, "", /*erase=*/true);
    found = nullptr;
    map.erase(key);
  }

  void Log(std::string_view key, std::string_view value, bool erase) {
    const size_t footprint = Change::Footprint(key.size() + value.size());
    if (blocks.empty() || blocks.back().used + footprint > block_size) {
      const size_t grown = blocks.empty() ? 4096 : std::min<size_t>(1 << 20, 2 * block_size);
      block_size = std::max(grown, footprint);
      blocks.push_back(Block{std::make_unique_for_overwrite<char[]>(block_size), 0});
    }
    Block& block = blocks.back();
    char* at = block.bytes.get() + block.used;
    Change* change = new (at)
        Change{static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size()), erase};
    std::memcpy(at + sizeof(Change), key.data(), key.size());
    std::memcpy(at + sizeof(Change) + key.size(), value.data(), value.size());
    block.used += change->footprint();
    ++changes;
  }

  // Calls `visit(change)` for every logged change, in order.
  template <typename Visit>
  void ForEachChange(const Visit& visit) const {
    for (const Block& block : blocks) {
      for (size_t at = 0; at < block.used;) {
        const Change* change =
            std::launder(reinterpret_cast<const Change*>(block.bytes.get() + at));
        visit(*change);
        at += change->footprint();
      }
    }
  }

  void Index() {
    if (indexed) return;
    map.reserve(changes);
    ForEachChange([&](const Change& change) {
      if (change.erase) {
        map.erase(change.key());
      } else {
        auto [it, inserted] = map.try_emplace(change.key());
        it->second.assign(change.value());
      }
    });
    std::vector<Block>().swap(blocks);
    changes = 0;
    indexed = true;
  }

  // Appends this table's keys with their values to `out`, in key order.
  void AppendSorted(std::string_view prefix, std::vector<KeyValue>& out) const {
    const size_t first = out.size();
    auto by_key = [](const KeyValue& a, const KeyValue& b) { return a.first < b.first; };
    if (indexed) {
      for (const auto& [key, value] : map) {
        if (key.view().starts_with(prefix)) out.emplace_back(key.view(), value);
      }
      std::sort(out.begin() + static_cast<ptrdiff_t>(first), out.end(), by_key);
      return;
    }
    // A log whose keys only grow (a date index, the tree's nodes of one level) is its own
    // sorted state.
    bool increasing = true;
    const Change* previous = nullptr;
    ForEachChange([&](const Change& change) {
      increasing =
          increasing && !change.erase && (previous == nullptr || previous->key() < change.key());
      previous = &change;
    });
    if (increasing) {
      ForEachChange([&](const Change& change) {
        if (change.key().starts_with(prefix)) out.emplace_back(change.key(), change.value());
      });
      return;
    }
    // Otherwise the last change of each key decides: sort the changes by key and then by
    // their order. Each carries its key's first eight bytes as a number, so that most
    // comparisons need not reach the key itself.
    struct Item {
      uint64_t head;
      uint64_t order;
      const Change* change;
    };
    std::vector<Item> items;
    items.reserve(changes);
    uint64_t order = 0;
    ForEachChange([&](const Change& change) {
      ++order;
      const std::string_view key = change.key();
      if (!key.starts_with(prefix)) return;
      uint64_t head = 0;
      for (size_t i = 0; i < 8; ++i) {
        head = (head << 8) | (i < key.size() ? static_cast<unsigned char>(key[i]) : 0);
      }
      items.push_back(Item{head, order, &change});
    });
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.head != b.head) return a.head < b.head;
      const int keys = a.change->key().compare(b.change->key());
      return keys != 0 ? keys < 0 : a.order < b.order;
    });
    for (size_t i = 0; i < items.size(); ++i) {
      const Change& change = *items[i].change;
      if (i + 1 < items.size() && items[i + 1].change->key() == change.key()) continue;
      if (!change.erase) out.emplace_back(change.key(), change.value());
    }
  }
};

// The accounts that Post changed, decoded: a posting changes its account in place, with no
// parse and no encoding. A key is either here or in the account table of `tables_`.
struct MemoryState::Accounts {
  absl::flat_hash_map<SlotKey, v1::AccountState, SlotKeyHash, SlotKeyEq> map;
  std::string posting_key;  // "a/" and the account of the posting at hand
  // What Find returned for one of them.
  std::string found;
  // Their encodings in key order, as Sorted last made them; remade after a change.
  mutable std::vector<std::pair<std::string_view, std::string>> sorted;
  mutable bool sorted_current = false;

  bool Erase(std::string_view key) {
    if (map.erase(key) == 0) return false;
    sorted_current = false;
    return true;
  }
};

MemoryState::MemoryState(ReplayKeeps keeps)
    : keeps_(keeps), accounts_(std::make_unique<Accounts>()) {}
MemoryState::~MemoryState() = default;

absl::Status MemoryState::Post(const v1::Posting& posting, uint64_t sequence) {
  Accounts& accounts = *accounts_;
  accounts.posting_key.assign(kAccountPrefix);
  accounts.posting_key.append(posting.account());
  const std::string_view key = accounts.posting_key;
  auto it = accounts.map.find(key);
  bool created = false;  // an account that did not exist before this posting
  if (it == accounts.map.end()) {
    // An account put as bytes (not through Post) moves here; otherwise it is new.
    v1::AccountState account;
    if (const std::string* stored = Find(Space::kProjections, key)) {
      if (!account.ParseFromString(*stored)) {
        return absl::DataLossError(
            Cat("projection of account ", posting.account(), " does not parse"));
      }
      TableOf(Space::kProjections, key, /*create=*/true)->Delete(key);
    } else {
      created = true;
    }
    it = accounts.map.try_emplace(key, std::move(account)).first;
    accounts.sorted_current = false;
  }
  // A refused posting leaves the account as it was, and a new account unmade.
  absl::Status applied = ApplyPosting(posting, sequence, it->second);
  if (!applied.ok()) {
    if (created) accounts.map.erase(it);
    return applied;
  }
  accounts.sorted_current = false;
  return absl::OkStatus();
}

bool MemoryState::Keeps(Space space, std::string_view key) const {
  return keeps_ == ReplayKeeps::kEverything ||
         (space == Space::kProjections && ApplyReadsBack(key));
}

MemoryState::Table* MemoryState::TableOf(Space space, std::string_view key, bool create) {
  const size_t kind =
      key.size() >= 2 && key[1] == '/' ? static_cast<unsigned char>(key[0]) : kTablesPerSpace - 1;
  std::unique_ptr<Table>& table = tables_[static_cast<size_t>(space)][kind];
  if (table == nullptr && create) {
    table = std::make_unique<Table>();
    // Loan summaries are rewritten by every entry on their loan, yet apply never reads one
    // back (it derives a loan's summary from the loan): logged, every version would pile up
    // until the end, about as many bytes as the loans' entries. As a map from the start,
    // the table holds one per loan.
    if (space == Space::kProjections && kind == static_cast<unsigned char>(kLoanSummaryPrefix[0]))
      table->indexed = true;
  }
  return table.get();
}

absl::StatusOr<std::optional<std::string>> MemoryState::Get(Space space, std::string_view key) {
  if (!Keeps(space, key)) {
    return absl::FailedPreconditionError(Cat("this replay keeps only what apply reads, not ",
                                             SpaceName(space), " ", Printable(key)));
  }
  const std::string* value = Find(space, key);
  if (value == nullptr) return std::nullopt;
  return *value;
}

const std::string* MemoryState::Find(Space space, std::string_view key) {
  if (!Keeps(space, key)) return nullptr;
  if (space == Space::kProjections && key.starts_with(kAccountPrefix)) {
    auto it = accounts_->map.find(key);
    if (it != accounts_->map.end()) {
      accounts_->found = it->second.SerializeAsString();
      return &accounts_->found;
    }
  }
  Table* table = TableOf(space, key, /*create=*/false);
  return table == nullptr ? nullptr : table->Find(key);
}

void MemoryState::Put(Space space, std::string_view key, std::string_view value) {
  if (!Keeps(space, key)) return;
  if (space == Space::kProjections && key.starts_with(kAccountPrefix)) {
    accounts_->Erase(key);  // the bytes put now decide
  }
  TableOf(space, key, /*create=*/true)->Put(key, value);
}

void MemoryState::Delete(Space space, std::string_view key) {
  if (!Keeps(space, key)) return;
  if (space == Space::kProjections && key.starts_with(kAccountPrefix) && accounts_->Erase(key)) {
    return;
  }
  TableOf(space, key, /*create=*/true)->Delete(key);
}

std::vector<MemoryState::KeyValue> MemoryState::Sorted(Space space, std::string_view prefix) const {
  // Each table's keys in order, and the decoded accounts'; then the runs merged (keys of
  // different runs interleave only through the table of keys without a "x/" form, and
  // the accounts with the table of "a/" keys put as bytes).
  std::vector<KeyValue> sorted;
  std::vector<size_t> runs = {0};
  for (const std::unique_ptr<Table>& table : tables_[static_cast<size_t>(space)]) {
    if (table == nullptr) continue;
    table->AppendSorted(prefix, sorted);
    if (sorted.size() != runs.back()) runs.push_back(sorted.size());
  }
  const bool accounts_match =
      kAccountPrefix.starts_with(prefix) || prefix.starts_with(kAccountPrefix);
  if (space == Space::kProjections && accounts_match && !accounts_->map.empty()) {
    Accounts& accounts = *accounts_;
    if (!accounts.sorted_current) {
      accounts.sorted.clear();
      accounts.sorted.reserve(accounts.map.size());
      for (const auto& [key, account] : accounts.map)
        accounts.sorted.emplace_back(key.view(), account.SerializeAsString());
      std::sort(accounts.sorted.begin(), accounts.sorted.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      accounts.sorted_current = true;
    }
    for (const auto& [key, value] : accounts.sorted) {
      if (key.starts_with(prefix)) sorted.emplace_back(key, value);
    }
    if (sorted.size() != runs.back()) runs.push_back(sorted.size());
  }
  auto by_key = [](const KeyValue& a, const KeyValue& b) { return a.first < b.first; };
  for (size_t run = 2; run < runs.size(); ++run) {
    const size_t middle = runs[run - 1];
    if (!by_key(sorted[middle], sorted[middle - 1])) continue;  // already in order
    std::inplace_merge(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(runs[run - 1]),
                       sorted.begin() + static_cast<ptrdiff_t>(runs[run]), by_key);
  }
  return sorted;
}

absl::StatusOr<std::optional<ProjectionMismatch>> CompareDerivedSpaces(
    const Storage& storage, const StorageSnapshot* snapshot, const MemoryState& expected_state) {
  if (expected_state.keeps() != ReplayKeeps::kEverything) {
    return absl::FailedPreconditionError(
        "a replay that keeps only what apply reads cannot be compared with a database");
  }
  for (Space space : kDerivedSpaces) {
    const std::vector<MemoryState::KeyValue> expected = expected_state.Sorted(space);
    auto next = expected.begin();
    std::optional<ProjectionMismatch> mismatch;
    auto report = [&](std::string_view key, std::optional<std::string_view> stored,
                      std::optional<std::string_view> want) {
      mismatch =
          ProjectionMismatch{std::string(SpaceName(space)), Printable(key),
                             std::optional<std::string>(stored), std::optional<std::string>(want)};
    };
    absl::Status scanned = storage.Scan(
        space, "",
        [&](std::string_view key, std::string_view value) {
          if (next != expected.end() && next->first < key) {
            report(next->first, std::nullopt, next->second);
            return false;
          }
          if (next == expected.end() || next->first != key) {
            report(key, value, std::nullopt);
            return false;
          }
          if (next->second != value) {
            report(key, value, next->second);
            return false;
          }
          ++next;
          return true;
        },
        snapshot, Storage::ScanLength::kWhole);
    if (!scanned.ok()) return scanned;
    if (!mismatch.has_value() && next != expected.end())
      report(next->first, std::nullopt, next->second);
    if (mismatch.has_value()) return mismatch;
  }
  return std::nullopt;
}

absl::Status ForEachOpenedEntry(
    const Storage& storage, const StorageSnapshot* snapshot,
    const std::function<absl::Status(const OpenedEntry& opened)>& visit) {
  return RunPipelined<OpenedEntry>(
      [&](PipelineFeed<OpenedEntry>& feed) {
        pthread_setname_np(pthread_self(), "journal-reader");  // as profilers and top show it
        return storage.Scan(
            Space::kJournal, "",
            [&](std::string_view key, std::string_view value) {
              OpenedEntry& opened = feed.Slot();
              opened.key_sequence = DecodeSequenceKey(key);
              opened.status = ParseStoredEntry(value, opened.key_sequence, opened.entry);
              opened.stored.assign(value);
              return feed.Filled();
            },
            snapshot, Storage::ScanLength::kWhole);
      },
      visit,
      [](OpenedEntry& opened) {
        if (opened.status.ok())
          opened.status = CheckStoredEntry(opened.stored, opened.key_sequence, opened.entry);
      });
}

absl::Status Replayer::Check(const v1::Entry& entry, std::string_view stored) {
  const uint64_t expected = size_ + 1;
  if (entry.sequence() != expected) {
    return absl::DataLossError(
        entry.sequence() > expected
            // An export read line by line cannot tell a gap from entries out of order.
            ? Cat("entry ", expected, ": missing or out of order (the next entry is ",
                  entry.sequence(), ")")
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
  absl::Status applied = Apply(entry, stored, state_, edge_);
  if (!applied.ok()) {
    return absl::DataLossError(
        Cat("entry ", expected, ": replay through apply failed: ",
            std::string_view(applied.message().data(), applied.message().size())));
  }
  ++size_;
  last_hash_ = entry.hash();
  return absl::OkStatus();
}

absl::Status Replayer::AddStored(std::string_view bytes, uint64_t key_sequence) {
  OpenedEntry opened;
  opened.key_sequence = key_sequence;
  // An out-of-order key is reported by AddOpened before the entry's bytes would matter.
  if (key_sequence == size_ + 1) opened.status = OpenEntryInto(bytes, key_sequence, opened.entry);
  return Add(opened, bytes);
}

absl::Status Replayer::AddOpened(const OpenedEntry& opened) { return Add(opened, opened.stored); }

absl::Status Replayer::Add(const OpenedEntry& opened, std::string_view stored) {
  const uint64_t key_sequence = opened.key_sequence;
  if (key_sequence != size_ + 1) {
    return absl::DataLossError(
        key_sequence > size_ + 1
            ? Cat("entry ", size_ + 1, ": missing (the next key is ", key_sequence, ")")
            : Cat("entry ", key_sequence, ": stored twice"));
  }
  if (!opened.status.ok()) return opened.status;
  return Check(opened.entry, stored);
}

absl::Status Replayer::AddParsed(const v1::Entry& entry) {
  std::string canonical = CanonicalBytes(entry);
  const std::string hash = ThreadSha256().Digest({std::string_view("\x00", 1), canonical});
  if (hash != entry.hash()) {
    return absl::DataLossError(Cat("entry ", entry.sequence(),
                                   ": field hash: the entry's bytes hash to ", ToHex(hash),
                                   ", the export says ", ToHex(entry.hash())));
  }
  return Check(entry, StoredBytes(std::move(canonical), hash));
}

absl::Status Replayer::ApplyOnly(const v1::Entry& entry) {
  // The entry's stored bytes are only the loan-entries index's copy: a state that drops
  // the indexes is spared serializing every entry for it.
  const std::string stored = state_.Keeps(Space::kIndexes, kLoanEntriesPrefix)
                                 ? StoredBytes(CanonicalBytes(entry), entry.hash())
                                 : std::string();
  absl::Status applied = ApplyWithoutTree(entry, stored, state_);
  if (!applied.ok()) {
    return absl::DataLossError(
        Cat("entry ", entry.sequence(), ": replay through apply failed: ",
            std::string_view(applied.message().data(), applied.message().size())));
  }
  last_hash_ = entry.hash();
  return absl::OkStatus();
}

const MemoryState& Replayer::state() {
  if (edge_.size() != edge_put_size_) {
    PutTreeEdge(edge_, state_);
    edge_put_size_ = edge_.size();
  }
  return state_;
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
  for (const auto& [key, value] : state_.Sorted(Space::kProjections, kLoanPrefix)) {
    v1::LoanState loan;
    if (loan.ParseFromArray(value.data(), static_cast<int>(value.size())))
      loans.push_back(std::move(loan));
  }
  return loans;
}

std::vector<std::pair<std::string, int64_t>> Replayer::Balances() const {
  std::vector<std::pair<std::string, int64_t>> balances;
  for (const auto& [key, value] : state_.Sorted(Space::kProjections, kAccountPrefix)) {
    v1::AccountState state;
    if (state.ParseFromArray(value.data(), static_cast<int>(value.size())))
      balances.emplace_back(key.substr(kAccountPrefix.size()), state.balance_fen());
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
  absl::StatusOr<std::optional<std::string>> format = (*storage)->Get(Space::kMeta, kMetaFormatKey);
  if (!format.ok()) return format.status();
  if (!format->has_value()) {
    // As the ledger opening it would: entries without the marker are damage.
    absl::StatusOr<std::optional<std::pair<std::string, std::string>>> last =
        (*storage)->Last(Space::kJournal);
    if (!last.ok()) return last.status();
    if (last->has_value()) {
      return absl::DataLossError(
          Cat(path, ": the journal has entries but no format marker (meta key format)"));
    }
  }
  if (*format != std::optional<std::string>(kFormatVersion)) {
    return absl::FailedPreconditionError(
        format->has_value()
            ? Cat(path, " has format \"", Printable(**format), "\"; this version reads ",
                  kFormatVersion)
            : Cat(path, " has no format marker (meta key format): not a ledger database"));
  }
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
      snapshot_.get(), Storage::ScanLength::kWhole);
  if (!scanned.ok()) return scanned;
  return failure;
}

absl::Status DatabaseCopy::ForEachOpenedEntry(
    const std::function<absl::Status(const OpenedEntry& opened)>& visit) const {
  return gongdai::ForEachOpenedEntry(*storage_, snapshot_.get(), visit);
}

absl::StatusOr<v1::JournalHead> DatabaseCopy::Head() const {
  absl::StatusOr<std::optional<std::string>> head =
      storage_->Get(Space::kMeta, kMetaHeadKey, snapshot_.get());
  if (!head.ok()) return head.status();
  return ParseStoredHead(*head);
}

absl::StatusOr<std::optional<std::string>> DatabaseCopy::ProjectionsVersion() const {
  return storage_->Get(Space::kMeta, kMetaProjectionsKey, snapshot_.get());
}

absl::StatusOr<std::optional<ProjectionMismatch>> DatabaseCopy::CompareWith(
    Replayer& replay) const {
  return CompareDerivedSpaces(*storage_, snapshot_.get(), replay.state());
}

std::string LoanIdOfEvent(const v1::Event& event) { return ProgrammeLoanId(event); }

std::string EventKindName(const v1::Event& event) {
  const google::protobuf::FieldDescriptor* field =
      v1::Event::descriptor()->FindFieldByNumber(event.kind_case());
  return field == nullptr ? "none" : field->name();
}

}  // namespace gongdai
