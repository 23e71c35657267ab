// What an auditor's replay does, with nothing but the entries: check each one (its
// canonical bytes and hash, its sequence, its link to the one before, its balance) and
// apply it through the engine's own `apply` into state held in memory, keeping the
// Merkle tree's roots along the way. Also: a database directory opened read-only, to
// compare what it stores with such a replay.
#ifndef GONGDAI_ENGINE_REPLAY_H_
#define GONGDAI_ENGINE_REPLAY_H_

#include <array>
#include <functional>
#include <map>
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

// Derived state held in memory: what a rebuild or a replay produces.
class MemoryState final : public StateWriter {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override;
  void Put(Space space, std::string_view key, std::string_view value) override;
  void Delete(Space space, std::string_view key) override;
  const std::map<std::string, std::string>& space(Space s) const {
    return spaces_[static_cast<size_t>(s)];
  }

 private:
  std::array<std::map<std::string, std::string>, kSpaceCount> spaces_;
};

// The spaces a rebuild reproduces: projections, indexes, request ids.
inline constexpr Space kDerivedSpaces[] = {Space::kProjections, Space::kIndexes,
                                           Space::kRequestIds};

// The first difference between `storage` (at `snapshot`) and `expected`, in key order of
// the derived spaces; nullopt when they are byte-identical.
[[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareDerivedSpaces(
    const Storage& storage, const StorageSnapshot* snapshot, const MemoryState& expected);

class Replayer {
 public:
  // Checks and applies the next entry: given as stored (database) bytes under journal
  // key `key_sequence`, or parsed from an export. DATA_LOSS naming the entry and the field.
  [[nodiscard]] absl::Status AddStored(std::string_view bytes, uint64_t key_sequence);
  [[nodiscard]] absl::Status AddParsed(const v1::Entry& entry);
  // Applies an entry to the state only (no chain or tree checks), for a replay as of a
  // business date that leaves out later-dated entries.
  [[nodiscard]] absl::Status ApplyOnly(const v1::Entry& entry);

  uint64_t size() const { return tree_.size(); }
  const std::string& last_hash() const { return last_hash_; }
  std::string root() const { return tree_.Root(); }

  // Derived state so far.
  const MemoryState& state() const { return state_; }
  std::optional<v1::LoanState> Loan(std::string_view loan_id);
  std::optional<v1::BorrowerState> Borrower(std::string_view borrower_id);
  Money Balance(std::string_view account);
  std::vector<v1::LoanState> Loans() const;
  // Every account with its balance in fen.
  std::vector<std::pair<std::string, int64_t>> Balances() const;

 private:
  absl::Status Check(const v1::Entry& entry);
  MemoryState state_;
  CompactRange tree_;
  std::string last_hash_ = std::string(32, '\0');
};

// A ledger's database directory opened read-only: a RocksDB checkpoint or a stopped
// server's data (its "ledger" subdirectory is found by itself).
class DatabaseCopy {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DatabaseCopy>> Open(const std::string& path);
  // Calls `visit(bytes, key_sequence)` for every journal entry in key order.
  [[nodiscard]] absl::Status ForEachEntry(
      const std::function<absl::Status(std::string_view bytes, uint64_t key_sequence)>& visit)
      const;
  // The sequence the stored chain head names (0 for none).
  [[nodiscard]] absl::StatusOr<uint64_t> HeadSequence() const;
  [[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareWith(
      const Replayer& replay) const;

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
