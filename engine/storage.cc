#include "engine/storage.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <thread>
#include <vector>

#include "engine/check.h"
#include "engine/storage_config.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

constexpr std::array<std::string_view, kSpaceCount> kSpaceNames = {
    "journal", "projections", "indexes", "request_ids", "meta"};

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = Cat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  return absl::UnavailableError(message);
}

// The indexes' keys mostly end in a sequence number that grows under a fixed prefix (a
// day's entries, a loan's entries): RocksDB is told that prefix, the key without its last
// 8 bytes, and inserts a key from where the prefix's last one went instead of searching the
// memtable's skip list from the top. Under the write mix this took the committing thread
// from 45 to 37 µs per call. A prefix only guides the search: whatever it is, the memtable
// is the same. Each prefix in a memtable holds a hint of a few hundred bytes in it.
//
// Projections are left to the plain search: a hint per rewritten key (a loan, an account)
// cost more in RocksDB's table of hints than it saved (41 µs).
class IndexInsertHint final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "gongdai.IndexInsertHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return key.size() > 8 ? rocksdb::Slice(key.data(), key.size() - 8) : key;
  }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

rocksdb::ColumnFamilyOptions SpaceOptions(Space space, const LedgerOptions& options,
                                          const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.write_buffer_bytes;
  cf.compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Index blocks in partitions of 4 KiB, and filters cut with them, read through the block
  // cache like data blocks (RocksDB does so for partitions whatever
  // cache_index_and_filter_blocks says); only each file's small top-level index stays in
  // memory for as long as the file is open. With one whole index and filter block per
  // file, held outside the cache, the memory a server holds right after open grew with
  // the book: 27 MiB at 100,000 entries, 104-128 MiB at 10 million. Partitioned: 28 and
  // 32-66 MiB. Files written before keep their whole blocks in memory, as they were, until
  // compactions rewrite them: whole blocks in the cache would evict each other at 10
  // million entries (repayments fell fourteenfold when tried).
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  // Point lookups dominate every space but the journal (which is read by sequence and
  // scanned): a bloom filter lets a lookup of an absent key (a new request id, a new
  // account) skip the files that cannot hold it, and one over the memtable lets it skip
  // the memtable's skip list, which otherwise costs the writer as much as the insert.
  if (space != Space::kJournal) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.whole_key_filtering = true;
    table.partition_filters = true;
    cf.memtable_prefix_bloom_size_ratio = 0.05;
    cf.memtable_whole_key_filtering = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (space == Space::kIndexes) {
    cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<IndexInsertHint>();
  }
  // Projections are rewritten in place at keys spread over the whole space (a loan, its
  // summary, its account), so every compaction of level 0 into level 1 rewrites most of
  // level 1. Waiting for 8 files instead of 4 halves how often that happens; a point
  // read checks at most 4 more files, each behind its bloom filter.
  if (space == Space::kProjections) cf.level0_file_num_compaction_trigger = 8;
  return cf;
}

}  // namespace

rocksdb::DBOptions LedgerDBOptions(const LedgerOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = options.create_if_missing;
  db_options.paranoid_checks = true;
  // Set, not left to the default, which depends on whether NDEBUG was defined where this
  // file was compiled (DEBUG_LEVEL without it).
  db_options.info_log_level = rocksdb::InfoLogLevel::INFO_LEVEL;
  db_options.max_background_jobs = 2;
  // A torn tail of the write-ahead log (a crash mid-append) is cut off at the last whole
  // record: those writes were never acknowledged, since acknowledgement follows the sync.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.max_total_wal_size = 4 * options.write_buffer_bytes * kSpaceCount;
  db_options.keep_log_file_num = 4;
  if (options.env != nullptr) db_options.env = options.env;
  return db_options;
}

std::vector<rocksdb::ColumnFamilyDescriptor> LedgerColumnFamilies(const LedgerOptions& options) {
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (size_t i = 0; i < kSpaceCount; ++i) {
    Space space = static_cast<Space>(i);
    descriptors.emplace_back(std::string(SpaceName(space)), SpaceOptions(space, options, cache));
  }
  return descriptors;
}

namespace {

class RocksSnapshot final : public StorageSnapshot {
 public:
  RocksSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~RocksSnapshot() override { db_->ReleaseSnapshot(snapshot_); }
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

const rocksdb::Snapshot* RocksOf(const StorageSnapshot* snapshot) {
  return snapshot == nullptr ? nullptr : static_cast<const RocksSnapshot*>(snapshot)->get();
}

// Whether column family `handle` of `db` holds any key.
absl::StatusOr<bool> HoldsKeys(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* handle) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), handle));
  it->SeekToFirst();
  if (!it->status().ok()) return FromRocks(it->status(), Cat("reading ", handle->GetName()));
  return it->Valid();
}

