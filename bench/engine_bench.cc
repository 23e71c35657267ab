// gongdai-engine-bench: durable throughput and latency of the ledger kernel, next to the
// raw ceiling of the same disk and the same RocksDB layout.
//
// For each batch size under test it runs, in a fresh database each time:
//   engine: gongdai::Ledger with batch_commands_max = batch size, driven by submitter
//           threads that keep a bounded number of InternalTransfer commands outstanding.
//           Latency is per command, from Submit to its callback (after the fsync).
//   raw:    plain RocksDB, one thread, no validation, hashing or queue: WriteBatches of
//           the batch size holding the same keys, in the same column families, with the
//           same value sizes as the engine's entries (measured from the engine run's
//           database), written with sync = true. Latency is per WriteBatch.
// and, once at the start, the median latency of a small append plus fdatasync on the
// same file system, the floor under every synced write.
//
// Everything is created inside one scratch directory under --dir, removed at the end
// (also after Ctrl-C, which ends the current run early).
#include <fcntl.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/scratch_directory.h"
#include "engine/date.h"
#include "engine/ledger.h"
#include "engine/options.h"
#include "engine/storage_config.h"
#include "gongdai/v1/journal.pb.h"

namespace gongdai::bench {
namespace {

using Clock = std::chrono::steady_clock;

// The source of every transfer. "external:" accounts may go below zero, so no command is
// refused for insufficient funds and every command becomes an entry.
constexpr std::string_view kSourceAccount = "external:bank:settlement";
constexpr int64_t kAmountFenMin = 1;
constexpr int64_t kAmountFenMax = 10000;

// The on-disk keys, as docs/journal-format.md defines them (engine/journal_format.h and
// engine/rules.cc hold the engine's private copies). The raw ceiling writes these.
constexpr std::string_view kAccountPrefix = "a/";
constexpr std::string_view kDateIndexPrefix = "d/";
constexpr std::string_view kMetaHeadKey = "head";
constexpr size_t kSpaceCount = 5;
constexpr std::array<const char*, kSpaceCount> kSpaceNames = {"journal", "projections", "indexes",
                                                              "request_ids", "meta"};
enum SpaceIndex : size_t { kJournal = 0, kProjections, kIndexes, kRequestIds, kMeta };

// Set by SIGINT/SIGTERM: every loop ends early so that the scratch directory is removed.
std::atomic<bool> stop_requested{false};

void RequestStop(int) { stop_requested.store(true, std::memory_order_relaxed); }

struct Flags {
  double seconds = 5.0;
  std::vector<size_t> batch_sizes = {1, 64, 512};
  size_t outstanding = 0;  // 0: max(4, 2 x batch size)
  size_t submitters = 2;
  size_t accounts = 100000;
  int fdatasync_probes = 200;
  std::string dir;
  bool smoke = false;
};

double ToSeconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Nearest-rank percentile of `samples_ns` in microseconds; reorders the samples.
double PercentileUs(std::vector<int64_t>& samples_ns, double fraction) {
  if (samples_ns.empty()) return 0;
  size_t rank = static_cast<size_t>(fraction * static_cast<double>(samples_ns.size()));
  rank = std::min(rank, samples_ns.size() - 1);
  std::nth_element(samples_ns.begin(), samples_ns.begin() + static_cast<ptrdiff_t>(rank),
                   samples_ns.end());
  return static_cast<double>(samples_ns[rank]) / 1000.0;
}

std::string SequenceKey(uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[static_cast<size_t>(i)] = static_cast<char>(sequence & 0xff);
    sequence >>= 8;
  }
  return key;
}

std::string DateIndexKey(int32_t days_since_epoch, uint64_t sequence) {
  std::string key(kDateIndexPrefix);
  const uint32_t days = static_cast<uint32_t>(days_since_epoch + (1 << 30));
  for (int shift = 24; shift >= 0; shift -= 8) key += static_cast<char>((days >> shift) & 0xff);
  key += SequenceKey(sequence);
  return key;
}

std::vector<std::string> MemberAccounts(size_t count) {
  std::vector<std::string> accounts;
  accounts.reserve(count);
  char name[48];
  for (size_t i = 0; i < count; ++i) {
    std::snprintf(name, sizeof(name), "member:m%06zu:cash", i);
    accounts.emplace_back(name);
  }
  return accounts;
}

std::string RequestId(size_t batch_size, size_t submitter, uint64_t counter) {
  char id[64];
  std::snprintf(id, sizeof(id), "bench-b%zu-s%zu-%010llu", batch_size, submitter,
                static_cast<unsigned long long>(counter));
  return id;
}

// Median latency of appending 128 bytes to a file and fdatasync-ing it: what one synced
// WAL append costs on this file system, before RocksDB or the engine add anything.
absl::StatusOr<double> MeasureFdatasyncUs(const std::filesystem::path& dir, int probes) {
  const std::filesystem::path file = dir / "fdatasync-probe";
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError("open " + file.string() + ": " + std::strerror(errno));
  const std::string record(128, 'x');
  std::vector<int64_t> latencies_ns;
  latencies_ns.reserve(static_cast<size_t>(probes));
  absl::Status status;
  for (int i = 0; i < probes && !stop_requested.load(std::memory_order_relaxed); ++i) {
    const Clock::time_point start = Clock::now();
    if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        fdatasync(fd) != 0) {
      status =
          absl::UnavailableError("write+fdatasync " + file.string() + ": " + std::strerror(errno));
      break;
    }
    latencies_ns.push_back(std::chrono::nanoseconds(Clock::now() - start).count());
  }
  close(fd);
  std::filesystem::remove(file);
  if (!status.ok()) return status;
  return PercentileUs(latencies_ns, 0.5);
}

