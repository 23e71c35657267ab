// Two-thread pipelines: a producer on a second thread fills items in batches, and the
// caller's thread visits them in order. Batches go back to the producer once visited, so
// that the items' memory (a parsed entry's strings and messages) is reused and freed on
// the producing thread. An audit's replay reads and opens entries this way while the
// previous ones are applied. Work that either thread can do (checking opened entries,
// parsing JSON) can be shared: a `finish` step runs on the producer for a batch while the
// consumer has batches enough in hand, and is otherwise left to the caller's thread, which
// runs it just before it visits the batch. So the thread with the less work of its own
// takes more of the shared work.
#ifndef GONGDAI_ENGINE_PIPELINE_H_
#define GONGDAI_ENGINE_PIPELINE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace gongdai {

// The producer's side of a pipeline (RunPipelined).
template <typename Item>
class PipelineFeed {
 public:
  // The item to fill next. It may hold what an earlier batch left in it.
  Item& Slot() { return batch_.items[filled_]; }
  // Marks the slot as filled. False once the consumer has stopped: produce no more.
  [[nodiscard]] bool Filled() { return ++filled_ < kBatchItems || HandOver(); }

 private:
  template <typename T>
  friend absl::Status RunPipelined(const std::function<absl::Status(PipelineFeed<T>&)>& produce,
                                   const std::function<absl::Status(const T&)>& visit,
                                   const std::function<void(T&)>& finish);

  static constexpr size_t kBatchItems = 256;
  static constexpr size_t kBatchesAhead = 16;
  struct Batch {
    std::vector<Item> items;
    bool finished = false;  // `finish` has run on every item
  };

  explicit PipelineFeed(const std::function<void(Item&)>& finish) : finish_(finish) {
    batch_.items.resize(kBatchItems);
  }

  // Hands the filled part of the batch to the consumer and takes a spent one back.
  bool HandOver() {
    batch_.items.resize(filled_);
    batch_.finished = false;
    if (finish_ && finish_here_) {
      for (Item& item : batch_.items) finish_(item);
      batch_.finished = true;
    }
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stop_ || ready_.size() < kBatchesAhead; });
    if (stop_) return false;
    // The next batch is finished here while the consumer has batches enough in hand, and
    // left to it when it is catching up: the slower thread does less of the shared work.
    finish_here_ = ready_.size() >= kBatchesAhead / 2;
    ready_.push_back(std::move(batch_));
    batch_.items.clear();
    if (!spent_.empty()) {
      batch_ = std::move(spent_.front());
      spent_.pop_front();
    }
    changed_.notify_all();
    lock.unlock();
    batch_.items.resize(kBatchItems);
    filled_ = 0;
    return true;
  }

  const std::function<void(Item&)>& finish_;
  Batch batch_;  // producer thread only, as are the two below
  size_t filled_ = 0;
  bool finish_here_ = true;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;  // guarded by mutex_, as are the four below
  std::deque<Batch> spent_;
  bool produced_all_ = false;
  bool stop_ = false;
  absl::Status produce_status_;
};

// Runs `produce` on a second thread and calls `visit` on this one for every item it
// fills, in order, until `visit` fails; `finish`, if given, first completes each item
// (on either thread, as above, so it must record its own failures in the item). Returns the first
// failure of `visit`, or else what `produce` returned (after every item it filled was
// visited).
template <typename Item>
absl::Status RunPipelined(const std::function<absl::Status(PipelineFeed<Item>&)>& produce,
                          const std::function<absl::Status(const Item&)>& visit,
                          const std::function<void(Item&)>& finish = nullptr) {
  PipelineFeed<Item> feed(finish);
  std::thread producer([&] {
    absl::Status produced = produce(feed);
    if (feed.filled_ > 0) static_cast<void>(feed.HandOver());
    std::lock_guard lock(feed.mutex_);
    feed.produce_status_ = std::move(produced);
    feed.produced_all_ = true;
    feed.changed_.notify_all();
  });

  absl::Status failure;
  while (failure.ok()) {
    typename PipelineFeed<Item>::Batch batch;
    {
      std::unique_lock lock(feed.mutex_);
      feed.changed_.wait(lock, [&] { return !feed.ready_.empty() || feed.produced_all_; });
      if (feed.ready_.empty()) break;
      batch = std::move(feed.ready_.front());
      feed.ready_.pop_front();
      feed.changed_.notify_all();
    }
    for (Item& item : batch.items) {
      if (finish && !batch.finished) finish(item);
      failure = visit(item);
      if (!failure.ok()) break;
    }
    std::lock_guard lock(feed.mutex_);
    feed.spent_.push_back(std::move(batch));
  }
  {
    std::lock_guard lock(feed.mutex_);
    feed.stop_ = true;
    feed.changed_.notify_all();
  }
  producer.join();
  if (!failure.ok()) return failure;
  return feed.produce_status_;
}

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_PIPELINE_H_