absl::Status NotALedger(const std::string& path, std::string_view why) {
  return absl::FailedPreconditionError(Cat("the database at ", path, " is not a ledger's: ", why));
}

// RocksDB opens whatever database it is given for writing and adds the column families it
// lacks: another program's database at the ledger's path would be taken over. An existing
// database is opened for writing only if each of its column families is one of the
// ledger's, and, where it lacks some (a first open that stopped before it had created them
// all), only if none of them holds data. Checked before the database is opened for writing,
// so that a database refused is left as it was.
absl::Status CheckExistingDatabase(
    const std::string& path, const rocksdb::DBOptions& db_options,
    const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors) {
  std::error_code error;
  if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", error)) {
    return absl::OkStatus();  // a new database (or none: RocksDB reports that)
  }
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
  if (!s.ok()) return FromRocks(s, Cat("listing the column families of ", path));
  for (const std::string& name : names) {
    const bool ours =
        std::any_of(descriptors.begin(), descriptors.end(),
                    [&name](const rocksdb::ColumnFamilyDescriptor& d) { return d.name == name; });
    if (!ours)
      return NotALedger(path, Cat("it has a column family \"", name, "\" (left as it was)"));
  }
  if (names.size() == descriptors.size()) return absl::OkStatus();
  std::vector<rocksdb::ColumnFamilyDescriptor> present;
  for (const std::string& name : names) present.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(db_options, path, present, &handles, &raw);
  if (!s.ok()) return FromRocks(s, Cat("opening ", path, " to look into it"));
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::Status verdict = absl::OkStatus();
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    if (!verdict.ok()) break;
    absl::StatusOr<bool> holds = HoldsKeys(*db, handle);
    if (!holds.ok()) {
      verdict = holds.status();
    } else if (*holds) {
      verdict = NotALedger(path, Cat("it holds data in column family \"", handle->GetName(),
                                     "\" but lacks the ledger's column families (left as it was)"));
    }
  }
  // Closing a handle of a read-only database cannot lose data.
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  return verdict;
}

}  // namespace

std::string_view SpaceName(Space space) { return kSpaceNames[static_cast<size_t>(space)]; }

struct StorageBatch::Rep {
  rocksdb::WriteBatch batch;
  const std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount>* handles = nullptr;
  rocksdb::Status status;  // the first failed Put/Delete, reported by Storage::Write

  rocksdb::ColumnFamilyHandle* handle(Space space) const {
    return (*handles)[static_cast<size_t>(space)];
  }
};