// ---------------------------------------------------------------------------------------
// Engine run

struct EngineResult {
  uint64_t entries = 0;
  double elapsed_seconds = 0;
  double entries_per_second = 0;
  double latency_us_p50 = 0;
  double latency_us_p99 = 0;
  // Commands per WriteBatch (per fsync) the writer actually achieved.
  double commands_per_batch_mean = 0;
};

// One submitter thread's window of outstanding commands and what came back.
struct Submitter {
  std::mutex mutex;
  std::condition_variable window_open;
  size_t window = 0;
  // The submitter refills only when this many slots are free, so that the writer thread
  // (which runs every callback) wakes it once per refill rather than once per command.
  size_t refill = 1;
  size_t in_flight = 0;
  std::vector<int64_t> latencies_ns;
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::string first_failure;
};

void RunSubmitter(Ledger& ledger, Submitter& submitter, size_t index, size_t batch_size,
                  const std::vector<std::string>& accounts, Clock::time_point deadline) {
  std::mt19937_64 random(0x9e3779b97f4a7c15ULL * (index + 1) + batch_size);
  std::uniform_int_distribution<size_t> pick_account(0, accounts.size() - 1);
  std::uniform_int_distribution<int64_t> pick_amount_fen(kAmountFenMin, kAmountFenMax);
  v1::Actor actor;
  actor.set_principal_id("bench");
  actor.set_role("officer");
  uint64_t counter = 0;
  while (true) {
    size_t free_slots = 0;
    {
      std::unique_lock<std::mutex> lock(submitter.mutex);
      submitter.window_open.wait(
          lock, [&] { return submitter.window - submitter.in_flight >= submitter.refill; });
      free_slots = submitter.window - submitter.in_flight;
      submitter.in_flight += free_slots;
    }
    if (Clock::now() >= deadline || stop_requested.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(submitter.mutex);
      submitter.in_flight -= free_slots;
      break;
    }
    for (size_t i = 0; i < free_slots; ++i) {
      Command command;
      command.request_id = RequestId(batch_size, index, counter++);
      command.actor = actor;
      v1::InternalTransfer* transfer = command.event.mutable_internal_transfer();
      transfer->set_from_account(std::string(kSourceAccount));
      transfer->set_to_account(accounts[pick_account(random)]);
      transfer->set_amount_fen(pick_amount_fen(random));
      const Clock::time_point submitted = Clock::now();
      ledger.Submit(std::move(command), [&submitter, submitted](CommandResult result) {
        const int64_t latency_ns = std::chrono::nanoseconds(Clock::now() - submitted).count();
        std::lock_guard<std::mutex> lock(submitter.mutex);
        if (result.status.ok() && !result.replayed) {
          ++submitter.ok;
          submitter.latencies_ns.push_back(latency_ns);
        } else {
          if (submitter.failed++ == 0) {
            submitter.first_failure =
                result.replayed ? std::string("unexpected replay") : result.status.ToString();
          }
        }
        --submitter.in_flight;
        const size_t free_now = submitter.window - submitter.in_flight;
        if (free_now == submitter.refill || submitter.in_flight == 0) {
          submitter.window_open.notify_one();
        }
      });
    }
  }
  // Every callback captures `submitter`: wait for the last one before returning.
  std::unique_lock<std::mutex> lock(submitter.mutex);
  submitter.window_open.wait(lock, [&] { return submitter.in_flight == 0; });
}

