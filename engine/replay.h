// What an auditor's replay does, with nothing but the entries: check each one (its
// canonical bytes and hash, its sequence, its link to the one before, its balance) and
// apply it through the engine's own `apply` into state held in memory, keeping the
// Merkle tree's roots along the way. Also: a database directory opened read-only, to
// compare what it stores with such a replay.
#ifndef GONGDAI_ENGINE_REPLAY_H_
#define GONGDAI_ENGINE_REPLAY_H_

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/ledger.h"
#include "engine/merkle.h"
#include "engine/money.h"
#include "engine/rules.h"
#include "engine/storage.h"

namespace gongdai {

// What a replay's state keeps. Apply reads back only projections (accounts, loans,
// borrowers, products, the report's figures). The rest of what it writes (the indexes,
// the request ids, the Merkle tree's nodes) is read only by a comparison with a database
// that stores them.
enum class ReplayKeeps {
  // Everything apply writes: to compare with a database (a rebuild, gongdai-audit --db).
  // That includes the loan-entries index's copy of every loan entry, so it holds about as
  // many bytes again as the journal's loan entries.
  kEverything,
  // Only what apply reads back: to verify an export, a server's journal or a copy's
  // journal alone, in less memory and time. The indexes, the request ids, the Merkle
  // tree's nodes and the loans' summaries are left out. A Get of anything else is refused
  // (FAILED_PRECONDITION); Find and Sorted find nothing there.
  kWhatApplyReads,
};

// Derived state held in memory: what a rebuild or a replay produces.
//
// A replay puts millions of keys that apply never reads back (request ids, index keys,
// the Merkle tree's nodes), and reads only a few kinds (accounts, loans, products,
// borrowers, the report's figures). So each space is split into tables by key kind (the byte before
// a '/' in the second position: "a/...", "m/...", or one table for keys of no such form), and a
// table is only a log of its puts and deletes, appended in order, until something first reads from
// it; then it becomes a hash table. Key order is produced when a space is walked. Accounts changed
// through Post are kept decoded, and encoded only when they are read.
class MemoryState final : public StateWriter {
 public:
  using KeyValue = std::pair<std::string_view, std::string_view>;

  explicit MemoryState(ReplayKeeps keeps = ReplayKeeps::kEverything);
  ~MemoryState() override;
  MemoryState(const MemoryState&) = delete;
  MemoryState& operator=(const MemoryState&) = delete;

  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override;
  void Put(Space space, std::string_view key, std::string_view value) override;
  void Delete(Space space, std::string_view key) override;
  absl::Status Post(const v1::Posting& posting, uint64_t sequence) override;

  // The value under `key`, or nullptr; valid until the space next changes (for an
  // account's, until the next Find or Get).
  const std::string* Find(Space space, std::string_view key);
  // The keys of `space` that start with `prefix` ("" for all), with their values, in key
  // order; the views are valid until the space next changes.
  std::vector<KeyValue> Sorted(Space space, std::string_view prefix = "") const;

  ReplayKeeps keeps() const { return keeps_; }
  // Whether this state keeps what is put under `key` in `space`.
  bool Keeps(Space space, std::string_view key) const;

