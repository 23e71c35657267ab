// A RocksDB file system that fails or delays writes and syncs, and delays reads, on
// demand, so tests can see what the ledger does when the disk does.
#ifndef GONGDAI_TESTS_FAULT_FS_H_
#define GONGDAI_TESTS_FAULT_FS_H_

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace gongdai::testing {

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  FaultFs() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "GongdaiFaultFs"; }

  // Every Sync/Fsync of a writable file fails while set.
  std::atomic<bool> fail_sync{false};
  // Every Sync/Fsync first sleeps this long.
  std::atomic<int> sync_delay_ms{0};
  // Number of successful syncs so far.
  std::atomic<int> syncs{0};

  // Every read of a file opened for random access (a table file's blocks) first sleeps
  // this long while set, as a read from a cold disk waits.
  std::atomic<int> read_delay_ms{0};
  // While read_delay_ms is set: the reads waiting now, and the most that ever waited at
  // once.
  std::atomic<int> reads_in_flight{0};
  std::atomic<int> most_reads_in_flight{0};

  // Called at the start of every Sync/Fsync, before the data is durable.
  void SetBeforeSync(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(mutex_);
    before_sync_ = std::move(hook);
  }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, &file, debug);
    if (s.ok()) result->reset(new File(std::move(file), this));
    return s;
  }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& name,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSRandomAccessFile> file;
    rocksdb::IOStatus s = target()->NewRandomAccessFile(name, options, &file, debug);
    if (s.ok()) result->reset(new SlowFile(std::move(file), this));
    return s;
  }

 private:
  class SlowFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    SlowFile(std::unique_ptr<rocksdb::FSRandomAccessFile>&& file, FaultFs* fs)
        : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(file)), fs_(fs) {}
    rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options,
                           rocksdb::Slice* result, char* scratch,
                           rocksdb::IODebugContext* debug) const override {
      fs_->WaitAsADiskRead();
      return target()->Read(offset, n, options, result, scratch, debug);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                                const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* debug) override {
      fs_->WaitAsADiskRead();
      return target()->MultiRead(reqs, num_reqs, options, debug);
    }

   private:
    FaultFs* fs_;
  };

  void WaitAsADiskRead() {
    const int delay = read_delay_ms.load();
    if (delay <= 0) return;
    const int now = ++reads_in_flight;
    int most = most_reads_in_flight.load();
    while (now > most && !most_reads_in_flight.compare_exchange_weak(most, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    --reads_in_flight;
  }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile>&& file, FaultFs* fs)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* debug) override {
      rocksdb::IOStatus s = fs_->BeforeSync();
      return s.ok() ? fs_->Count(target()->Sync(options, debug)) : s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* debug) override {
      rocksdb::IOStatus s = fs_->BeforeSync();
      return s.ok() ? fs_->Count(target()->Fsync(options, debug)) : s;
    }

   private:
    FaultFs* fs_;
  };

  rocksdb::IOStatus BeforeSync() {
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      hook = before_sync_;
    }
    if (hook) hook();
    int delay = sync_delay_ms.load();
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    if (fail_sync.load()) return rocksdb::IOStatus::IOError("injected sync failure");
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Count(rocksdb::IOStatus s) {
    if (s.ok()) ++syncs;
    return s;
  }

  std::mutex mutex_;
  std::function<void()> before_sync_;
};

// An Env over a FaultFs; keep both alive as long as the ledger.
struct FaultEnv {
  std::shared_ptr<FaultFs> fs = std::make_shared<FaultFs>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
};

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_FAULT_FS_H_
