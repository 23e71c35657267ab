// Direct RocksDB access to a closed ledger's database, for tests that tamper with it as
// an attacker or a failing disk would.
#ifndef GONGDAI_TESTS_RAW_DB_H_
#define GONGDAI_TESTS_RAW_DB_H_

#include <rocksdb/db.h>
#include <rocksdb/table_properties.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gongdai::testing {

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    std::vector<std::string> names;
    Check(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names));
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names)
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    Check(rocksdb::DB::Open(rocksdb::DBOptions(), path, descriptors, &handles, &db));
    db_.reset(db);
    for (size_t i = 0; i < names.size(); ++i) handles_[names[i]] = handles[i];
  }
  ~RawDb() {
    for (auto& [name, handle] : handles_) Check(db_->DestroyColumnFamilyHandle(handle));
    Check(db_->Close());
  }

  std::optional<std::string> Get(const std::string& cf, const std::string& key) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_.at(cf), key, &value);
    if (s.IsNotFound()) return std::nullopt;
    Check(s);
    return value;
  }
  void Put(const std::string& cf, const std::string& key, const std::string& value) {
    Check(db_->Put(SyncWrite(), handles_.at(cf), key, value));
  }
  void Delete(const std::string& cf, const std::string& key) {
    Check(db_->Delete(SyncWrite(), handles_.at(cf), key));
  }
  // RocksDB's sequence number of the last write: it grows with every write, so an equal
  // number before and after shows that nothing was written in between.
  uint64_t LatestSequence() { return db_->GetLatestSequenceNumber(); }
  // The table files that hold column family `cf`, largest first.
  std::vector<std::pair<std::string, uint64_t>> TableFiles(const std::string& cf) {
    std::vector<rocksdb::LiveFileMetaData> files;
    db_->GetLiveFilesMetaData(&files);
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const rocksdb::LiveFileMetaData& file : files) {
      if (file.column_family_name == cf) out.emplace_back(file.db_path + file.name, file.size);
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    return out;
  }
  // For each table file of column family `cf`, the partitions its index is cut into (0 for
  // a file whose index is one whole block).
  std::vector<uint64_t> IndexPartitions(const std::string& cf) {
    rocksdb::TablePropertiesCollection tables;
    Check(db_->GetPropertiesOfAllTables(handles_.at(cf), &tables));
    std::vector<uint64_t> out;
    for (const auto& [file, properties] : tables) out.push_back(properties->index_partitions);
    return out;
  }
  std::vector<std::pair<std::string, std::string>> All(const std::string& cf) {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_.at(cf)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    Check(it->status());
    return out;
  }

 private:
  static rocksdb::WriteOptions SyncWrite() {
    rocksdb::WriteOptions options;
    options.sync = true;
    return options;
  }
  static void Check(const rocksdb::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "raw db: %s\n", s.ToString().c_str());
      std::abort();
    }
  }
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_RAW_DB_H_
