// SIGKILL at a random moment, several rounds: every acknowledged entry must survive,
// the chain must verify, and projections must equal a rebuild.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
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
    // Read acknowledgements on a thread while the child runs; kill it at a random moment.
    std::thread reader([&] {
      unsigned long long sequence = 0;
      char request_id[128];
      while (std::fscanf(child.acknowledgements, "%llu %127s", &sequence, request_id) == 2) {
        acknowledged[sequence] = request_id;
      }
    });
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 900)(random)));
    ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited by itself with status " << status;
    reader.join();
    std::fclose(child.acknowledgements);

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
