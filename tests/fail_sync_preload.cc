// Preloaded into a gongdai-server under test, to reach the real server's writer:
// - while the file named by GONGDAI_FAIL_SYNC_TRIGGER exists, fsync and fdatasync fail
//   with EIO, as a dying disk's would;
// - while the file named by GONGDAI_HOLD_SYNC_TRIGGER exists, they wait (a slow disk),
//   with a file of that name plus ".held" created to say a sync is waiting.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

namespace {

bool Exists(const char* variable) {
  const char* path = getenv(variable);
  return path != nullptr && access(path, F_OK) == 0;
}

void WaitWhileHeld() {
  if (!Exists("GONGDAI_HOLD_SYNC_TRIGGER")) return;
  const std::string held = std::string(getenv("GONGDAI_HOLD_SYNC_TRIGGER")) + ".held";
  const int fd = open(held.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
  while (Exists("GONGDAI_HOLD_SYNC_TRIGGER")) usleep(1000);
}

}  // namespace

extern "C" int fdatasync(int fd) {
  WaitWhileHeld();
  if (Exists("GONGDAI_FAIL_SYNC_TRIGGER")) {
    errno = EIO;
    return -1;
  }
  using Real = int (*)(int);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "fdatasync"));
  return real(fd);
}

extern "C" int fsync(int fd) {
  WaitWhileHeld();
  if (Exists("GONGDAI_FAIL_SYNC_TRIGGER")) {
    errno = EIO;
    return -1;
  }
  using Real = int (*)(int);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "fsync"));
  return real(fd);
}