absl::StatusOr<EngineResult> RunEngine(const std::filesystem::path& path, size_t batch_size,
                                       size_t outstanding, size_t submitter_count, double seconds,
                                       const std::vector<std::string>& accounts) {
  // The writer reads the clock once per batch to stamp its entries; counting the reads
  // gives the number of batches, hence how full they were.
  auto clock_reads = std::make_shared<std::atomic<uint64_t>>(0);
  LedgerOptions options;
  options.batch_commands_max = batch_size;
  options.clock_us = [clock_reads] {
    clock_reads->fetch_add(1, std::memory_order_relaxed);
    return NowUnixMicros();
  };
  options.business_date_today = [] { return ShanghaiDateAt(NowUnixMicros()); };
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(path.string(), options);
  if (!ledger.ok()) return ledger.status();

  submitter_count = std::min(submitter_count, outstanding);
  std::vector<std::unique_ptr<Submitter>> submitters;
  for (size_t i = 0; i < submitter_count; ++i) {
    auto submitter = std::make_unique<Submitter>();
    submitter->window = outstanding / submitter_count + (i < outstanding % submitter_count);
    submitter->refill = std::max<size_t>(1, std::min(batch_size, submitter->window / 4));
    submitter->latencies_ns.reserve(1 << 20);
    submitters.push_back(std::move(submitter));
  }

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < submitter_count; ++i) {
    threads.emplace_back(RunSubmitter, std::ref(**ledger), std::ref(*submitters[i]), i, batch_size,
                         std::cref(accounts), deadline);
  }
  for (std::thread& thread : threads) thread.join();
  const Clock::duration elapsed = Clock::now() - start;

  EngineResult result;
  std::vector<int64_t> latencies_ns;
  uint64_t failed = 0;
  std::string first_failure;
  for (const auto& submitter : submitters) {
    result.entries += submitter->ok;
    failed += submitter->failed;
    if (first_failure.empty()) first_failure = submitter->first_failure;
    latencies_ns.insert(latencies_ns.end(), submitter->latencies_ns.begin(),
                        submitter->latencies_ns.end());
  }
  if (failed > 0) {
    return absl::InternalError("engine refused " + std::to_string(failed) +
                               " commands; first: " + first_failure);
  }
  const uint64_t head_sequence = (*ledger)->Head().sequence;
  if (head_sequence != result.entries) {
    return absl::InternalError("journal head is entry " + std::to_string(head_sequence) + " but " +
                               std::to_string(result.entries) + " commands were acknowledged");
  }
  ledger->reset();  // closes the database so that its files can be measured

  result.elapsed_seconds = ToSeconds(elapsed);
  result.entries_per_second = static_cast<double>(result.entries) / result.elapsed_seconds;
  result.latency_us_p50 = PercentileUs(latencies_ns, 0.50);
  result.latency_us_p99 = PercentileUs(latencies_ns, 0.99);
  const uint64_t batches = clock_reads->load();
  result.commands_per_batch_mean =
      batches == 0 ? 0 : static_cast<double>(result.entries) / static_cast<double>(batches);
  return result;
}

// ---------------------------------------------------------------------------------------
// What one engine entry stores, measured from the engine run's database

struct EntryFootprint {
  size_t journal_value_bytes = 0;  // the serialized, sealed entry
  size_t request_id_key_bytes = 0;
  size_t member_projection_value_bytes = 0;
  size_t source_projection_value_bytes = 0;
  size_t head_value_bytes = 0;
};

absl::Status FromRocks(const rocksdb::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::UnavailableError(what + ": " + status.ToString());
}

// Mean key and value sizes of one column family over every key in it.
struct SpaceSizes {
  uint64_t keys = 0;
  uint64_t key_bytes = 0;
  uint64_t value_bytes = 0;
  size_t MeanKeyBytes() const { return keys == 0 ? 0 : (key_bytes + keys / 2) / keys; }
  size_t MeanValueBytes() const { return keys == 0 ? 0 : (value_bytes + keys / 2) / keys; }
};

