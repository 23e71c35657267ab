// Threads that share out independent reads, so that work which must read many scattered
// keys before it can go on (the writer, before it executes a batch: the loans its commands
// name) waits for about one disk read at a time per thread rather than for all of them in
// turn. A cold loan on a large book is a disk read, and the disk has queue depth to
// spare. Private to engine/.
#ifndef GONGDAI_ENGINE_READ_POOL_H_
#define GONGDAI_ENGINE_READ_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace gongdai {

class ReadPool {
 public:
  // `threads` helpers besides each caller's own thread; 0 runs everything on the caller's.
  explicit ReadPool(size_t threads);
  ~ReadPool();  // waits for the helpers, which finish the work they hold first
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // Calls read(i) once for every i in [0, count), on the caller's thread and on helpers,
  // and returns when every call has returned. Calls may run in any order and at once, so
  // each must write only its own slot. Safe to call from many threads at once: helpers
  // take the requests in turn, and each caller keeps working on its own until it is done.
  // If a call throws, the rest still run, and the first exception is rethrown here.
  void ForEach(size_t count, const std::function<void(size_t)>& read);

  size_t threads() const { return helpers_.size(); }

 private:
  struct Job;
  void HelperLoop();
  void StopHelpers();
  static void Work(Job& job);

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<std::shared_ptr<Job>> jobs_;  // one entry per helper asked to join a job
  bool exiting_ = false;
  std::vector<std::thread> helpers_;
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_READ_POOL_H_
