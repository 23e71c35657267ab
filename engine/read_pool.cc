#include "engine/read_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <utility>

namespace gongdai {

struct ReadPool::Job {
  Job(size_t count_in, const std::function<void(size_t)>& read_in)
      : count(count_in), read(read_in) {}
  const size_t count;
  // The caller's function: valid until ForEach returns, which waits for every claimed
  // index to finish. A helper that claims nothing (the caller got there first) does not
  // touch it.
  const std::function<void(size_t)>& read;
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::condition_variable all_done;
  size_t done = 0;
  // The first exception a read threw (an allocation failing): every claimed index still
  // counts as done, so ForEach waits for the others before it rethrows this, and no
  // helper is left writing into the caller's frame after it unwinds.
  std::exception_ptr failure;
};

ReadPool::ReadPool(size_t threads) {
  helpers_.reserve(threads);
  try {
    for (size_t i = 0; i < threads; ++i) helpers_.emplace_back([this] { HelperLoop(); });
  } catch (...) {
    StopHelpers();  // the threads started so far, which would end the process unjoined
    throw;
  }
}

ReadPool::~ReadPool() { StopHelpers(); }

void ReadPool::StopHelpers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    exiting_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& helper : helpers_) helper.join();
}

void ReadPool::Work(Job& job) {
  size_t finished = 0;
  std::exception_ptr failure;
  for (size_t i = job.next.fetch_add(1); i < job.count; i = job.next.fetch_add(1)) {
    try {
      job.read(i);
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
    ++finished;
  }
  if (finished == 0) return;
  std::lock_guard<std::mutex> lock(job.mutex);
  if (failure && !job.failure) job.failure = failure;
  job.done += finished;
  if (job.done == job.count) job.all_done.notify_all();
}

void ReadPool::ForEach(size_t count, const std::function<void(size_t)>& read) {
  if (count == 0) return;
  auto job = std::make_shared<Job>(count, read);
  // One helper per index beyond the caller's first, up to every helper.
  const size_t asked = std::min(helpers_.size(), count - 1);
  if (asked > 0) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < asked; ++i) jobs_.push_back(job);
    }
    for (size_t i = 0; i < asked; ++i) work_ready_.notify_one();
  }
  Work(*job);
  std::unique_lock<std::mutex> lock(job->mutex);
  job->all_done.wait(lock, [&] { return job->done == job->count; });
  if (job->failure) std::rethrow_exception(job->failure);
}

void ReadPool::HelperLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_ready_.wait(lock, [&] { return exiting_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // exiting, and nothing left to help with
    std::shared_ptr<Job> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Work(*job);
    job.reset();
    lock.lock();
  }
}

}  // namespace gongdai