// Opens the closed engine database read-only and averages what it stored. Every key
// space is scanned in full: the journal's varints grow with the sequence number and the
// balances with the run, so a sample from one end would be biased.
absl::StatusOr<EntryFootprint> MeasureFootprint(const std::filesystem::path& path,
                                                uint64_t expected_entries) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const char* name : kSpaceNames) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  absl::Status opened = FromRocks(rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path.string(),
                                                               descriptors, &handles, &raw_db),
                                  "opening the engine database read-only");
  if (!opened.ok()) return opened;
  std::unique_ptr<rocksdb::DB> db(raw_db);

  const std::string source_key = std::string(kAccountPrefix) + std::string(kSourceAccount);
  std::array<SpaceSizes, kSpaceCount> sizes;
  size_t source_projection_value_bytes = 0;
  absl::Status scanned;
  for (size_t space = 0; space < kSpaceCount && scanned.ok(); ++space) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), handles[space + 1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (space == kProjections && it->key() == source_key) {
        source_projection_value_bytes = it->value().size();
        continue;
      }
      if (space == kMeta && it->key() != kMetaHeadKey) continue;
      ++sizes[space].keys;
      sizes[space].key_bytes += it->key().size();
      sizes[space].value_bytes += it->value().size();
    }
    scanned = FromRocks(it->status(), std::string("scanning ") + kSpaceNames[space]);
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  if (!scanned.ok()) return scanned;
  if (sizes[kJournal].keys != expected_entries || sizes[kRequestIds].keys != expected_entries ||
      sizes[kIndexes].keys != expected_entries) {
    return absl::InternalError("engine database holds " + std::to_string(sizes[kJournal].keys) +
                               " journal keys, " + std::to_string(sizes[kRequestIds].keys) +
                               " request ids and " + std::to_string(sizes[kIndexes].keys) +
                               " index keys; expected " + std::to_string(expected_entries));
  }
  EntryFootprint footprint;
  footprint.journal_value_bytes = sizes[kJournal].MeanValueBytes();
  footprint.request_id_key_bytes = sizes[kRequestIds].MeanKeyBytes();
  footprint.member_projection_value_bytes = sizes[kProjections].MeanValueBytes();
  footprint.source_projection_value_bytes = source_projection_value_bytes;
  footprint.head_value_bytes = sizes[kMeta].MeanValueBytes();
  return footprint;
}

// ---------------------------------------------------------------------------------------
// Raw ceiling

struct RawResult {
  uint64_t entries = 0;
  double entries_per_second = 0;
  double batch_latency_us_p50 = 0;
  double batch_latency_us_p99 = 0;
  double write_batch_bytes_per_entry = 0;
};

// Opened with the engine's own RocksDB configuration (engine/storage_config.h): a default
// column family plus one per key space, bloom filters on all but the journal (on the files
// and on the memtables), no compression.
struct RawDatabase {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [0] is the default family

