// The ledger's storage: the one file that knows RocksDB (storage.cc). Private to engine/.
//
// Five key spaces, each a RocksDB column family (docs/journal-format.md gives the keys
// and values): the journal, projections, indexes, request ids and metadata.
#ifndef GONGDAI_ENGINE_STORAGE_H_
#define GONGDAI_ENGINE_STORAGE_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/options.h"

namespace gongdai {

enum class Space : uint8_t { kJournal = 0, kProjections, kIndexes, kRequestIds, kMeta };
inline constexpr size_t kSpaceCount = 5;
std::string_view SpaceName(Space space);

// A set of puts applied atomically by Storage::Write.
class Storage;

// A set of puts and deletes applied atomically by Storage::Write; made by
// Storage::NewBatch and written only to that storage.
class StorageBatch {
 public:
  ~StorageBatch();
  StorageBatch(StorageBatch&&) noexcept;
  StorageBatch& operator=(StorageBatch&&) noexcept;
  StorageBatch(const StorageBatch&) = delete;
  StorageBatch& operator=(const StorageBatch&) = delete;

  void Put(Space space, std::string_view key, std::string_view value);
  void Delete(Space space, std::string_view key);
  size_t operation_count() const { return operation_count_; }
  size_t byte_count() const;
  void Clear();

 private:
  friend class Storage;
  struct Rep;
  explicit StorageBatch(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
  size_t operation_count_ = 0;
};

// A consistent view of every space at one moment: a RocksDB snapshot. Releasing one makes
// RocksDB mark for a rewrite every bottommost-level file whose sequence numbers are not yet
// zeroed and lie below the oldest snapshot left (all of them, when none is left). The
// journal reaches the bottommost level by trivial moves, keeping its sequence numbers: on a
// book built or grown in bulk, gigabytes of it rewritten while officers write. Serving paths read
// with ScanConsistently instead; a StorageSnapshot is for audits and comparisons.
class StorageSnapshot {
 public:
  virtual ~StorageSnapshot() = default;
};

enum class OpenMode { kReadWrite, kReadOnly };

class Storage {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Storage>> Open(const std::string& path,
                                                                     const LedgerOptions& options,
                                                                     OpenMode mode);
  ~Storage();

  // nullopt when the key is absent. `snapshot` may be null (latest state).
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(
      Space space, std::string_view key, const StorageSnapshot* snapshot = nullptr) const;

  StorageBatch NewBatch() const;

  // Writes `batch` atomically. `sync` must be true for anything acknowledged to a caller.
  [[nodiscard]] absl::Status Write(StorageBatch& batch, bool sync);

  // How much of a space a scan is expected to read. A short scan (a page of a listing, a
  // loan's entries) reads through the block cache; a whole scan (a replay, a comparison)
  // leaves the cache alone.
  enum class ScanLength { kShort, kWhole };

  // Calls `visit` for each key >= `start` in order until it returns false.
  using Visitor = std::function<bool(std::string_view key, std::string_view value)>;
  [[nodiscard]] absl::Status Scan(Space space, std::string_view start, const Visitor& visit,
                                  const StorageSnapshot* snapshot = nullptr,
                                  ScanLength length = ScanLength::kShort) const;

  // Several scans of one space, one after another, in one consistent view: each scan as
  // Scan (`visit` for each key >= `start` until it returns false), all of them seeing the
  // space as it was when the first began. One RocksDB iterator carries the view, so no
  // snapshot is registered (see StorageSnapshot).
  struct RangeScan {
    std::string_view start;
    Visitor visit;
  };
  [[nodiscard]] absl::Status ScanConsistently(Space space, const std::vector<RangeScan>& scans,
                                              ScanLength length = ScanLength::kShort) const;

  // Snapshots RocksDB holds at this moment (its "rocksdb.num-snapshots").
  uint64_t RegisteredSnapshots() const;

  // What RocksDB still has to do in the background, summed over the spaces.
  struct BackgroundWork {
    uint64_t unflushed_entries = 0;  // in the memtables being filled
    uint64_t flushes = 0;            // spaces with a flush due, and flushes running
    uint64_t compactions = 0;        // spaces with a compaction due, and compactions running
    uint64_t errors = 0;             // background errors RocksDB has met since it opened
    bool settled() const { return flushes == 0 && compactions == 0; }
  };
  [[nodiscard]] absl::StatusOr<BackgroundWork> PendingBackgroundWork() const;

  // Flushes the memtables, then waits until no flush or compaction is due or running, as a
  // book is some time after its writes stop. For after a bulk load (the scale benchmark's
  // book of ten million entries), so that what is read next does not share the disk and
  // the cores with the load's compactions. Writes made meanwhile are not flushed. A
  // background error (a failed flush or compaction) ends the wait with UNAVAILABLE;
  // DEADLINE_EXCEEDED if RocksDB is still busy after `timeout`.
  [[nodiscard]] absl::Status Settle(std::chrono::milliseconds timeout);

  // The last key and value of `space`, nullopt when it is empty.
  [[nodiscard]] absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Last(
      Space space, const StorageSnapshot* snapshot = nullptr) const;

  std::unique_ptr<StorageSnapshot> Snapshot() const;

  struct Impl;

 private:
  explicit Storage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_STORAGE_H_
