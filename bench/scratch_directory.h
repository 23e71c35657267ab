// A scratch directory for a benchmark's databases and logs, removed with everything in it
// when the benchmark ends (also after Ctrl-C, since the benchmarks end their loops early).
#ifndef GONGDAI_BENCH_SCRATCH_DIRECTORY_H_
#define GONGDAI_BENCH_SCRATCH_DIRECTORY_H_

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "absl/status/statusor.h"

namespace gongdai::bench {

class ScratchDirectory {
 public:
  // A new directory "<name>.XXXXXX" under `parent`.
  static absl::StatusOr<std::unique_ptr<ScratchDirectory>> Create(const std::string& parent,
                                                                  const std::string& name) {
    std::string pattern = (std::filesystem::path(parent) / (name + ".XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::UnavailableError("cannot create a scratch directory under " + parent + ": " +
                                    std::strerror(errno));
    }
    return std::unique_ptr<ScratchDirectory>(new ScratchDirectory(pattern));
  }

  ~ScratchDirectory() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
    if (error) {
      std::fprintf(stderr, "warning: could not remove %s: %s\n", path_.c_str(),
                   error.message().c_str());
    }
  }

  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // A fresh subdirectory path for one run; RemoveRun deletes it once the run is measured,
  // so that the disk holds one run's database at a time.
  std::filesystem::path RunPath(const std::string& name) const { return path_ / name; }
  static void RemoveRun(const std::filesystem::path& run) {
    std::error_code error;
    std::filesystem::remove_all(run, error);
  }

 private:
  explicit ScratchDirectory(std::string path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace gongdai::bench

#endif  // GONGDAI_BENCH_SCRATCH_DIRECTORY_H_