  ~RawDatabase() {
    if (db == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    db->Close().PermitUncheckedError();
  }
  rocksdb::ColumnFamilyHandle* space(size_t index) const { return handles[index + 1]; }
};

absl::Status OpenRawDatabase(const std::filesystem::path& path, RawDatabase& out) {
  const LedgerOptions defaults;
  const rocksdb::DBOptions db_options = LedgerDBOptions(defaults);
  const std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = LedgerColumnFamilies(defaults);
  rocksdb::DB* raw_db = nullptr;
  absl::Status opened =
      FromRocks(rocksdb::DB::Open(db_options, path.string(), descriptors, &out.handles, &raw_db),
                "opening the raw database");
  if (!opened.ok()) return opened;
  out.db.reset(raw_db);
  return absl::OkStatus();
}

// One writer thread appending WriteBatches with exactly the keys one engine batch holds
// (Ledger::Impl::ProcessBatch): per entry the journal key, the request id, the date
// index key and the destination account's projection; per batch the source account's
// projection (the engine coalesces a batch's writes to one key into one Put, and every
// entry here shares the source) and the chain head. Values are filler of the measured
// sizes: the column families are uncompressed, so the bytes' content does not matter.
absl::StatusOr<RawResult> RunRaw(const std::filesystem::path& path, size_t batch_size,
                                 double seconds, const EntryFootprint& footprint,
                                 const std::vector<std::string>& accounts) {
  RawDatabase database;
  absl::Status opened = OpenRawDatabase(path, database);
  if (!opened.ok()) return opened;

  std::mt19937_64 random(0x51ed270b27a4e1f3ULL + batch_size);
  std::uniform_int_distribution<size_t> pick_account(0, accounts.size() - 1);
  std::uniform_int_distribution<int> pick_byte(0, 255);
  std::string filler(4096, '\0');
  for (char& c : filler) c = static_cast<char>(pick_byte(random));
  auto value = [&](size_t bytes) { return rocksdb::Slice(filler.data(), bytes); };
  const size_t longest_value =
      std::max({footprint.journal_value_bytes, footprint.head_value_bytes,
                footprint.member_projection_value_bytes, footprint.source_projection_value_bytes});
  if (longest_value > filler.size()) {
    return absl::InternalError("entry value of " + std::to_string(longest_value) +
                               " bytes exceeds the filler");
  }
  const std::string source_key = std::string(kAccountPrefix) + std::string(kSourceAccount);
  const int32_t today_days = ShanghaiDateAt(NowUnixMicros()).days_since_epoch();
  // Pads the raw run's request ids to the engine's mean length (they differ only when the
  // engine ran more submitters than the raw run's single-digit submitter index allows for).
  const size_t request_id_bytes = RequestId(batch_size, 0, 0).size();
  const std::string request_id_padding(footprint.request_id_key_bytes > request_id_bytes
                                           ? footprint.request_id_key_bytes - request_id_bytes
                                           : 0,
                                       'r');

  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  rocksdb::WriteBatch batch;
  std::vector<std::string> sequence_keys(batch_size);
  std::vector<std::string> member_keys(batch_size);
  std::vector<int64_t> latencies_ns;
  latencies_ns.reserve(1 << 16);
  RawResult result;
  uint64_t sequence = 0;
  uint64_t write_batch_bytes = 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < deadline && !stop_requested.load(std::memory_order_relaxed)) {
    const Clock::time_point batch_start = Clock::now();
    batch.Clear();
    for (size_t i = 0; i < batch_size; ++i) {
      sequence_keys[i] = SequenceKey(sequence + 1 + i);
      member_keys[i] = std::string(kAccountPrefix) + accounts[pick_account(random)];
      batch.Put(database.space(kJournal), sequence_keys[i], value(footprint.journal_value_bytes));
    }
    for (size_t i = 0; i < batch_size; ++i) {
      batch.Put(database.space(kProjections), member_keys[i],
                value(footprint.member_projection_value_bytes));
    }
    batch.Put(database.space(kProjections), source_key,
              value(footprint.source_projection_value_bytes));
    for (size_t i = 0; i < batch_size; ++i) {
      batch.Put(database.space(kIndexes), DateIndexKey(today_days, sequence + 1 + i),
                rocksdb::Slice());
    }
    for (size_t i = 0; i < batch_size; ++i) {
      batch.Put(database.space(kRequestIds),
                RequestId(batch_size, 0, sequence + i) + request_id_padding, sequence_keys[i]);
    }
    batch.Put(database.space(kMeta), kMetaHeadKey, value(footprint.head_value_bytes));
    absl::Status written =
        FromRocks(database.db->Write(write_options, &batch), "writing a raw batch");
    if (!written.ok()) return written;
    latencies_ns.push_back(std::chrono::nanoseconds(Clock::now() - batch_start).count());
    write_batch_bytes += batch.GetDataSize();
    sequence += batch_size;
  }
  const double elapsed_seconds = ToSeconds(Clock::now() - start);
  result.entries = sequence;
  result.entries_per_second = static_cast<double>(sequence) / elapsed_seconds;
  result.batch_latency_us_p50 = PercentileUs(latencies_ns, 0.50);
  result.batch_latency_us_p99 = PercentileUs(latencies_ns, 0.99);
  result.write_batch_bytes_per_entry =
      sequence == 0 ? 0 : static_cast<double>(write_batch_bytes) / static_cast<double>(sequence);
  return result;
}

// ---------------------------------------------------------------------------------------

struct Row {
  size_t batch_size = 0;
  size_t outstanding = 0;
  EngineResult engine;
  EntryFootprint footprint;
  RawResult raw;
};