StorageBatch::StorageBatch(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
StorageBatch::StorageBatch(StorageBatch&&) noexcept = default;
StorageBatch& StorageBatch::operator=(StorageBatch&&) noexcept = default;
StorageBatch::~StorageBatch() = default;

void StorageBatch::Put(Space space, std::string_view key, std::string_view value) {
  rocksdb::Status s = rep_->batch.Put(rep_->handle(space), rocksdb::Slice(key.data(), key.size()),
                                      rocksdb::Slice(value.data(), value.size()));
  if (!s.ok() && rep_->status.ok()) rep_->status = s;
  ++operation_count_;
}

void StorageBatch::Delete(Space space, std::string_view key) {
  rocksdb::Status s =
      rep_->batch.Delete(rep_->handle(space), rocksdb::Slice(key.data(), key.size()));
  if (!s.ok() && rep_->status.ok()) rep_->status = s;
  ++operation_count_;
}

size_t StorageBatch::byte_count() const { return rep_->batch.GetDataSize(); }

void StorageBatch::Clear() {
  rep_->batch.Clear();
  rep_->status = rocksdb::Status::OK();
  operation_count_ = 0;
}

struct Storage::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount> handles{};
  std::vector<rocksdb::ColumnFamilyHandle*> owned_handles;
  bool read_only = false;

  ~Impl() {
    if (db == nullptr) return;
    if (!read_only) {
      // Every acknowledged write is already in the synced log. Flushing the memtables on a
      // clean close spares the next open from replaying up to max_total_wal_size of log
      // (seconds on a large book); after a crash the log is replayed as before. A failure
      // here loses nothing, so its status is dropped.
      rocksdb::FlushOptions flush;
      flush.wait = true;
      db->Flush(flush, std::vector<rocksdb::ColumnFamilyHandle*>(handles.begin(), handles.end()))
          .PermitUncheckedError();
    }
    for (rocksdb::ColumnFamilyHandle* handle : owned_handles) {
      // Closing a handle cannot lose data; its status is deliberately dropped.
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    if (!read_only) {
      // Every acknowledged write was already synced; Close only releases resources.
      db->Close().PermitUncheckedError();
    }
  }

  rocksdb::ColumnFamilyHandle* handle(Space space) const {
    return handles[static_cast<size_t>(space)];
  }
};

Storage::Storage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Storage::~Storage() = default;

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(const std::string& path,
                                                       const LedgerOptions& options,
                                                       OpenMode mode) {
  const rocksdb::DBOptions db_options = LedgerDBOptions(options);
  const std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = LedgerColumnFamilies(options);

  auto impl = std::make_unique<Impl>();
  impl->read_only = mode == OpenMode::kReadOnly;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (mode == OpenMode::kReadOnly) {
    // A read-only copy is read mostly from end to end (an audit): mapped, its blocks are
    // read in place, with no system call and no copy per block.
    rocksdb::DBOptions read_only_options(db_options);
    read_only_options.allow_mmap_reads = true;
    s = rocksdb::DB::OpenForReadOnly(read_only_options, path, descriptors, &handles, &raw);
  } else {
    absl::Status checked = CheckExistingDatabase(path, db_options, descriptors);
    if (!checked.ok()) return checked;
    s = rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw);
  }
  if (!s.ok()) return FromRocks(s, Cat("opening ledger database at ", path));
  impl->db.reset(raw);
  impl->owned_handles = handles;
  for (size_t i = 0; i < kSpaceCount; ++i) impl->handles[i] = handles[i + 1];
  // The ledger never writes RocksDB's default column family.
  absl::StatusOr<bool> foreign = HoldsKeys(*impl->db, handles[0]);
  if (!foreign.ok()) return foreign.status();
  if (*foreign) {
    return NotALedger(path,
                      "it holds data in column family \"default\", which a ledger leaves empty");
  }
  return std::unique_ptr<Storage>(new Storage(std::move(impl)));
}

absl::StatusOr<std::optional<std::string>> Storage::Get(Space space, std::string_view key,
                                                        const StorageSnapshot* snapshot) const {
  rocksdb::ReadOptions read;
  read.snapshot = RocksOf(snapshot);
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(read, impl_->handle(space), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, Cat("reading ", SpaceName(space)));
  return value;
}

absl::Status Storage::Write(StorageBatch& batch, bool sync) {
  if (impl_->read_only) return absl::FailedPreconditionError("storage is open read-only");
  GONGDAI_CHECK(batch.rep_->handles == &impl_->handles);
  if (!batch.rep_->status.ok()) return FromRocks(batch.rep_->status, "building write batch");
  rocksdb::WriteOptions write;
  write.sync = sync;
  write.disableWAL = false;
  return FromRocks(impl_->db->Write(write, &batch.rep_->batch), "writing batch");
}

namespace {

rocksdb::ReadOptions ScanOptions(const StorageSnapshot* snapshot, Storage::ScanLength length) {
  rocksdb::ReadOptions read;
  read.snapshot = RocksOf(snapshot);
  // A whole scan would fill the cache with blocks read once, evicting the ones that
  // serving reads need (and managing the cache costs it more than the reads).
  read.fill_cache = length == Storage::ScanLength::kShort;
  return read;
}

// Seeks `it` to `start` and calls `visit` for each key from there until it returns false.
rocksdb::Status VisitFrom(rocksdb::Iterator& it, std::string_view start,
                          const Storage::Visitor& visit) {
  for (it.Seek(rocksdb::Slice(start.data(), start.size())); it.Valid(); it.Next()) {
    rocksdb::Slice k = it.key();
    rocksdb::Slice v = it.value();
    if (!visit(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
  }
  return it.status();
}

}  // namespace

absl::Status Storage::Scan(Space space, std::string_view start, const Visitor& visit,
                           const StorageSnapshot* snapshot, ScanLength length) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(ScanOptions(snapshot, length), impl_->handle(space)));
  return FromRocks(VisitFrom(*it, start, visit), Cat("scanning ", SpaceName(space)));
}