 private:
  struct Table;
  struct Accounts;
  ReplayKeeps keeps_;
  std::unique_ptr<Accounts> accounts_;
  static constexpr size_t kTablesPerSpace = 257;  // one per leading byte, and one more
  Table* TableOf(Space space, std::string_view key, bool create);
  std::array<std::array<std::unique_ptr<Table>, kTablesPerSpace>, kSpaceCount> tables_;
};

// The spaces a rebuild reproduces: projections, indexes, request ids.
inline constexpr Space kDerivedSpaces[] = {Space::kProjections, Space::kIndexes,
                                           Space::kRequestIds};

// The first difference between `storage` (at `snapshot`) and `expected`, in key order of
// the derived spaces; nullopt when they are byte-identical. FAILED_PRECONDITION when
// `expected` does not keep everything.
[[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareDerivedSpaces(
    const Storage& storage, const StorageSnapshot* snapshot, const MemoryState& expected);

// An entry opened from the bytes stored under journal key `key_sequence` (OpenEntry), or
// why it could not be.
struct OpenedEntry {
  uint64_t key_sequence = 0;
  absl::Status status;  // OK when `entry` is the opened entry
  v1::Entry entry;
  // The stored bytes: the reader opens them, and apply copies them into the loan-entries
  // index, so AddOpened needs them filled.
  std::string stored;
};

// Calls `visit` for every journal entry of `storage` (at `snapshot`) in key order, with
// the entry opened from its stored bytes (parsed, canonical form and hash checked) or the
// reason it could not be. Reading and parsing run on a second thread, a few thousand
// entries ahead of `visit`. The checks of the entries' bytes and hashes are shared
// (RunPipelined's `finish`): whichever thread has less work of its own does more of them.
[[nodiscard]] absl::Status ForEachOpenedEntry(
    const Storage& storage, const StorageSnapshot* snapshot,
    const std::function<absl::Status(const OpenedEntry& opened)>& visit);

class Replayer {
 public:
  explicit Replayer(ReplayKeeps keeps = ReplayKeeps::kEverything) : state_(keeps) {}

  // Checks and applies the next entry: given as stored (database) bytes under journal
  // key `key_sequence`, or parsed from an export. DATA_LOSS naming the entry and the field.
  [[nodiscard]] absl::Status AddStored(std::string_view bytes, uint64_t key_sequence);
  // The same, for an entry already opened from its stored bytes.
  [[nodiscard]] absl::Status AddOpened(const OpenedEntry& opened);
  [[nodiscard]] absl::Status AddParsed(const v1::Entry& entry);
  // Applies an entry to the state only (no chain or tree checks), for a replay as of a
  // business date that leaves out later-dated entries.
  [[nodiscard]] absl::Status ApplyOnly(const v1::Entry& entry);

  uint64_t size() const { return size_; }
  const std::string& last_hash() const { return last_hash_; }
  // The Merkle root of the entries added so far.
  std::string root() const { return edge_.Root(); }

  // Derived state so far.
  const MemoryState& state();
  std::optional<v1::LoanState> Loan(std::string_view loan_id);
  std::optional<v1::BorrowerState> Borrower(std::string_view borrower_id);
  Money Balance(std::string_view account);
  std::vector<v1::LoanState> Loans() const;
  // Every account with its balance in fen.
  std::vector<std::pair<std::string, int64_t>> Balances() const;

 private:
  absl::Status Add(const OpenedEntry& opened, std::string_view stored);
  absl::Status Check(const v1::Entry& entry, std::string_view stored);
  MemoryState state_;
  // The tree's edge, kept decoded; put into state_ (as the writer keeps it) when the
  // state is asked for, if it has grown since.
  CompactRange edge_;
  uint64_t edge_put_size_ = 0;
  uint64_t size_ = 0;
  std::string last_hash_ = std::string(32, '\0');
};

// A ledger's database directory opened read-only: a RocksDB checkpoint or a stopped
// server's data (its "ledger" subdirectory is found by itself). Its format marker must be
// the one this engine reads, as a ledger opening it requires.
class DatabaseCopy {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DatabaseCopy>> Open(const std::string& path);
  // Calls `visit(bytes, key_sequence)` for every journal entry in key order.
  [[nodiscard]] absl::Status ForEachEntry(
      const std::function<absl::Status(std::string_view bytes, uint64_t key_sequence)>& visit)
      const;
  // The same as the free function, over this copy.
  [[nodiscard]] absl::Status ForEachOpenedEntry(
      const std::function<absl::Status(const OpenedEntry& opened)>& visit) const;
  // The stored chain head: the last entry's sequence and hash (0 and no hash for none).
  [[nodiscard]] absl::StatusOr<v1::JournalHead> Head() const;
  // The version of what apply derived in this copy (kProjectionsVersion when written by
  // this engine; another, or none, when written by an earlier one, whose derived state a
  // ledger rebuilds from the journal when it opens, and which is not compared).
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> ProjectionsVersion() const;
  [[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareWith(
      Replayer& replay) const;

 private:
  explicit DatabaseCopy(std::unique_ptr<Storage> storage);
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<StorageSnapshot> snapshot_;
};

// The loan an event concerns ("" for none) and the event's kind ("repayment_recorded").
std::string LoanIdOfEvent(const v1::Event& event);
std::string EventKindName(const v1::Event& event);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_REPLAY_H_
