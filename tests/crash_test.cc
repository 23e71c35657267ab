// SIGKILL at a random moment, several rounds: every acknowledged entry must survive,
// the chain must verify, and projections must equal a rebuild.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "engine/ledger.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::TempDir;

struct Child {
  pid_t pid;
  FILE* acknowledgements;
};

Child StartWriter(const std::string& dir, int round) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    const std::string round_text = std::to_string(round);
    ::execl(GONGDAI_CRASH_WRITER, GONGDAI_CRASH_WRITER, dir.c_str(), round_text.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(fds[1]);
  return Child{pid, ::fdopen(fds[0], "r")};
}

TEST(Crash, AcknowledgedEntriesSurviveSigkill) {
  const uint64_t seed = std::random_device()();
  std::printf("crash test seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 random(seed);
  TempDir dir;
  std::map<uint64_t, std::string> acknowledged;
  for (int round = 0; round < 5; ++round) {
    Child child = StartWriter(dir.path(), round);
    // Read acknowledgements on a thread while the child runs; kill it at a random moment
    // once it writes. Counted from its first acknowledgement, not from its start: under
    // the sanitizers, on two busy cores, a writer took longer than the shortest delay to
    // start, and was killed before it had written anything.
    std::mutex mutex;
    std::condition_variable first_acknowledged;
    size_t round_acknowledgements = 0;
    bool reader_done = false;
    std::thread reader([&] {
      unsigned long long sequence = 0;
      char request_id[128];
      while (std::fscanf(child.acknowledgements, "%llu %127s", &sequence, request_id) == 2) {
        std::lock_guard lock(mutex);
        acknowledged[sequence] = request_id;
        if (++round_acknowledgements == 1) first_acknowledged.notify_all();
      }
      std::lock_guard lock(mutex);
      reader_done = true;  // the writer ended by itself: no acknowledgement will come
      first_acknowledged.notify_all();
    });
    bool writing = false;
    {
      std::unique_lock lock(mutex);
      first_acknowledged.wait_for(lock, std::chrono::seconds(60),
                                  [&] { return round_acknowledgements > 0 || reader_done; });
      writing = round_acknowledgements > 0;
    }
    if (writing) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 750)(random)));
    }
    const int killed = ::kill(child.pid, SIGKILL);
    int status = 0;
    const pid_t waited = ::waitpid(child.pid, &status, 0);
    // The child's end of the pipe is closed now, so the reader ends; joined before any
    // assertion can leave the test with the thread still running.
    reader.join();
    std::fclose(child.acknowledgements);
    ASSERT_EQ(killed, 0);
    ASSERT_EQ(waited, child.pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited by itself with status " << status;
    ASSERT_TRUE(writing) << "the writer acknowledged nothing within 60 s of its start";

    absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(dir.path(), LedgerOptions());
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ASSERT_FALSE(acknowledged.empty());
    EXPECT_GE((*ledger)->Head().sequence, acknowledged.rbegin()->first);
    for (const auto& [sequence, request_id] : acknowledged) {
      absl::StatusOr<v1::Entry> entry = (*ledger)->GetEntry(sequence);
      ASSERT_TRUE(entry.ok()) << "acknowledged entry " << sequence << " lost: " << entry.status();
      ASSERT_EQ(entry->request_id(), request_id);
    }
    ASSERT_TRUE((*ledger)->VerifyJournal().ok());
    absl::StatusOr<std::optional<ProjectionMismatch>> mismatch =
        (*ledger)->CompareProjectionsWithRebuild();
    ASSERT_TRUE(mismatch.ok()) << mismatch.status();
    ASSERT_FALSE(mismatch->has_value()) << (*mismatch)->space << " " << (*mismatch)->key;
    std::printf("round %d: %zu acknowledged, head %llu\n", round, acknowledged.size(),
                static_cast<unsigned long long>((*ledger)->Head().sequence));
  }
}

}  // namespace
}  // namespace gongdai