absl::Status Storage::ScanConsistently(Space space, const std::vector<RangeScan>& scans,
                                       ScanLength length) const {
  // The iterator pins the memtables and files it was made on: every Seek reads the space
  // as of its creation.
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(ScanOptions(nullptr, length), impl_->handle(space)));
  for (const RangeScan& scan : scans) {
    rocksdb::Status scanned = VisitFrom(*it, scan.start, scan.visit);
    if (!scanned.ok()) return FromRocks(scanned, Cat("scanning ", SpaceName(space)));
  }
  return absl::OkStatus();
}

uint64_t Storage::RegisteredSnapshots() const {
  uint64_t count = 0;
  impl_->db->GetIntProperty(rocksdb::DB::Properties::kNumSnapshots, &count);
  return count;
}

absl::StatusOr<Storage::BackgroundWork> Storage::PendingBackgroundWork() const {
  rocksdb::DB& db = *impl_->db;
  absl::Status failed;
  auto property = [&](rocksdb::ColumnFamilyHandle* handle, const std::string& name) {
    uint64_t value = 0;
    if (!db.GetIntProperty(handle, name, &value) && failed.ok()) {
      failed = absl::InternalError(Cat("RocksDB has no value for ", name));
    }
    return value;
  };
  // Database-wide counts, read through the default column family.
  rocksdb::ColumnFamilyHandle* db_wide = db.DefaultColumnFamily();
  BackgroundWork work;
  // A compaction's own files do not count as due while it runs, and the one it leaves due
  // is scheduled as it ends: running jobs are read before and after the spaces, so that a
  // job ending between the reads is seen in one or the other.
  work.flushes += property(db_wide, rocksdb::DB::Properties::kNumRunningFlushes);
  work.compactions += property(db_wide, rocksdb::DB::Properties::kNumRunningCompactions);
  for (rocksdb::ColumnFamilyHandle* handle : impl_->handles) {
    work.unflushed_entries += property(handle, rocksdb::DB::Properties::kNumEntriesActiveMemTable);
    work.flushes += property(handle, rocksdb::DB::Properties::kMemTableFlushPending);
    work.compactions += property(handle, rocksdb::DB::Properties::kCompactionPending);
  }
  work.flushes += property(db_wide, rocksdb::DB::Properties::kNumRunningFlushes);
  work.compactions += property(db_wide, rocksdb::DB::Properties::kNumRunningCompactions);
  work.errors = property(db_wide, rocksdb::DB::Properties::kBackgroundErrors);
  if (!failed.ok()) return failed;
  return work;
}

absl::Status Storage::Settle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::StatusOr<BackgroundWork> work = PendingBackgroundWork();
  if (!work.ok()) return work.status();
  const uint64_t errors_before = work->errors;
  // Not waiting for the flush here keeps it under the deadline: the loop waits for it.
  rocksdb::FlushOptions flush;
  flush.wait = false;
  rocksdb::Status flushed = impl_->db->Flush(
      flush,
      std::vector<rocksdb::ColumnFamilyHandle*>(impl_->handles.begin(), impl_->handles.end()));
  if (!flushed.ok()) return FromRocks(flushed, "flushing the memtables");
  // Settled twice in a row, 50 ms apart: a job scheduled just as the one before it ended
  // shows in the second reading.
  int settled_readings = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    work = PendingBackgroundWork();
    if (!work.ok()) return work.status();
    if (work->errors > errors_before) {
      return absl::UnavailableError(
          Cat("RocksDB met ", work->errors - errors_before,
              " background errors while settling (a failed flush or compaction; see its LOG)"));
    }
    settled_readings = work->settled() ? settled_readings + 1 : 0;
    if (settled_readings == 2) return absl::OkStatus();
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(Cat("storage not settled after ", timeout.count(),
                                             " ms: ", work->flushes, " flushes and ",
                                             work->compactions, " compactions to go"));
    }
  }
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Storage::Last(
    Space space, const StorageSnapshot* snapshot) const {
  rocksdb::ReadOptions read;
  read.snapshot = RocksOf(snapshot);
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(read, impl_->handle(space)));
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "seeking last key");
  if (!it->Valid()) return std::nullopt;
  return std::make_pair(it->key().ToString(), it->value().ToString());
}

StorageBatch Storage::NewBatch() const {
  auto rep = std::make_unique<StorageBatch::Rep>();
  rep->handles = &impl_->handles;
  return StorageBatch(std::move(rep));
}

std::unique_ptr<StorageSnapshot> Storage::Snapshot() const {
  return std::make_unique<RocksSnapshot>(impl_->db.get());
}

}  // namespace gongdai