void PrintRows(const std::vector<Row>& rows) {
  if (rows.empty()) return;
  std::printf("\n%5s | %16s %10s %10s | %14s %12s %12s | %10s\n", "batch", "engine entries/s",
              "p50 us", "p99 us", "raw entries/s", "batch p50 us", "batch p99 us", "engine/raw");
  std::printf("%s\n", std::string(5 + 3 + 38 + 3 + 40 + 3 + 10, '-').c_str());
  for (const Row& row : rows) {
    const double ratio = row.raw.entries_per_second == 0
                             ? 0
                             : row.engine.entries_per_second / row.raw.entries_per_second;
    std::printf("%5zu | %16.0f %10.0f %10.0f | %14.0f %12.0f %12.0f | %9.0f%%\n", row.batch_size,
                row.engine.entries_per_second, row.engine.latency_us_p50, row.engine.latency_us_p99,
                row.raw.entries_per_second, row.raw.batch_latency_us_p50,
                row.raw.batch_latency_us_p99, 100.0 * ratio);
  }
  std::printf("\n%5s | %11s %16s | %13s %15s %14s %12s | %15s\n", "batch", "outstanding",
              "commands/fsync", "journal value", "member account", "source account", "request id",
              "raw batch bytes");
  std::printf("%5s | %11s %16s | %13s %15s %14s %12s | %15s\n", "", "commands", "engine mean",
              "bytes", "value bytes", "value bytes", "key bytes", "per entry");
  std::printf("%s\n", std::string(5 + 3 + 28 + 3 + 57 + 3 + 15, '-').c_str());
  for (const Row& row : rows) {
    std::printf("%5zu | %11zu %16.1f | %13zu %15zu %14zu %12zu | %15.1f\n", row.batch_size,
                row.outstanding, row.engine.commands_per_batch_mean,
                row.footprint.journal_value_bytes, row.footprint.member_projection_value_bytes,
                row.footprint.source_projection_value_bytes, row.footprint.request_id_key_bytes,
                row.raw.write_batch_bytes_per_entry);
  }
  std::printf("\ntargets: engine >= 60%% of raw at every batch size; >= 40000 entries/s\n");
  for (const Row& row : rows) {
    const double ratio = row.raw.entries_per_second == 0
                             ? 0
                             : row.engine.entries_per_second / row.raw.entries_per_second;
    std::printf("  batch %zu: ratio %.0f%% %s; %.0f entries/s %s", row.batch_size, 100.0 * ratio,
                ratio >= 0.6 ? "met" : "NOT met", row.engine.entries_per_second,
                row.engine.entries_per_second >= 40000 ? "met" : "NOT met");
    // One fsync per command caps batch size 1 whatever the engine does: say so when even
    // the raw ceiling is under the rate target.
    if (row.raw.entries_per_second < 40000) {
      std::printf(" (raw RocksDB itself reaches only %.0f)", row.raw.entries_per_second);
    }
    std::printf("\n");
  }
}

// The "model name" line of /proc/cpuinfo, or "unknown".
std::string CpuModel() {
  std::FILE* cpuinfo = std::fopen("/proc/cpuinfo", "r");
  if (cpuinfo == nullptr) return "unknown";
  std::string model = "unknown";
  char line[512];
  while (std::fgets(line, sizeof(line), cpuinfo) != nullptr) {
    std::string_view text(line);
    if (!text.starts_with("model name")) continue;
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) break;
    text.remove_prefix(std::min(text.size(), colon + 2));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    model = std::string(text);
    break;
  }
  std::fclose(cpuinfo);
  return model;
}

