#include "engine/read_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace gongdai {
namespace {

TEST(ReadPool, EveryIndexIsReadOnceWhateverTheHelpers) {
  for (size_t helpers : {size_t{0}, size_t{1}, size_t{4}}) {
    ReadPool pool(helpers);
    EXPECT_EQ(pool.threads(), helpers);
    for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{37}}) {
      std::vector<std::atomic<int>> reads(count);
      pool.ForEach(count, [&](size_t i) { ++reads[i]; });
      for (size_t i = 0; i < count; ++i) {
        EXPECT_EQ(reads[i].load(), 1) << "index " << i << " of " << count << ", " << helpers;
      }
    }
  }
}

// Reads that wait (as a disk read does) overlap: with 4 helpers, some of 5 reads of 50 ms
// each run at once. Fails if the caller read alone.
TEST(ReadPool, HelpersOverlapReadsThatWait) {
  ReadPool pool(4);
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  pool.ForEach(5, [&](size_t) {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    --running;
  });
  EXPECT_GT(most.load(), 1);
}

// A read that throws (an allocation failing) does not end the process from a helper, nor
// leave helpers writing into a caller that has unwound: the other reads still run, and
// ForEach rethrows once they have.
TEST(ReadPool, AThrowingReadIsRethrownToTheCallerAfterTheOthers) {
  ReadPool pool(3);
  for (size_t thrower : {size_t{0}, size_t{5}, size_t{19}}) {
    std::vector<std::atomic<int>> reads(20);
    EXPECT_THROW(pool.ForEach(20,
                              [&](size_t i) {
                                ++reads[i];
                                if (i == thrower) throw std::runtime_error("no memory");
                              }),
                 std::runtime_error);
    for (size_t i = 0; i < reads.size(); ++i) EXPECT_EQ(reads[i].load(), 1) << "index " << i;
  }
  std::atomic<int> after{0};
  pool.ForEach(10, [&](size_t) { ++after; });  // the pool still works
  EXPECT_EQ(after.load(), 10);
}

// Many callers at once: each gets all its own indexes read, and ForEach returns only once
// they are (a caller's slots are checked right after it returns).
TEST(ReadPool, ConcurrentCallersEachGetTheirOwnReadsDone) {
  ReadPool pool(3);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 6; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < 200; ++round) {
        const size_t count = static_cast<size_t>(1 + (c * 7 + round) % 40);
        std::vector<size_t> slots(count, 0);
        pool.ForEach(count, [&](size_t i) { slots[i] = i + 1; });
        for (size_t i = 0; i < count; ++i) {
          if (slots[i] != i + 1) ++wrong;
        }
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace gongdai
