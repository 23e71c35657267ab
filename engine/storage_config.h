// The ledger's RocksDB configuration, for code that must open RocksDB exactly as the
// engine does without going through Storage (the raw ceiling of bench/engine_bench.cc).
// Private to engine/ and bench/.
#ifndef GONGDAI_ENGINE_STORAGE_CONFIG_H_
#define GONGDAI_ENGINE_STORAGE_CONFIG_H_

#include <rocksdb/options.h>

#include <vector>

#include "engine/options.h"

namespace gongdai {

// Database-wide options: durability, recovery of a torn log tail, background jobs.
rocksdb::DBOptions LedgerDBOptions(const LedgerOptions& options);

// The default column family followed by one per key space, in the order of `Space`, each
// with the engine's table, filter and memtable settings and one shared block cache.
std::vector<rocksdb::ColumnFamilyDescriptor> LedgerColumnFamilies(const LedgerOptions& options);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_STORAGE_CONFIG_H_