int Run(const Flags& flags) {
  const std::vector<std::string> accounts = MemberAccounts(flags.accounts);
  absl::StatusOr<std::unique_ptr<ScratchDirectory>> scratch =
      ScratchDirectory::Create(flags.dir, "gongdai-engine-bench");
  if (!scratch.ok()) {
    std::fprintf(stderr, "error: %s\n", scratch.status().ToString().c_str());
    return 1;
  }
  std::printf("gongdai-engine-bench: %.2f s per run, %zu accounts, %zu submitter threads, %s\n",
              flags.seconds, flags.accounts, flags.submitters, (*scratch)->path().c_str());
  std::printf("machine: %u hardware threads, %s\n", std::thread::hardware_concurrency(),
              CpuModel().c_str());

  absl::StatusOr<double> fdatasync_us =
      MeasureFdatasyncUs((*scratch)->path(), flags.fdatasync_probes);
  if (!fdatasync_us.ok()) {
    std::fprintf(stderr, "error: %s\n", fdatasync_us.status().ToString().c_str());
    return 1;
  }
  std::printf("fdatasync of a 128-byte append: median %.0f us over %d probes\n", *fdatasync_us,
              flags.fdatasync_probes);
  std::fflush(stdout);

  std::vector<Row> rows;
  for (size_t batch_size : flags.batch_sizes) {
    if (stop_requested.load()) break;
    Row row;
    row.batch_size = batch_size;
    row.outstanding =
        flags.outstanding != 0 ? flags.outstanding : std::max<size_t>(4, 2 * batch_size);
    const std::filesystem::path engine_path =
        (*scratch)->RunPath("engine-b" + std::to_string(batch_size));
    absl::StatusOr<EngineResult> engine = RunEngine(engine_path, batch_size, row.outstanding,
                                                    flags.submitters, flags.seconds, accounts);
    if (!engine.ok()) {
      std::fprintf(stderr, "error: engine run at batch size %zu: %s\n", batch_size,
                   engine.status().ToString().c_str());
      return 1;
    }
    row.engine = *engine;
    absl::StatusOr<EntryFootprint> footprint = MeasureFootprint(engine_path, engine->entries);
    ScratchDirectory::RemoveRun(engine_path);
    if (!footprint.ok()) {
      std::fprintf(stderr, "error: measuring the engine database at batch size %zu: %s\n",
                   batch_size, footprint.status().ToString().c_str());
      return 1;
    }
    row.footprint = *footprint;
    std::printf("batch %zu: engine %llu entries in %.2f s\n", batch_size,
                static_cast<unsigned long long>(engine->entries), engine->elapsed_seconds);
    std::fflush(stdout);

    const std::filesystem::path raw_path =
        (*scratch)->RunPath("raw-b" + std::to_string(batch_size));
    absl::StatusOr<RawResult> raw =
        RunRaw(raw_path, batch_size, flags.seconds, row.footprint, accounts);
    ScratchDirectory::RemoveRun(raw_path);
    if (!raw.ok()) {
      std::fprintf(stderr, "error: raw run at batch size %zu: %s\n", batch_size,
                   raw.status().ToString().c_str());
      return 1;
    }
    // A run cut short by Ctrl-C measured less than --seconds: leave it out of the table.
    if (stop_requested.load()) break;
    row.raw = *raw;
    std::printf("batch %zu: raw %llu entries\n", batch_size,
                static_cast<unsigned long long>(raw->entries));
    std::fflush(stdout);
    rows.push_back(row);
  }
  PrintRows(rows);
  if (stop_requested.load()) {
    std::fprintf(stderr, "interrupted: the figures above cover shortened runs\n");
    return 130;
  }
  return 0;
}

}  // namespace
}  // namespace gongdai::bench

int main(int argc, char** argv) {
  using gongdai::bench::Flags;
  Flags flags;
  const char* tmpdir = std::getenv("TMPDIR");
  flags.dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";

  CLI::App app{
      "Durable throughput and latency of the Gongdai ledger engine next to the raw RocksDB "
      "ceiling (same keys, same sizes, synced WriteBatches, no engine work)."};
  app.add_option("--seconds", flags.seconds, "Duration of each engine run and each raw run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch-sizes", flags.batch_sizes,
                 "Comma-separated LedgerOptions::batch_commands_max values to test")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--outstanding", flags.outstanding,
                 "Commands outstanding in total across submitters; 0 means max(4, 2 x batch "
                 "size), enough for every batch to fill")
      ->capture_default_str();
  app.add_option("--submitters", flags.submitters, "Submitter threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--accounts", flags.accounts, "Distinct destination accounts, chosen at random")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--fdatasync-probes", flags.fdatasync_probes,
                 "Append+fdatasync calls timed for the disk's sync latency")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dir", flags.dir,
                 "Parent of the scratch directory (removed at the end); use the disk to test")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  app.add_flag("--smoke", flags.smoke,
               "About one second in all (0.15 s per run, 20 probes): checks that it works, "
               "measures nothing");
  CLI11_PARSE(app, argc, argv);
  if (flags.smoke) {
    flags.seconds = 0.15;
    flags.fdatasync_probes = 20;
  }

  struct sigaction action = {};
  action.sa_handler = gongdai::bench::RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return gongdai::bench::Run(flags);
}
