// Preloaded into a gongdai-server under test: while the file named by
// GONGDAI_FAIL_SYNC_TRIGGER exists, fsync and fdatasync fail with EIO, as a dying disk's
// would. Lets an end-to-end test stop the real server's writer.
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

namespace {

bool Triggered() {
  const char* trigger = getenv("GONGDAI_FAIL_SYNC_TRIGGER");
  return trigger != nullptr && access(trigger, F_OK) == 0;
}

}  // namespace

extern "C" int fdatasync(int fd) {
  if (Triggered()) {
    errno = EIO;
    return -1;
  }
  using Real = int (*)(int);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "fdatasync"));
  return real(fd);
}

extern "C" int fsync(int fd) {
  if (Triggered()) {
    errno = EIO;
    return -1;
  }
  using Real = int (*)(int);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "fsync"));
  return real(fd);
}
