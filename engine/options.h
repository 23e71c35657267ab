// Options for opening a Ledger. Every field says what it does and its default.
#ifndef GONGDAI_ENGINE_OPTIONS_H_
#define GONGDAI_ENGINE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "engine/date.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace gongdai {

inline constexpr size_t kBatchReadThreadsMax = 64;

struct LedgerOptions {
  // Create an empty ledger when `path` holds none.
  // Default: true.
  bool create_if_missing = true;

  // Most commands waiting for the writer. A Submit that finds the queue full is refused
  // at once with RESOURCE_EXHAUSTED rather than letting latency grow without bound. The
  // commands of the next batch wait in the queue until the committer has taken the batch
  // before, so they count here until then.
  // Default: 8192.
  size_t queue_commands_max = 8192;

  // Most commands the writer validates and commits in one WriteBatch (one fsync).
  // Default: 512.
  size_t batch_commands_max = 512;

  // Microseconds since 1970-01-01T00:00:00Z, used for entries' recorded_at_us.
  // Default: the system clock.
  std::function<int64_t()> clock_us;

  // Today's business date: no entry may be dated after it.
  // Default: the Asia/Shanghai calendar date of clock_us().
  std::function<Date()> business_date_today;

  // RocksDB block cache, shared by every column family: data blocks and the partitions of
  // the table files' indexes and filters. Bounds read-side memory.
  // Default: 64 MiB.
  size_t block_cache_bytes = size_t{64} << 20;

  // Projections the writer keeps of those it read or wrote lately (loans, accounts), so
  // that a command on a recently touched loan reads none from RocksDB. 0 keeps none.
  // Default: 64 MiB.
  size_t recent_projection_bytes = size_t{64} << 20;

  // Threads that read, before the writer executes a batch, the state its commands name
  // and the writer does not hold in its recent projections (each loan's state, its
  // principal account for a disbursement, repayment or write-off, the borrower of an
  // application or a borrower's change), together with the writer's own thread. On a
  // large book most loans a day's repayments touch are on disk, not in memory, and read
  // one at a time those reads, not the writing, bound how many commands the writer gets
  // through. 0 leaves each read to the writer, when a command needs it.
  // At most kBatchReadThreadsMax.
  // Default: 8.
  size_t batch_read_threads = 8;

  // RocksDB memtable size per column family. Bounds write-side memory.
  // Default: 32 MiB.
  size_t write_buffer_bytes = size_t{32} << 20;

  // The RocksDB environment (file system and threads). The ledger does not own it.
  // Default: nullptr, the operating system's. Tests pass one that injects I/O faults.
  rocksdb::Env* env = nullptr;

  // Called on the committing thread after each batch's synced write, with the batch's last
  // sequence number, before the ledger publishes it as the durable head. Readers of storage
  // see the batch from the write on; Head and GetEntry only from the publishing. Tests hold
  // it to show what reads do in between. It must not call into the ledger.
  // Default: none.
  std::function<void(uint64_t last_sequence)> before_head_published;
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_OPTIONS_H_
