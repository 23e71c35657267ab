// Storage's consistent scans: several scans of one space see it as it was when the first
// began, without registering a RocksDB snapshot (whose release would make RocksDB rewrite
// every bottommost file whose sequence numbers it has not yet zeroed).
#include "engine/storage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace gongdai {
namespace {

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Storage>> opened =
        Storage::Open(dir_.Sub("db"), LedgerOptions(), OpenMode::kReadWrite);
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    Put("g/1", "flow one");
    Put("g/2", "flow two");
    Put("k/1", "stock one");
  }

  void Put(std::string_view key, std::string_view value) {
    StorageBatch batch = storage_->NewBatch();
    batch.Put(Space::kProjections, key, value);
    ASSERT_TRUE(storage_->Write(batch, /*sync=*/true).ok());
  }

  testing::TempDir dir_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(StorageTest, ConsistentScansSeeTheSpaceAsItWasWhenTheFirstBegan) {
  std::vector<std::string> seen;
  uint64_t snapshots_during_scan = 99;
  bool written = false;
  auto prefix_scan = [&](std::string prefix) {
    return [&, prefix](std::string_view key, std::string_view value) {
      if (!key.starts_with(prefix)) return false;
      seen.push_back(std::string(key) + "=" + std::string(value));
      if (!written) {
        // Between the scans' reads: a new flow, a changed one and a new stock.
        snapshots_during_scan = storage_->RegisteredSnapshots();
        Put("g/3", "flow three");
        Put("g/2", "flow two, changed");
        Put("k/2", "stock two");
        written = true;
      }
      return true;
    };
  };
  ASSERT_TRUE(storage_
                  ->ScanConsistently(Space::kProjections,
                                     {{"g/", prefix_scan("g/")}, {"k/", prefix_scan("k/")}})
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"g/1=flow one", "g/2=flow two", "k/1=stock one"}));
  EXPECT_EQ(snapshots_during_scan, 0u) << "no RocksDB snapshot is registered for the view";

  // A scan begun afterwards sees the writes.
  seen.clear();
  written = true;
  ASSERT_TRUE(storage_->ScanConsistently(Space::kProjections, {{"g/", prefix_scan("g/")}}).ok());
  EXPECT_EQ(seen,
            (std::vector<std::string>{"g/1=flow one", "g/2=flow two, changed", "g/3=flow three"}));
}

TEST_F(StorageTest, ASnapshotIsRegisteredUntilReleased) {
  EXPECT_EQ(storage_->RegisteredSnapshots(), 0u);
  {
    std::unique_ptr<StorageSnapshot> snapshot = storage_->Snapshot();
    EXPECT_EQ(storage_->RegisteredSnapshots(), 1u);
    Put("g/1", "flow one, changed");
    absl::StatusOr<std::optional<std::string>> old =
        storage_->Get(Space::kProjections, "g/1", snapshot.get());
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(*old, "flow one");
  }
  EXPECT_EQ(storage_->RegisteredSnapshots(), 0u);
}

}  // namespace
}  // namespace gongdai
